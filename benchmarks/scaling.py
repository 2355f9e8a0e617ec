"""Forward throughput against batch size and sequence length: lingvis GPT vs transformers GPT-2 with the
same `gpt-mini`-shaped weights (6 layers, width 384, GPT-2 vocabulary), fp32, inference mode. The rows
carry `sweep` ("batch" or "seq_len") with `batch` and `seq_len`, from which `benchmarks.run` draws the
throughput plots.

    python -m benchmarks.scaling [--quick]
"""
from __future__ import annotations

import argparse
import tempfile

import torch

from ._timing import median_seconds, print_rows, row

SERIES = "gpt-mini forward (fp32)"
BATCHES, BATCH_SEQ = (1, 2, 4, 8), 128
SEQS, SEQ_BATCH = (32, 64, 128, 256), 2


def build_pair(tmp: str):
    import transformers

    import lingvis

    torch.manual_seed(0)
    ours = lingvis.build("gpt-mini").eval()
    lingvis.save(ours, tmp)
    ref = transformers.GPT2LMHeadModel.from_pretrained(tmp, dtype=torch.float32).eval()
    return ours, ref


def measure(ours, ref, batch: int, seq: int, repeats: int, sweep: str) -> dict:
    gen = torch.Generator().manual_seed(batch * 1000 + seq)
    ids = torch.randint(0, 50257, (batch, seq), generator=gen)

    @torch.inference_mode()
    def run_ours():
        return ours(ids)

    @torch.inference_mode()
    def run_ref():
        return ref(ids, use_cache=False).logits

    diff = float((run_ours() - run_ref()).abs().max())
    assert diff < 1e-3, f"outputs differ by {diff} at batch {batch}, length {seq}"
    t = median_seconds({"ours": run_ours, "ref": run_ref}, repeats=repeats, warmup=0)
    n = batch * seq
    r = row(f"{SERIES}, batch {batch} x length {seq}", n / t["ours"], n / t["ref"], "tokens/s")
    return {**r, "series": SERIES, "sweep": sweep, "batch": batch, "seq_len": seq}


def run(quick: bool = False) -> list[dict]:
    torch.set_num_threads(2)
    repeats = 1 if quick else 3
    with tempfile.TemporaryDirectory() as tmp:
        ours, ref = build_pair(tmp)
        rows = [measure(ours, ref, b, BATCH_SEQ, repeats, "batch") for b in BATCHES]
        rows += [measure(ours, ref, SEQ_BATCH, s, repeats, "seq_len") for s in SEQS]
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="one timed repeat")
    print_rows(run(ap.parse_args().quick))


if __name__ == "__main__":
    main()
