"""Dense supervised tuning of a vision tower on the shapes world's ground truth (a stage of the LLaVA shapes
chain, `ShapesPlan.dense`).

A caption-trained tower's patch tokens say little about which shape is where (docs/llava.md: a linear read-out
finds 10% shape on the centre patches, no better than raw pixels). The shapes files hold every object's shape,
colour, size, centre and radius (`scenes_<split>.jsonl`), so the tower can be taught directly: every patch of the
tower's grid gets labels, and linear heads on the tokens LLaVA's projector reads (the feature layer, class token
dropped) learn them together with the tower:

- centre: the shape, colour and size of the object whose centre lies in the patch (or "none");
- cover: the shape, colour and place of the object whose disc (centre, radius) holds the patch's centre (or
  "none"), so every patch an object covers says what it belongs to and where that object is: its 3 x 3 region
  (the absolute-position answer: "top left" ... "center" ... "bottom right") and its centre's column and row
  in sixths of the image (finer, for left/right and above/below).

Only the blocks up to the feature layer train (the later ones are never read by LLaVA). The tuned tower is saved
as a ViT folder (`--vision` of `lingvis pretrain llava`), with `dense.json`: the training log and the heads'
accuracy on held-out (`val`) scenes.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from ..data.shapes import read_scenes_jsonl
from ..data.shapes_scene import COLOURS, SHAPES, SIZES
from ..nn.context import BlockInputs, run_blocks

# label name -> number of classes (0 = none)
PLACE_BINS = 6  # cover_x / cover_y: the object centre's column / row in sixths (two per third)
HEADS = {"centre_shape": 1 + len(SHAPES), "centre_colour": 1 + len(COLOURS), "centre_size": 1 + len(SIZES),
         "cover_shape": 1 + len(SHAPES), "cover_colour": 1 + len(COLOURS), "cover_region": 1 + 9,
         "cover_x": 1 + PLACE_BINS, "cover_y": 1 + PLACE_BINS}


@dataclass
class DenseTowerArgs:
    tower: str                     # ViT / CLIP / captioner / llava folder (its ViT is tuned) or a ViT preset
                                   # name such as "vit-tiny" (a new tower, trained from scratch)
    data: str                      # shapes folder (scenes_train.jsonl, scenes_val.jsonl and the images)
    out: str                       # the tuned ViT folder
    steps: int = 600
    batch: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.01
    feature_layer: int = -2        # the hidden state the heads read (HF counting, as LLaVA's projector reads it)
    n_scenes: int | None = 8000    # the first n training scenes (None: all)
    n_val: int = 100               # held-out scenes for the heads' accuracy
    seed: int = 0


def patch_targets(scenes, grid: int) -> dict[str, torch.Tensor]:
    """Per label of HEADS: (N, grid*grid) class indices (0 = none), patches row-major."""
    colours, shapes, sizes = list(COLOURS), list(SHAPES), list(SIZES)
    out = {k: torch.zeros(len(scenes), grid * grid, dtype=torch.long) for k in HEADS}
    centres = (torch.arange(grid) + 0.5) / grid  # patch centres along an axis, normalised
    v, u = torch.meshgrid(centres, centres, indexing="ij")  # (grid, grid) y and x of each patch centre
    for n, s in enumerate(scenes):
        for o in s.objects:
            p = min(int(o.cy * grid), grid - 1) * grid + min(int(o.cx * grid), grid - 1)
            out["centre_shape"][n, p] = 1 + shapes.index(o.shape)
            out["centre_colour"][n, p] = 1 + colours.index(o.colour)
            out["centre_size"][n, p] = 1 + sizes.index(o.size)
            inside = ((u - o.cx) ** 2 + (v - o.cy) ** 2 <= o.r ** 2).flatten()  # (grid*grid,)
            out["cover_shape"][n, inside] = 1 + shapes.index(o.shape)
            out["cover_colour"][n, inside] = 1 + colours.index(o.colour)
            col, row = min(int(o.cx * PLACE_BINS), PLACE_BINS - 1), min(int(o.cy * PLACE_BINS), PLACE_BINS - 1)
            out["cover_region"][n, inside] = 1 + (row * 3 // PLACE_BINS) * 3 + col * 3 // PLACE_BINS
            out["cover_x"][n, inside], out["cover_y"][n, inside] = 1 + col, 1 + row
    return out


def feature_tokens(vit, pixels: torch.Tensor, layer: int) -> torch.Tensor:
    """(N, 3, S, S) -> (N, P, C) the patch tokens of hidden state `layer` (HF counting: 0 = embeddings), as
    `Llava.image_features` reads them before the projector (class token dropped)."""
    depth = layer % (vit.config.depth + 1)
    hidden: list[torch.Tensor] = []
    run_blocks(vit.blocks[:depth], vit.drop(vit.embed(pixels)), BlockInputs(), hidden)
    return hidden[depth][:, 1:]


def load_split(data: Path, split: str, n: int | None, transform) -> tuple[list, torch.Tensor]:
    """The split's scenes (first n) and their images as (N, 3, S, S) through the tower's preprocessing."""
    from ..data.images import load_image

    recs = read_scenes_jsonl(data / f"scenes_{split}.jsonl")[:n]
    if not recs:
        raise ValueError(f"{data / f'scenes_{split}.jsonl'} holds no scenes")
    pixels = torch.stack([transform(load_image(data / "images" / r["file_name"])) for r in recs])
    return [r["scene"] for r in recs], pixels


@torch.no_grad()
def head_scores(vit, heads: nn.ModuleDict, pixels: torch.Tensor, targets: dict, layer: int) -> dict:
    """The heads on held-out scenes: centre F1 (object centre vs none), centre shape / colour / size accuracy on
    the true centre patches, cover shape / colour accuracy on covered patches (percent)."""
    feats = torch.cat([feature_tokens(vit, pixels[i:i + 100], layer) for i in range(0, len(pixels), 100)])
    pred = {k: heads[k](feats).argmax(-1) for k in heads}  # each (N, P)
    centre, cover = targets["centre_shape"] > 0, targets["cover_shape"] > 0
    found = pred["centre_shape"] > 0
    out = {"centre_f1": 2 * (found & centre).sum().item() / max(1, found.sum().item() + centre.sum().item())}
    for k in HEADS:
        where = centre if k.startswith("centre") else cover
        out[k] = (pred[k][where] == targets[k][where]).float().mean().item()
    return {k: round(100 * v, 1) for k, v in out.items()}


def new_or_loaded_tower(tower: str):
    """The ViT of a folder, or a new one from a registered ViT preset name."""
    from ..models.registry import PRESETS, build
    from .llava import vision_tower

    if not Path(tower).exists() and tower in PRESETS:
        if PRESETS[tower][0] != "vit":
            raise ValueError(f"preset {tower!r} is a {PRESETS[tower][0]} model, not a ViT")
        return build(tower)
    return vision_tower(tower)


def tune_tower(args: DenseTowerArgs) -> dict:
    """Train the heads and the tower's blocks up to the feature layer; save the tower (a ViT folder) and
    `dense.json` in `args.out`. Returns the log."""
    from .. import api
    from ..data.images import ImageTransform

    if args.steps < 1 or args.batch < 1:
        raise ValueError(f"steps and batch must be positive, got {args.steps}, {args.batch}")
    cpu, wall = time.process_time(), time.perf_counter()
    torch.manual_seed(args.seed)
    vit = new_or_loaded_tower(args.tower)
    c = vit.config
    tf = ImageTransform(size=c.resize_size or c.image_size, crop=c.image_size, mean=c.image_mean, std=c.image_std)
    data = Path(args.data)
    scenes, pixels = load_split(data, "train", args.n_scenes, tf)  # (N, 3, S, S)
    val_scenes, val_pixels = load_split(data, "val", args.n_val, tf)
    targets, val_targets = patch_targets(scenes, c.grid), patch_targets(val_scenes, c.grid)
    heads = nn.ModuleDict({k: nn.Linear(c.dim, n) for k, n in HEADS.items()})
    depth = args.feature_layer % (c.depth + 1)
    params = [p for m in (vit.patch_embed, vit.blocks[:depth], heads) for p in m.parameters()]
    params += [p for p in (vit.cls_token, vit.pos_embed) if isinstance(p, nn.Parameter)]
    if vit.ln_pre is not None:
        params += list(vit.ln_pre.parameters())
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=args.weight_decay)
    warmup = max(1, args.steps // 10)
    log: dict = {"args": asdict(args), "before": head_scores(vit.eval(), heads, val_pixels, val_targets,
                                                             args.feature_layer), "loss": []}
    vit.train()
    gen = torch.Generator().manual_seed(args.seed)
    for step in range(args.steps):
        for g in opt.param_groups:  # linear warm-up, cosine decay to 0
            g["lr"] = args.lr * min(1.0, (step + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * step / args.steps))
        idx = torch.randint(0, len(pixels), (args.batch,), generator=gen)
        feats = feature_tokens(vit, pixels[idx], args.feature_layer)  # (B, P, C)
        loss = sum(F.cross_entropy(heads[k](feats).flatten(0, 1), targets[k][idx].flatten()) for k in heads)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % 50 == 0 or step == args.steps - 1:
            log["loss"].append([step, round(loss.item(), 4)])
    vit.eval()
    log["after"] = head_scores(vit, heads, val_pixels, val_targets, args.feature_layer)
    log["cpu_s"], log["wall_s"] = round(time.process_time() - cpu, 1), round(time.perf_counter() - wall, 1)
    out = Path(args.out)
    api.save(vit, out)
    (out / "dense.json").write_text(json.dumps(log, indent=2))
    return log
