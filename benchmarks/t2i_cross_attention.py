"""Does the denoiser read the shape word? On single-object test renders noised to each sigma, with the scene's
caption: (1) the output change when the caption's shape word is swapped (next shape in SHAPES) against the change
when its colour word is swapped (next colour), mean |delta| of the denoiser's output; (2) the cross-attention mass
(mean over image tokens, heads and the 40 scenes) on the shape word, the colour word, the size word, the other
real tokens and the padding, per block; (3) per block, the RMS of each branch's gated output (self-attention,
cross-attention, MLP): a cross-attention branch whose gate stays near zero is not read.

    python -m benchmarks.t2i_cross_attention --model RUN [--scenes 40] [--sigmas 0.5,0.7,0.9]
"""
from __future__ import annotations

import argparse
import math
import random
import time
from dataclasses import replace

import numpy as np
import torch


def swapped(scene, field: str, values):
    """The single-object scene with its object's `field` replaced by the next value in `values`."""
    from lingvis.data.shapes_scene import Scene

    o = scene.objects[0]
    return Scene([replace(o, **{field: values[(values.index(getattr(o, field)) + 1) % len(values)]})])


def word_positions(ids: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
    """(N, L) bool: where two tokenised caption batches differ (the swapped word's tokens)."""
    return ids != other


class Recorder:
    """Forward hooks on every block: the cross-attention input and memory, and each branch's output and gate."""

    def __init__(self, blocks):
        self.rows: list[dict] = []
        self.handles = []
        for i, block in enumerate(blocks):
            for _, name, mod in block.branches:
                layer = getattr(block, name)
                self.handles.append(layer.register_forward_hook(self._out(i, name), with_kwargs=False))
                if name == "cross_attn":
                    self.handles.append(layer.register_forward_pre_hook(self._cross_in(i)))
                if mod is not None:
                    self.handles.append(getattr(block, mod).register_forward_hook(self._gate(i, name)))
        self.rec: dict = {}

    def _cross_in(self, i):
        def hook(module, args):
            h, ctx = args[0], args[1]
            self.rec[(i, "cross_in")] = (h.detach(), ctx.memory.detach(), ctx.memory_mask)
        return hook

    def _out(self, i, name):
        def hook(module, args, out):
            self.rec[(i, name, "out")] = out.detach()
        return hook

    def _gate(self, i, name):
        def hook(module, args, out):
            self.rec[(i, name, "gate")] = out[2].detach()  # (B, 1, C)
        return hook

    def close(self):
        for h in self.handles:
            h.remove()


def cross_weights(attn, h: torch.Tensor, memory: torch.Tensor, mask) -> torch.Tensor:
    """Softmax weights (B, H, N, L) of a cross-attention module (no q/k norm, no GQA: the DiT's)."""
    B, N, _ = h.shape
    H = attn.n_heads
    q = attn.q(h).view(B, N, H, -1).transpose(1, 2)  # (B, H, N, D)
    k = attn.kv(memory).chunk(2, dim=-1)[0].view(B, memory.shape[1], H, -1).transpose(1, 2)  # (B, H, L, D)
    s = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])  # (B, H, N, L)
    if mask is not None:
        s = s.masked_fill(~mask, float("-inf"))
    return s.softmax(-1)


def text_reading(model, tok, scenes, sigmas, seed: int = 0) -> list[dict]:
    """Per sigma: {sigma, d_shape, d_colour, out, blocks: [{mass: {word class: share}, rms: {branch: RMS}}]}."""
    from lingvis.data.shapes import render_scene
    from lingvis.data.shapes_language import captions
    from lingvis.data.shapes_scene import COLOURS, SHAPES, SIZES
    from lingvis.diffusion.sampling import prompt_tokens

    model.eval()
    den = model.ema if model.ema is not None and int(model.ema_updates) > 0 else model.denoiser
    if not hasattr(den, "blocks"):
        raise ValueError("t2i_cross_attention reads a DiT denoiser's blocks")
    x0 = torch.stack([torch.from_numpy(np.array(render_scene(s, model.image_size))).permute(2, 0, 1).float()
                      / 127.5 - 1 for s in scenes])  # (N, 3, H, W)

    def tokens(sc):
        return prompt_tokens(tok, [captions(s, random.Random(seed))[0] for s in sc], model.text_length)

    ids, mask = tokens(scenes)
    ids_shape, _ = tokens([swapped(s, "shape", list(SHAPES)) for s in scenes])
    ids_colour, _ = tokens([swapped(s, "colour", list(COLOURS)) for s in scenes])
    ids_size, _ = tokens([swapped(s, "size", list(SIZES)) for s in scenes])
    pos = {"shape": word_positions(ids, ids_shape), "colour": word_positions(ids, ids_colour),
           "size": word_positions(ids, ids_size)}
    real = mask.bool()
    pos["other real"] = real & ~torch.stack(list(pos.values())).any(0)
    pos["padding"] = ~real
    rows = []
    with torch.no_grad():
        enc = {k: model.encode_text(v, mask) for k, v in (("caption", ids), ("shape", ids_shape),
                                                          ("colour", ids_colour))}
        for sigma in sigmas:
            eps = torch.randn(x0.shape, generator=torch.Generator().manual_seed(seed))
            x = (1 - sigma) * x0 + sigma * eps
            t = torch.full((len(x),), sigma * 1000)
            rec = Recorder(den.blocks)
            out = den(x, t, *enc["caption"])
            rec.close()
            row = {"sigma": sigma, "d_shape": (den(x, t, *enc["shape"]) - out).abs().mean().item(),
                   "d_colour": (den(x, t, *enc["colour"]) - out).abs().mean().item(),
                   "out": out.abs().mean().item(), "blocks": []}
            for i, block in enumerate(den.blocks):
                h, memory, mmask = rec.rec[(i, "cross_in")]
                per_pos = cross_weights(block.cross_attn, h, memory, mmask).mean(dim=(1, 2))  # (B, L)
                mass = {k: (per_pos * p.float()).sum(-1).mean().item() for k, p in pos.items()}
                rms = {}
                for name in ("attn", "cross_attn", "mlp"):
                    y, g = rec.rec[(i, name, "out")], rec.rec.get((i, name, "gate"))
                    rms[name] = (y * g if g is not None else y).square().mean().sqrt().item()
                row["blocks"].append({"mass": mass, "rms": rms})
            rows.append(row)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--scenes", type=int, default=40)
    ap.add_argument("--sigmas", default="0.5,0.7,0.9")
    a = ap.parse_args()
    torch.set_num_threads(1)
    import lingvis
    from lingvis.data.shapes import make_split_scenes

    model, tok = lingvis.load(a.model), lingvis.load_tokenizer(a.model)
    scenes = [s for s in make_split_scenes("test", 20 * a.scenes, 0) if len(s.objects) == 1][:a.scenes]
    t0 = time.process_time()
    for r in text_reading(model, tok, scenes, [float(x) for x in a.sigmas.split(",")]):
        print(f"\nsigma {r['sigma']:g}: output change, shape word swapped {r['d_shape']:.4f}, colour word swapped "
              f"{r['d_colour']:.4f} (ratio {r['d_shape'] / max(r['d_colour'], 1e-12):.2f}); output mean |y| "
              f"{r['out']:.4f}")
        names = list(r["blocks"][0]["mass"])
        print("| block | " + " | ".join(f"attn on {k}" for k in names) + " | RMS gated self-attn | cross-attn | "
              "MLP |\n|---:|" + "---:|" * (len(names) + 3))
        for i, b in enumerate(r["blocks"]):
            print(f"| {i} | " + " | ".join(f"{v:.3f}" for v in b["mass"].values()) + " | "
                  + " | ".join(f"{v:.4f}" for v in b["rms"].values()) + " |")
    print(f"\n{time.process_time() - t0:.1f} CPU-s, 1 thread")


if __name__ == "__main__":
    main()
