"""How much does knowing the shape word lower the best possible denoising error, per noise level? The
training-set posterior mean E[x0 | x_t, words] (rectified flow x_t = (1 - s) x0 + s eps, Gaussian likelihood
over the N training renders, restricted to the renders that match the given words) is scored on held-out
single-object test renders; the MSE drop from adding a word to the other two is the loss signal an ideal denoiser
gets for reading it. The prior is `--train` fresh single-object scenes from the generator (the more, the denser
the positions: with too few, the posterior at low noise is the nearest render of the right words, whose position
differs, and restricting by a word can raise the error).

    python -m benchmarks.t2i_ideal_gain [--train 20000] [--scenes 40] [--sigmas 0.2,0.35,0.5,0.7,0.9]
"""
from __future__ import annotations

import argparse
import random
import time

import numpy as np
import torch

CONDITIONS = {"none": (), "no shape": ("colour", "size"), "no colour": ("size", "shape"),
              "no size": ("colour", "shape"), "all words": ("colour", "size", "shape")}


def renders(scenes, size: int) -> torch.Tensor:
    from lingvis.data.shapes import render_scene

    return torch.stack([torch.from_numpy(np.array(render_scene(s, size))).permute(2, 0, 1).float() / 127.5 - 1
                        for s in scenes]).flatten(1)  # (N, 3 * size * size) in [-1, 1]


def ideal_gain(train_scenes, test_scenes, sigmas, size: int = 32, seed: int = 0) -> list[dict]:
    """[{sigma, mse: {condition: x0 MSE of the posterior mean}}] over the test scenes (single-object)."""
    X, Y = renders(train_scenes, size), renders(test_scenes, size)  # (N, P), (M, P)
    attr = {k: [getattr(s.objects[0], k) for s in train_scenes] for k in ("shape", "colour", "size")}
    rows = []
    g = torch.Generator().manual_seed(seed)
    for s in sigmas:
        xt = (1 - s) * Y + s * torch.randn(Y.shape, generator=g)  # (M, P)
        logw = -torch.cdist(xt.double(), (1 - s) * X.double()).square() / (2 * s * s)  # (M, N)
        mse = {}
        for name, fields in CONDITIONS.items():
            keep = torch.tensor([[all(attr[f][i] == getattr(t.objects[0], f) for f in fields)
                                  for i in range(len(train_scenes))] for t in test_scenes])  # (M, N)
            w = logw.masked_fill(~keep, float("-inf")).softmax(-1).float()  # (M, N)
            mse[name] = (w @ X - Y).square().mean().item()
        rows.append({"sigma": s, "mse": mse})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--train", type=int, default=20000, help="single-object prior scenes (generator, fixed seed)")
    ap.add_argument("--scenes", type=int, default=40)
    ap.add_argument("--sigmas", default="0.2,0.35,0.5,0.7,0.9")
    a = ap.parse_args()
    torch.set_num_threads(1)
    from lingvis.data.shapes import make_split_scenes
    from lingvis.data.shapes_scene import make_scene

    rng = random.Random("lingvis-shapes/0/train-single")  # benchmarks.t2i_variants --single-only's scenes
    train = [make_scene(rng, 1, 1) for _ in range(a.train)]
    test = [s for s in make_split_scenes("test", 20 * a.scenes, 0) if len(s.objects) == 1][:a.scenes]
    t0 = time.process_time()
    rows = ideal_gain(train, test, [float(x) for x in a.sigmas.split(",")])
    names = list(CONDITIONS)
    print("x0 MSE of the posterior mean over the prior renders, by the words it is given; the gain of a word is the\n"
          "error without it minus with all three\n\n| sigma | " + " | ".join(names)
          + " | gain: shape | colour | size |\n|---:|" + "---:|" * (len(names) + 3))
    for r in rows:
        m = r["mse"]
        gains = [m[f"no {w}"] - m["all words"] for w in ("shape", "colour", "size")]
        print(f"| {r['sigma']:g} | " + " | ".join(f"{m[n]:.4f}" for n in names) + " | "
              + " | ".join(f"{v:.4f}" for v in gains) + " |")
    print(f"\n{time.process_time() - t0:.1f} CPU-s, 1 thread")


if __name__ == "__main__":
    main()
