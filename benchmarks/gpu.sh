#!/usr/bin/env bash
# GPU check for one CUDA machine:
#   1. GPT-2 124M (`gpt2` preset) training-step MFU in bf16 autocast through the real Trainer
#      (fused AdamW, grad clipping), without and with torch.compile, against the bf16 dense matmul peak
#      measured here (and the datasheet number when the GPU is known);
#   2. greedy decode tokens/s (KV cache, bf16 weights) at batch 1 and batch 32.
#
#   bash benchmarks/gpu.sh                 # on the GPU machine, from the repository root
#   SMOKE=1 bash benchmarks/gpu.sh         # tiny CPU run of the same code path (checks the script itself)
#
# Prints one line per measurement and writes results/gpu.json (results/gpu_smoke.json for SMOKE=1).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
mkdir -p results
SMOKE=${SMOKE:-0} "$PY" - <<'PYEOF'
import json, os, statistics, tempfile, time
from pathlib import Path

import torch

import lingvis
from lingvis.data.packing import PackedLMDataset
from lingvis.tasks.lm import CausalLMTask
from lingvis.train.config import TrainConfig
from lingvis.train.trainer import Trainer

SMOKE = os.environ.get("SMOKE") == "1"
if not SMOKE and not torch.cuda.is_available():
    raise SystemExit("gpu.sh: no CUDA device visible (use SMOKE=1 for a CPU check of the script)")
dev = "cpu" if SMOKE else "cuda"
preset, batch, steps, new_tokens = ("gpt-nano", 2, 4, 8) if SMOKE else ("gpt2", 16, 30, 128)
precision = "fp32" if SMOKE else "bf16"
SPEC_BF16_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "A10": 125.0}  # dense
torch.backends.cuda.matmul.allow_tf32 = True
torch.backends.cudnn.allow_tf32 = True
report = {"device": torch.cuda.get_device_name() if dev == "cuda" else "cpu (smoke)", "preset": preset}


def sync():
    if dev == "cuda":
        torch.cuda.synchronize()


def matmul_peak() -> float:
    n, dtype = (512, torch.float32) if SMOKE else (8192, torch.bfloat16)
    a, b = torch.randn(n, n, device=dev, dtype=dtype), torch.randn(n, n, device=dev, dtype=dtype)
    for _ in range(3):
        a @ b
    sync()
    times = []
    for _ in range(10):
        t0 = time.perf_counter()
        for _ in range(10):
            a @ b
        sync()
        times.append((time.perf_counter() - t0) / 10)
    return 2 * n ** 3 / statistics.median(times) / 1e12  # TFLOP/s


def flops_per_token(model) -> float:
    c = model.config
    n = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))
    return 6 * n + 12 * c.n_layer * c.block_size * c.n_embd


def train_mfu(compile_: bool, peak: float) -> dict:
    torch.manual_seed(0)
    model = lingvis.build(preset)
    T = model.config.block_size
    ids = torch.randint(0, model.config.vocab_size, (T * batch * (steps + 2) + 1,))
    data = PackedLMDataset(ids, T)
    cfg = TrainConfig(max_steps=steps, batch_size=batch, warmup_steps=2, eval_every=10 ** 6, eval_batches=1,
                      log_every=1, device=dev, precision=precision, compile=compile_, progress=False, keep_last=1)
    with tempfile.TemporaryDirectory() as out:
        Trainer(model, CausalLMTask(), data, data, cfg, out).fit()
        rows = [json.loads(l) for l in (Path(out) / "metrics.jsonl").read_text().splitlines()]
    skip = steps // 3  # compilation and autotuning happen in the first steps
    tps = statistics.median(r["tokens_per_s"] for r in rows if r.get("split") == "train" and r["step"] > skip)
    tflops = tps * flops_per_token(model) / 1e12
    return {"tokens_per_s": round(tps, 1), "model_tflops": round(tflops, 2), "mfu_vs_measured": round(tflops / peak, 3)}


@torch.inference_mode()
def decode(b: int) -> float:
    torch.manual_seed(0)
    model = lingvis.build(preset).to(dev).eval()
    if not SMOKE:
        model = model.to(torch.bfloat16)
    ids = torch.randint(0, model.config.vocab_size, (b, 16), device=dev)
    model.generate(ids, max_new_tokens=8)
    times = []
    for _ in range(3):
        sync()
        t0 = time.perf_counter()
        out = model.generate(ids, max_new_tokens=new_tokens)
        sync()
        times.append(time.perf_counter() - t0)
    assert out.shape == (b, 16 + new_tokens)
    return b * new_tokens / statistics.median(times)


peak = matmul_peak()
report["matmul_peak_tflops_measured"] = round(peak, 1)
spec = next((v for k, v in SPEC_BF16_TFLOPS.items() if k in report["device"]), None)
print(f"device: {report['device']}; measured {'bf16' if not SMOKE else 'fp32'} matmul peak {peak:.1f} TFLOP/s"
      + (f" (datasheet dense bf16 {spec} TFLOP/s)" if spec else ""))
for compile_ in (False, True):
    key = "train_compiled" if compile_ else "train_eager"
    try:
        r = train_mfu(compile_, peak)
        if spec:
            r["mfu_vs_datasheet"] = round(r["model_tflops"] / spec, 3)
    except Exception as e:  # torch.compile may be unavailable (no Triton): report it, keep going
        r = {"error": f"{type(e).__name__}: {e}"[:300]}
    report[key] = r
    print(f"{preset} train step, {precision}, compile={compile_}, batch {batch}: {r}")
for b in (1, 32):
    tps = decode(b)
    report[f"decode_batch{b}_tokens_per_s"] = round(tps, 1)
    print(f"{preset} greedy decode batch {b} ({new_tokens} new tokens, KV cache): {tps:,.1f} tokens/s")
out = Path("results/gpu_smoke.json" if SMOKE else "results/gpu.json")
out.write_text(json.dumps(report, indent=2))
print(f"wrote {out}")
PYEOF
