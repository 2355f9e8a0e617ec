"""CPU cost of one text-to-image training step (forward + backward + Adam, batch B) for denoiser variants and
precisions, interleaved in one process on one thread, measured as thread CPU time (best and median of N), so a
loaded shared machine changes the numbers less than wall time would.

    python -m benchmarks.t2i_step_cost [--batch 32] [--repeats 5] [--variants base,small] [--precisions fp32,bf16]
"""
from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import time

import torch

from lingvis.models.registry import make_config, preset_of
from lingvis.models.text_to_image import TextToImage

VARIANTS = {  # text_to_image preset + denoiser field overrides
    "base": ("t2i-shapes-dit-conv", {}),
    "w128d4": ("t2i-shapes-dit-conv", {"dim": 128, "depth": 4}),
    "w128d6": ("t2i-shapes-dit-conv", {"dim": 128, "depth": 6}),
    "w192d4": ("t2i-shapes-dit-conv", {"dim": 192, "depth": 4}),
    "p2w96d4": ("t2i-shapes-dit-conv", {"dim": 96, "depth": 4, "patch_size": 2, "heads": 4}),
    "unet": ("t2i-shapes", {}),
    "unet8": ("t2i-shapes", {"down_attention": [False, False, True]}),
    "unet8n": ("t2i-shapes", {"block_out_channels": [32, 64, 64], "down_attention": [False, False, True]}),
    "unet8nn": ("t2i-shapes", {"block_out_channels": [16, 32, 64], "down_attention": [False, False, True]}),
    "unet8nn-nomid": ("t2i-shapes", {"block_out_channels": [16, 32, 64], "down_attention": [False, False, True],
                                     "mid_block": False}),
    "unet2l": ("t2i-shapes", {"block_out_channels": [32, 64], "down_attention": [False, True]}),
}


def build(name: str) -> TextToImage:
    import dataclasses

    preset, over = VARIANTS[name]
    _, base = preset_of(preset, "text_to_image")
    f = dataclasses.asdict(base)
    f["denoiser"] = {**f["denoiser"], **over}
    return TextToImage(make_config("text_to_image", f)).train()


def step_fn(model: TextToImage, batch: int, precision: str):
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(batch, 3, 32, 32, generator=g) * 2 - 1  # (B, 3, 32, 32)
    ids = torch.randint(1, 100, (batch, model.text_length), generator=g)  # (B, L)
    mask = torch.ones_like(ids)

    def step():
        ctx = torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else contextlib.nullcontext()
        with ctx:
            states, m = model.encode_text(ids, mask)
            t = torch.rand(batch) * 1000
            noise = torch.randn_like(x0)
            s = (t / 1000)[:, None, None, None]
            pred = model(x0 * (1 - s) + noise * s, t, states, m)
            loss = torch.nn.functional.mse_loss(pred.float(), (noise - x0).float())
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    return step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--variants", default="base,w128d4")
    ap.add_argument("--precisions", default="fp32,bf16")
    a = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    cases = [(v, p) for v in a.variants.split(",") for p in a.precisions.split(",")]
    steps = {}
    for v, p in cases:
        model = build(v)
        steps[(v, p)] = step_fn(model, a.batch, p)
        steps[(v, p)]()  # warm-up
        steps[(v, p)].params = sum(q.numel() for q in model.denoiser.parameters())
    times = {c: [] for c in cases}
    load = os.getloadavg()[0]
    for _ in range(a.repeats):
        for c in cases:
            t0 = time.thread_time()
            steps[c]()
            times[c].append(time.thread_time() - t0)
    base = statistics.median(times[cases[0]])
    print(f"batch {a.batch}, 1 thread, thread CPU time, {a.repeats} interleaved repeats, load {load:.2f} -> "
          f"{os.getloadavg()[0]:.2f}")
    print("| variant | precision | denoiser params | best CPU-s/step | median | CPU-ms/image | vs first |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for c in cases:
        med = statistics.median(times[c])
        print(f"| {c[0]} | {c[1]} | {steps[c].params:,} | {min(times[c]):.3f} | {med:.3f} | "
              f"{1000 * med / a.batch:.1f} | {base / med:.2f}x |")


if __name__ == "__main__":
    main()
