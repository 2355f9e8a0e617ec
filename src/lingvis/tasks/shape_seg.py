"""A shape-aware auxiliary diffusion loss for the shapes world: a tiny frozen per-pixel shape segmenter (background
or one of the 5 shapes, trained in seconds on renders whose labels the renderer knows) reads the denoiser's x0
estimate, and the loss is its cross-entropy against the segmenter's own labels of the CLEAN image on the object
pixels. Why: the plain MSE gives the shape word almost nothing (an ideal denoiser's x0 error falls by 0.0013-0.0017
for knowing it, docs/text_to_image.md), while this term charges up to log(5) nats on every object pixel whose
outline reads as another shape, so knowing the shape is worth much more to the loss.

`ShapeSegmenter` is the net (dilated 3x3 convs, receptive field 33 px: a large 32px-world shape is 11.6 px across);
`train_shape_segmenter` fits it on fresh renders (blur and noise augmentation, so that soft x0 estimates at high
noise still read as shapes); `save` / `load_shape_segmenter` keep it as a folder; `shape_seg_loss` is the term."""
from __future__ import annotations

import json
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class ShapeSegConfig:
    classes: int = 6          # background + the 5 shapes (`SHAPES` order)
    width: int = 32           # channels of the hidden convolutions
    dilations: tuple[int, ...] = (1, 2, 4, 8, 1)  # one 3x3 convolution each, after a first 3x3 from RGB


class ShapeSegmenter(nn.Module):
    """(B, 3, H, W) images in [-1, 1] -> (B, classes, H, W) per-pixel logits."""

    def __init__(self, config: ShapeSegConfig | None = None):
        super().__init__()
        self.config = c = config or ShapeSegConfig()
        layers: list[nn.Module] = [nn.Conv2d(3, c.width, 3, padding=1), nn.SiLU()]
        for d in c.dilations:
            layers += [nn.Conv2d(c.width, c.width, 3, padding=d, dilation=d), nn.SiLU()]
        layers.append(nn.Conv2d(c.width, c.classes, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images)

    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "config.json").write_text(json.dumps({"type": "shape_segmenter", **asdict(self.config)}, indent=2))
        torch.save(self.state_dict(), folder / "model.pt")
        return folder


def load_shape_segmenter(folder: str | Path) -> ShapeSegmenter:
    """A saved segmenter, frozen and in eval mode."""
    folder = Path(folder)
    cfg_path = folder / "config.json"
    if not cfg_path.is_file():
        raise FileNotFoundError(f"{folder}: no config.json of a shape segmenter (train one with "
                                "`python -m benchmarks.t2i_shape_seg --out DIR`)")
    raw = json.loads(cfg_path.read_text())
    if raw.pop("type", None) != "shape_segmenter":
        raise ValueError(f"{folder}: config.json is not a shape segmenter's")
    raw["dilations"] = tuple(raw["dilations"])
    model = ShapeSegmenter(ShapeSegConfig(**raw))
    model.load_state_dict(torch.load(folder / "model.pt", map_location="cpu", weights_only=True))
    return model.eval().requires_grad_(False)


def render_batch(scenes, size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """Scenes -> ((N, 3, size, size) images in [-1, 1] as the diffusion recipe reads them, (N, size, size) labels)."""
    from lingvis.data.shapes_render import render_label_map, render_scene

    imgs = [torch.frombuffer(bytearray(render_scene(s, size).tobytes()), dtype=torch.uint8).view(size, size, 3)
            for s in scenes]
    images = torch.stack(imgs).permute(0, 3, 1, 2).float() / 127.5 - 1  # (N, 3, size, size)
    labels = torch.tensor([render_label_map(s, size) for s in scenes], dtype=torch.long)  # (N, size, size)
    return images, labels


def augment(images: torch.Tensor, generator: torch.Generator, max_blur: float = 1.2,
            max_noise: float = 0.3) -> torch.Tensor:
    """Per image: a Gaussian blur of sigma ~ U(0, max_blur) px and additive noise of std ~ U(0, max_noise)."""
    out = []
    for img in images:  # (3, H, W)
        s = float(torch.rand(1, generator=generator)) * max_blur
        if s > 0.15:
            r = max(1, int(3 * s + 0.5))
            k = torch.exp(-0.5 * (torch.arange(-r, r + 1, dtype=torch.float32) / s) ** 2)
            k = k / k.sum()  # (2r+1,)
            x = F.pad(img[None], (r, r, r, r), mode="replicate")  # (1, 3, H+2r, W+2r)
            x = F.conv2d(x, k.view(1, 1, 1, -1).expand(3, 1, 1, -1), groups=3)
            img = F.conv2d(x, k.view(1, 1, -1, 1).expand(3, 1, -1, 1), groups=3)[0]
        std = float(torch.rand(1, generator=generator)) * max_noise
        out.append(img + std * torch.randn(img.shape, generator=generator))
    return torch.stack(out)


def train_shape_segmenter(n_scenes: int = 3000, steps: int = 600, batch: int = 32, lr: float = 4e-3,
                          seed: int = 0, size: int = 32, config: ShapeSegConfig | None = None,
                          log=print) -> tuple[ShapeSegmenter, dict]:
    """Fit a segmenter on `n_scenes` fresh random 1-3 object renders (their own seed stream, not the diffusion
    data's); object pixels weigh as much as background in total. Returns (frozen model, {cpu_s, ...})."""
    from lingvis.data.shapes_scene import make_scene

    cpu = time.process_time()
    rng = random.Random(f"lingvis-shape-seg/{seed}")
    images, labels = render_batch([make_scene(rng, 1, 3, held_out="allow") for _ in range(n_scenes)], size)
    torch.manual_seed(seed)
    model = ShapeSegmenter(config)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    g = torch.Generator().manual_seed(seed)
    frac = float((labels > 0).float().mean())  # object share of the pixels
    weight = torch.tensor([frac / (1 - frac)] + [1.0] * (model.config.classes - 1))  # (classes,) balance bg
    for step in range(steps):
        idx = torch.randint(len(images), (batch,), generator=g)
        x = augment(images[idx], g)
        loss = F.cross_entropy(model(x), labels[idx], weight=weight)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if log and (step + 1) % 100 == 0:
            log(f"shape-seg step {step + 1}/{steps} loss {loss.item():.4f}")
    model.eval().requires_grad_(False)
    return model, {"cpu_s": round(time.process_time() - cpu, 1), "steps": steps, "scenes": n_scenes,
                   "object_pixel_share": round(frac, 4)}


@torch.no_grad()
def object_pixel_accuracy(model: ShapeSegmenter, images: torch.Tensor, labels: torch.Tensor) -> dict:
    """Share of object pixels labelled with their shape, of background pixels labelled background, and of objects
    whose majority vote over their pixels is their shape (objects = connected label regions, here by the label
    map's per-image shape set: each scene has distinct shapes or colours, so vote per (image, shape))."""
    pred = model(images).argmax(1)  # (N, H, W)
    obj = labels > 0
    votes, right = 0, 0
    for p, lab in zip(pred, labels):
        for k in lab.unique().tolist():
            if k == 0:
                continue
            m = lab == k
            votes += 1
            right += int(torch.bincount(p[m], minlength=model.config.classes)[1:].argmax() + 1 == k)
    return {"object_pixels": round(float((pred[obj] == labels[obj]).float().mean()), 4),
            "background_pixels": round(float((pred[~obj] == 0).float().mean()), 4),
            "objects": round(right / max(votes, 1), 4)}


def shape_seg_loss(segmenter: ShapeSegmenter, x0_hat: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) x0 estimate (with grad) and clean image in [-1, 1] -> (B,) mean cross-entropy of the frozen
    segmenter's logits on the estimate against its labels of the clean image, over the pixels it labels as an
    object (0 for an image with none)."""
    with torch.no_grad():
        target = segmenter(x0.float()).argmax(1)  # (B, H, W) 0 = background
    ce = F.cross_entropy(segmenter(x0_hat.float()), target, reduction="none")  # (B, H, W)
    obj = (target > 0).float()  # (B, H, W)
    return (ce * obj).sum(dim=(1, 2)) / obj.sum(dim=(1, 2)).clamp(min=1)
