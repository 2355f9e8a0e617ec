"""Model FLOPs utilisation of GPT training against this machine's measured fp32 matmul peak.

The peak is the best median GFLOP/s of large square sgemms (`torch.mm`, 2 threads) measured in the same
run. Training throughput comes from the real `Trainer` (AdamW, grad clipping, fp32) on the `gpt-mini`
preset (6 layers, width 384, context 256), once with the preset's GPT-2 vocabulary (50257) and once
with a character vocabulary (65, the Shakespeare demo). Model FLOPs per token follow the PaLM appendix
convention: 6 x (matmul parameters, LM head included, embedding lookups excluded) + 12 x layers x
context x width for attention; recomputation is not counted.

    python -m benchmarks.mfu [--quick]
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

PRESET = "gpt-mini"


def matmul_peak_gflops(quick: bool = False) -> dict:
    """Best median GFLOP/s of fp32 square matmuls; {size: GFLOP/s} and the peak."""
    sizes, repeats = ((1024, 2048), 3) if quick else ((1024, 2048, 3072), 7)
    result = {}
    for n in sizes:
        a, b = torch.randn(n, n), torch.randn(n, n)
        torch.mm(a, b)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            torch.mm(a, b)
            times.append(time.perf_counter() - t0)
        result[n] = 2 * n ** 3 / statistics.median(times) / 1e9
    return {"by_size": result, "peak": max(result.values())}


def flops_per_token(model) -> float:
    """6 N + 12 L T C (PaLM): N = weights of every nn.Linear (a tied LM head counted once)."""
    c = model.config
    n = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))
    return 6 * n + 12 * c.n_layer * c.block_size * c.n_embd


def train_tokens_per_s(vocab: int, batch: int, steps: int) -> tuple[float, float]:
    """Median training tokens/s of the Trainer on random tokens; returns (tokens/s, FLOPs/token)."""
    import lingvis
    from lingvis.data.packing import PackedLMDataset
    from lingvis.tasks.lm import CausalLMTask
    from lingvis.train.config import TrainConfig
    from lingvis.train.trainer import Trainer

    torch.manual_seed(0)
    model = lingvis.build(PRESET, vocab_size=vocab)
    T = model.config.block_size
    ids = torch.randint(0, vocab, (T * batch * (steps + 2) + 1,), generator=torch.Generator().manual_seed(0))
    data = PackedLMDataset(ids, T)
    cfg = TrainConfig(max_steps=steps, batch_size=batch, warmup_steps=1, eval_every=10 ** 6, eval_batches=1,
                      log_every=1, device="cpu", progress=False, keep_last=1)
    with tempfile.TemporaryDirectory() as out:
        Trainer(model, CausalLMTask(), data, data, cfg, out).fit()
        rows = [json.loads(line) for line in (Path(out) / "metrics.jsonl").read_text().splitlines()]
    speeds = [r["tokens_per_s"] for r in rows if r.get("split") == "train" and r["step"] > 1]  # step 1: warm-up
    return statistics.median(speeds), flops_per_token(model)


def run(quick: bool = False) -> list[dict]:
    torch.set_num_threads(2)
    peak = matmul_peak_gflops(quick)
    top = peak["peak"]
    rows = [{"benchmark": f"fp32 matmul (sgemm {n}x{n}) vs the peak", "lingvis": round(g, 1),
             "reference": round(top, 1), "unit": "GFLOP/s", "ratio": round(g / top, 3)}
            for n, g in peak["by_size"].items()]
    batch, steps = (4, 3) if quick else (8, 6)
    for vocab, label in ((50257, "GPT-2 vocab 50257"), (65, "char vocab 65")):
        tps, fpt = train_tokens_per_s(vocab, batch, steps)
        achieved = tps * fpt / 1e9
        rows.append({"benchmark": f"{PRESET} training MFU, {label} (batch {batch}x256, fp32)",
                     "lingvis": round(achieved, 1), "reference": round(top, 1), "unit": "GFLOP/s",
                     "ratio": round(achieved / top, 3), "tokens_per_s": round(tps, 1)})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer sizes and steps")
    rows = run(ap.parse_args().quick)
    for r in rows:
        print(f"{r['benchmark']}: {r['lingvis']} {r['unit']} of peak {r['reference']} -> MFU {r['ratio']:.1%}")


if __name__ == "__main__":
    main()
