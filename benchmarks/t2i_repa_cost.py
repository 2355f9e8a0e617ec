"""CPU cost of REPA per training step: the shapes recipe's DiT (t2i-shapes-dit-conv-s, batch 32, 32 px) trained with
and without the REPA term (`DiffusionTask.repa_weight`; the frozen encoder's forward + the head), steps interleaved
A/B in one process on one thread, timed with `time.thread_time()` (CPU time: a loaded machine moves wall time, not
this); prints the median CPU-ms per step of each and their ratio.

    python -m benchmarks.t2i_repa_cost --encoder CLIP_RUN [--layer -2] [--steps 12] [--depth 2]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--encoder", required=True, help="a CLIP run or image-tower folder (the REPA target)")
    ap.add_argument("--layer", type=int, help="a ViT encoder's hidden layer")
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--depth", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(1)
    from lingvis.models import registry
    from lingvis.models.text_to_image import TextToImage
    from lingvis.tasks.diffusion import DiffusionTask
    from lingvis.tasks.repa import load_repa_encoder

    enc = load_repa_encoder(a.encoder, a.layer)
    _, preset = registry.preset_of("t2i-shapes-dit-conv-s", "text_to_image")
    cfg = registry.make_config("text_to_image", {**preset.__dict__, "scheduler": {
        "_class_name": "FlowMatchEulerDiscreteScheduler", "shift": 1.0}})
    torch.manual_seed(0)
    models = {"plain": TextToImage(cfg).train(), "repa": TextToImage(cfg).train()}
    models["repa"].add_repa_head(enc.dim)
    tasks = {"plain": DiffusionTask(lambda t: t, cfg.scheduler, text_dropout=0.0, timesteps="logit_normal"),
             "repa": DiffusionTask(lambda t: t, cfg.scheduler, text_dropout=0.0, timesteps="logit_normal",
                                   repa_weight=0.5, repa_depth=a.depth, repa_encoder=enc)}
    opts = {k: torch.optim.Adam([p for p in m.parameters() if p.requires_grad], lr=1e-3) for k, m in models.items()}
    g = torch.Generator().manual_seed(0)
    vocab = cfg.text["vocab_size"]
    times: dict[str, list[float]] = {"plain": [], "repa": []}
    for step in range(a.steps + 2):
        batch = {"pixel_values": torch.rand(32, 3, 32, 32, generator=g) * 2 - 1,
                 "input_ids": torch.randint(1, vocab, (32, 16), generator=g), "attention_mask": torch.ones(32, 16)}
        for name in (("plain", "repa") if step % 2 else ("repa", "plain")):
            t0 = time.thread_time()
            loss, _ = tasks[name].loss(models[name], batch)
            opts[name].zero_grad()
            loss.backward()
            opts[name].step()
            if step >= 2:  # two warm-up steps each
                times[name].append(time.thread_time() - t0)
    med = {k: statistics.median(v) * 1000 for k, v in times.items()}
    print(f"CPU-ms per step (median of {a.steps}, thread_time, 1 thread): plain {med['plain']:.1f}, "
          f"repa {med['repa']:.1f}, ratio {med['repa'] / med['plain']:.3f}")


if __name__ == "__main__":
    main()
