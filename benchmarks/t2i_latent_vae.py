"""A small AutoencoderKL for the 32px shapes on a CPU-time budget, and whether the shapes detector still reads its
reconstructions: exact-scene accuracy (`scene_matches`) of the detector on the decoded posterior mean of
ground-truth renders of random 1-3 object scenes, against the same renders unencoded (the latent space of the
latent text-to-image runs, `benchmarks.t2i_variants --vae RUN`).

    python -m benchmarks.t2i_latent_vae --out DIR --name NAME [--preset vae-shapes-32] [--minutes 2] [--scenes 200]
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import random
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from benchmarks.t2i_detector_robustness import miss_kind
from benchmarks.t2i_variants import shapes_data


def reconstruction_accuracy(vae, n: int, size: int = 32, seed: str = "detector/0") -> dict:
    """Detector exact-scene accuracy on n renders and on their reconstructions (posterior mean, decoded)."""
    from lingvis.data.shapes import make_scene, render_scene
    from lingvis.eval.shapes_detector import detect_shapes, scene_matches

    rng = random.Random(seed)
    scenes = [make_scene(rng, 1, 3, "allow") for _ in range(n)]
    ims = [render_scene(s, size) for s in scenes]
    x = torch.stack([torch.from_numpy(np.asarray(im, dtype=np.float32)).permute(2, 0, 1) for im in ims]) / 127.5 - 1
    vae.eval()
    with torch.no_grad():
        rec = torch.cat([vae.decode(vae.encode(x[i:i + 50])[0]) for i in range(0, n, 50)])  # (n, 3, H, W)
    rec = ((rec.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()
    ok_real = ok_rec = 0
    misses = collections.Counter()
    for s, im, r in zip(scenes, ims, rec):
        ok_real += scene_matches(detect_shapes(im), s.objects)
        dets = detect_shapes(Image.fromarray(r))
        hit = scene_matches(dets, s.objects)
        ok_rec += hit
        if not hit:
            misses[miss_kind(dets, s.objects)] += 1
    mse = float(((torch.from_numpy(rec).float() - torch.from_numpy(np.stack([np.asarray(i) for i in ims])).float())
                 / 255).square().mean())
    return {"scenes": n, "real_accuracy": ok_real / n, "reconstruction_accuracy": ok_rec / n,
            "reconstruction_mse": round(mse, 5), "misses": dict(misses.most_common(5))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--name", required=True)
    ap.add_argument("--preset", default="vae-shapes-32")
    ap.add_argument("--minutes", type=float, default=2.0)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--kl-weight", type=float, default=1e-4)
    ap.add_argument("--scenes", type=int, default=200)
    a = ap.parse_args()
    torch.set_num_threads(1)
    import lingvis
    from lingvis.recipes.vae import VAEPretrainArgs, pretrain_vae
    from lingvis.train.config import TrainConfig

    root = Path(a.out)
    data = shapes_data(root)
    run = root / a.name
    args = VAEPretrainArgs(out=str(run), data=str(data / "captions_train.json"),
                           val_data=str(data / "captions_val.json"), preset=a.preset, kl_weight=a.kl_weight,
                           max_val=64)
    cfg = TrainConfig(max_steps=100_000, max_minutes=a.minutes, budget_clock="cpu", batch_size=a.batch, lr=a.lr,
                      warmup_steps=20, beta2=0.99, weight_decay=0.0, eval_every=100_000, eval_batches=2,
                      log_every=50, progress=False)
    cpu, wall, load = time.process_time(), time.perf_counter(), os.getloadavg()[0]
    summary = pretrain_vae(args, cfg)
    res = {"name": a.name, "argv": vars(a), "steps": summary["step"], "parameters": summary["parameters"],
           "latent_shape": summary["latent_shape"], "train_cpu_s": round(time.process_time() - cpu, 1),
           "train_wall_s": round(time.perf_counter() - wall, 1),
           "load": [round(load, 2), round(os.getloadavg()[0], 2)], "eval": summary.get("eval")}
    vae = lingvis.load(str(run))
    res["scaling_factor"] = vae.config.scaling_factor
    res.update(reconstruction_accuracy(vae, a.scenes))
    (run / "vae.json").write_text(json.dumps(res, indent=2))
    print(json.dumps(res))


if __name__ == "__main__":
    main()
