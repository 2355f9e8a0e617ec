"""Peak memory of `lingvis.load` on a sharded Llama-family checkpoint, against the bytes of the weights.

A random-weight Llama-shape model is written with transformers (sharded safetensors, fp32 and bf16); each
load runs in a fresh subprocess that reports its peak RSS (ru_maxrss) minus the RSS after `import lingvis`.
Goal: peak <= 1.3x the bytes of the loaded (fp32) weights: tensors stream from memory-mapped shards into a
model built without initialisation, so two full copies never coexist. transformers'
`from_pretrained` is measured the same way beside it.

    python -m benchmarks.load_memory [--quick]
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

PROBE = r"""
import json
import torch
import lingvis
{extra_import}
def status_mb(key):  # VmRSS / VmHWM of this process image (ru_maxrss would include the parent's before exec)
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(key + ":")) / 1024
base = status_mb("VmRSS")
{load}
params = sum(p.numel() * p.element_size() for p in model.parameters()) / 2**20
print(json.dumps({{"base_mb": base, "peak_mb": status_mb("VmHWM"), "weights_mb": params}}))
"""


def measure(folder: Path, side: str) -> dict:
    if side == "lingvis":
        code = PROBE.format(extra_import="", load=f"model = lingvis.load({str(folder)!r})")
    else:
        code = PROBE.format(extra_import="import transformers",
                            load=f"model = transformers.AutoModelForCausalLM.from_pretrained({str(folder)!r}, "
                                 "dtype=torch.float32)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    r["extra_mb"] = r["peak_mb"] - r["base_mb"]
    r["ratio"] = r["extra_mb"] / r["weights_mb"]
    return r


def make_checkpoint(folder: Path, dtype, layers: int, width: int) -> None:
    import torch
    import transformers

    cfg = transformers.LlamaConfig(vocab_size=32000, hidden_size=width, intermediate_size=width * 11 // 4,
                                   num_hidden_layers=layers, num_attention_heads=16, num_key_value_heads=4,
                                   max_position_embeddings=2048, tie_word_embeddings=False)
    with torch.device("meta"):
        model = transformers.LlamaForCausalLM(cfg)
    model = model.to_empty(device="cpu").to(dtype)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.02)
    model.save_pretrained(folder, safe_serialization=True, max_shard_size="200MB")


def run(quick: bool = False) -> list[dict]:
    import torch

    layers, width = (4, 1024) if quick else (12, 1536)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for dtype in (torch.float32, torch.bfloat16):
            folder = Path(tmp) / str(dtype).split(".")[-1]
            make_checkpoint(folder, dtype, layers, width)
            ours, ref = measure(folder, "lingvis"), measure(folder, "transformers")
            name = f"load Llama {layers}x{width} {str(dtype).split('.')[-1]} shards: peak RSS / fp32 weight bytes"
            print(f"{name}: lingvis {ours['ratio']:.2f}x ({ours['extra_mb']:.0f} MB for {ours['weights_mb']:.0f} MB), "
                  f"transformers {ref['ratio']:.2f}x ({ref['extra_mb']:.0f} MB)", flush=True)
            rows.append({"benchmark": name, "lingvis": round(ours["ratio"], 3), "reference": round(ref["ratio"], 3),
                         "unit": "x weights (lower is better)", "ratio": round(ref["ratio"] / ours["ratio"], 3),
                         "goal": "<= 1.3x"})
    return rows


if __name__ == "__main__":
    run(quick="--quick" in sys.argv)
