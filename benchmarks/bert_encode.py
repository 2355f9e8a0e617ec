"""BERT-base encoding throughput, lingvis vs transformers `BertModel`, same random `bert-base` weights
(exported by lingvis, loaded by `BertModel.from_pretrained`), fp32, 2 threads, no grad.

Both sides turn token ids into mean-pooled sentence vectors (the outputs are checked to agree):
  * fixed: 8 sequences x 128 tokens (no padding anywhere);
  * mixed: 8 sequences of 8..128 tokens. transformers pads the batch to its longest sequence (128);
    lingvis sorts by length and runs length buckets (`lingvis.embeddings.plan_buckets`), so padding
    costs almost nothing. Two mixes are reported: log-uniform lengths (8, 11, 18, 26, 39, 57, 86, 128 --
    most sentences short, as in real text) and evenly spaced lengths (8, 25, ..., 128).

    python -m benchmarks.bert_encode [--quick]
"""
from __future__ import annotations

import argparse
import tempfile

import torch

from ._timing import median_seconds, print_rows, row

MIXES = {"fixed 8x128": [128] * 8,
         "mixed log-uniform 8..128": [8, 11, 18, 26, 39, 57, 86, 128],
         "mixed evenly spaced 8..128": [8, 25, 42, 59, 77, 94, 111, 128]}


def build_pair(tmp: str):
    import transformers

    import lingvis

    torch.manual_seed(0)
    ours = lingvis.build("bert-base", dropout=0.0).eval()
    lingvis.save(ours, tmp)
    ref = transformers.BertModel.from_pretrained(tmp, dtype=torch.float32).eval()
    return ours, ref


def sequences(lengths: list[int], vocab: int) -> list[list[int]]:
    g = torch.Generator().manual_seed(1)
    return [[101, *torch.randint(1000, vocab, (n - 2,), generator=g).tolist(), 102] for n in lengths]


def reference_embed(ref, seqs: list[list[int]]) -> torch.Tensor:
    """transformers: one padded batch, then masked mean pooling."""
    from lingvis.embeddings import pad_batch, pool

    ids, mask = pad_batch(seqs)
    with torch.inference_mode():
        hidden = ref(input_ids=ids, attention_mask=mask).last_hidden_state
    return pool(hidden, mask, "mean")


def bench(ours, ref, name: str, lengths: list[int], repeats: int) -> dict:
    from lingvis.embeddings import encode_sequences

    seqs = sequences(lengths, ours.config.vocab_size)
    run_ours = lambda: encode_sequences(ours, seqs, pooling="mean", normalize=False)  # noqa: E731
    run_ref = lambda: reference_embed(ref, seqs)  # noqa: E731
    a, b = run_ours(), run_ref()
    cos = float(torch.nn.functional.cosine_similarity(a, b, dim=1).min())
    assert cos > 0.9999, f"{name}: lingvis and transformers disagree (cosine {cos})"
    t = median_seconds({"ours": run_ours, "ref": run_ref}, repeats=repeats, warmup=1)
    tokens = sum(lengths)
    r = row(f"bert-base encode {name} ({tokens} real tokens)", tokens / t["ours"], tokens / t["ref"], "tokens/s")
    r["min_cosine"] = round(cos, 6)
    return r


def run(quick: bool = False, threads: int = 2) -> list[dict]:
    torch.set_num_threads(threads)
    repeats = 2 if quick else 5
    with tempfile.TemporaryDirectory() as tmp:
        ours, ref = build_pair(tmp)
        return [bench(ours, ref, name, lengths, repeats) for name, lengths in MIXES.items()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="two timed repeats instead of five")
    ap.add_argument("--threads", type=int, default=2, help="torch threads for both sides")
    args = ap.parse_args()
    print_rows(run(args.quick, args.threads))


if __name__ == "__main__":
    main()
