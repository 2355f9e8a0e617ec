"""Experiment: tune a llava run's vision tower on the shapes world with a dense objective, so the patch tokens
the projector reads say which shape (colour, size) is where. Every patch of the tower's grid is labelled with
the shape, colour and size of the object whose centre lies in it (or "none"); linear heads on the feature-layer
patch tokens (the projector's input) learn them with the tower. The tuned tower is saved as a ViT folder, ready
for `lingvis pretrain llava --vision OUT`. An experiment, not a recipe: a plain loop (no trainer run folder,
no resume); see docs/llava.md for what it measured.

    python -m benchmarks.llava_dense_tower RUN OUT [--steps 300] [--scenes 3000]
"""
from __future__ import annotations

import argparse
import json
import math
import time

import torch
from torch import nn
from torch.nn import functional as F

from benchmarks.llava_probe import SHAPES, patch_labels


def size_labels(scenes, grid: int) -> torch.Tensor:
    """(N, grid*grid): 0 = no object centre in the patch, else 1 + index of the object's size."""
    from lingvis.data.shapes_scene import SIZES

    out = torch.zeros(len(scenes), grid * grid, dtype=torch.long)
    for n, s in enumerate(scenes):
        for o in s.objects:
            out[n, min(int(o.cy * grid), grid - 1) * grid + min(int(o.cx * grid), grid - 1)] = \
                1 + list(SIZES).index(o.size)
    return out


def tune_tower(run: str, out: str, steps: int = 300, n_scenes: int = 3000, batch: int = 64, lr: float = 1e-3,
               seed: int = 0) -> dict:
    import lingvis
    from lingvis.data.llava_inputs import pixel_values
    from lingvis.data.shapes import make_split_scenes
    from lingvis.data.shapes_render import render_scene
    from lingvis.data.shapes_scene import COLOURS, SIZES

    cpu = time.process_time()
    torch.manual_seed(seed)
    llava = lingvis.load(run)  # its tower, feature layer and preprocessing
    llava.projector = nn.Identity()  # image_features -> the projector's input
    g, dim = llava.vision.config.grid, llava.vision.config.dim * len(llava.feature_layers)
    scenes = make_split_scenes("train", n_scenes, seed)
    px = torch.cat([pixel_values(llava, [render_scene(s, 64) for s in scenes[i:i + 200]])
                    for i in range(0, n_scenes, 200)])  # (N, 3, S, S)
    shape, colour = patch_labels(scenes, g)
    labels = {"shape": shape, "colour": colour, "size": size_labels(scenes, g)}  # each (N, P)
    heads = nn.ModuleDict({"shape": nn.Linear(dim, 1 + len(SHAPES)), "colour": nn.Linear(dim, 1 + len(COLOURS)),
                           "size": nn.Linear(dim, 1 + len(SIZES))})
    llava.vision.requires_grad_(True).train()
    opt = torch.optim.AdamW([*llava.vision.parameters(), *heads.parameters()], lr=lr, weight_decay=0.01)
    losses = []
    for step in range(steps):
        for group in opt.param_groups:  # 10% warm-up, cosine decay
            group["lr"] = lr * min(1.0, (step + 1) / max(1, steps // 10)) * 0.5 * (1 + math.cos(math.pi * step / steps))
        idx = torch.randint(0, n_scenes, (batch,))
        feats = llava.image_features(px[idx])[:, -g * g:]  # (B, P, C) patch tokens
        loss = sum(F.cross_entropy(heads[k](feats).flatten(0, 1), labels[k][idx].flatten()) for k in heads)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(round(loss.item(), 4))
    lingvis.save(llava.vision.eval(), out)
    return {"steps": steps, "first_loss": losses[0], "last_loss": losses[-1],
            "cpu_s": round(time.process_time() - cpu, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", help="llava run (stage 1 or 2) whose tower to tune")
    ap.add_argument("out", help="folder for the tuned tower (a ViT)")
    ap.add_argument("--steps", type=int, default=300, help="optimizer steps")
    ap.add_argument("--scenes", type=int, default=3000, help="training scenes")
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    print(json.dumps(tune_tower(a.run, a.out, a.steps, a.scenes)))


if __name__ == "__main__":
    main()
