"""Region tokens for the fusion model, as VL-BERT feeds its stack: one token per object region (RoI features
+ box-geometry embedding) instead of a grid.

Regions come from the caller (`boxes`, e.g. a detector's) or from the built-in proposer, which needs no
training and suits scenes on a plain background (rendered scenes, diagrams, scans): pixels that differ
from the median colour of the image border are foreground, grouped into 8-connected components (label
propagation by max-pooling), and the `max_regions` largest components above `min_area` become boxes.
Each box is cropped square around its centre (with a margin), resampled to `crop` pixels (RoIAlign on the
pixels, by `grid_sample`), and encoded by the shared ResNet-style `models.cnn.CNN` (mean-pooled)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class RegionConfig:
    max_regions: int = 6      # image tokens per image (fewer regions are padded and masked)
    crop: int = 16            # side of the resampled square crop fed to the CNN
    margin: float = 0.15      # context added around the box, as a fraction of its longer side
    threshold: float = 0.2    # foreground: max channel difference from the background colour, in [0, 1] units
    min_area: float = 0.002   # smallest region, as a fraction of the image area
    max_iters: int = 256      # label-propagation cap (components longer than this split; raise for huge images)
    fourier: int = 0          # box geometry also as sin/cos at this many frequencies (0 = raw numbers only)
    norm: bool = False        # LayerNorm on region tokens (content + geometry), as on the text embeddings
    split_norm: bool = False  # LXMERT: LayerNorm content and geometry apart, then average (neither drowns the other)

    def __post_init__(self):
        if self.max_regions < 1 or self.crop < 4:
            raise ValueError(f"max_regions must be >= 1 and crop >= 4, got {self.max_regions} and {self.crop}")
        if not 0 < self.threshold < 1:
            raise ValueError(f"region threshold must be in (0, 1), got {self.threshold}")


def valid_size(pixel_mask: torch.Tensor | None, B: int, H: int, W: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Valid rows and columns of each image in a padded batch: (B, H, W) 0/1 mask (None = all valid) ->
    (B,), (B,) long counts (images are padded at the bottom/right, as `pad_images` does)."""
    if pixel_mask is None:
        return torch.full((B,), H), torch.full((B,), W)
    return pixel_mask.sum(1).amax(1).clamp(min=1), pixel_mask.sum(2).amax(1).clamp(min=1)


def _background(pixels: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Median colour of the 1-pixel frame of each image's valid area: (B, 3, H, W), (B, H, W) -> (B, 3)."""
    outside = F.pad((~valid).float()[:, None], (1, 1, 1, 1), value=1.0)  # the image edge counts as outside
    frame = (F.max_pool2d(outside, 3, 1)[:, 0] > 0) & valid  # (B, H, W)
    return torch.stack([pixels[b][:, frame[b]].median(dim=1).values for b in range(pixels.shape[0])])


@torch.no_grad()
def propose_boxes(pixels: torch.Tensor, pixel_mask: torch.Tensor | None, cfg: RegionConfig,
                  mean: torch.Tensor, std: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised pixels (B, 3, H, W) -> boxes (B, R, 4) as (x0, y0, x1, y1) in [0, 1] of each image's valid
    area (largest regions first, then ordered left to right) and box mask (B, R) with 1 on real boxes."""
    B, _, H, W = pixels.shape
    valid = torch.ones(B, H, W, dtype=torch.bool) if pixel_mask is None else pixel_mask.bool()
    rgb = pixels.float() * std.view(1, 3, 1, 1) + mean.view(1, 3, 1, 1)  # back to [0, 1]
    fg = ((rgb - _background(rgb, valid)[..., None, None]).abs().amax(1) > cfg.threshold) & valid  # (B, H, W)
    labels = torch.arange(1, H * W + 1, dtype=torch.float32).view(1, 1, H, W) * fg[:, None]  # (B, 1, H, W)
    for i in range(cfg.max_iters):  # every pixel takes the largest label of its 8-neighbourhood
        nxt = F.max_pool2d(labels, 3, 1, 1) * fg[:, None]
        if i % 4 == 3 and torch.equal(nxt, labels):
            break
        labels = nxt
    lab = labels.long().view(B, H * W)
    key = torch.arange(B)[:, None] * (H * W + 1) + lab  # (B, HW) component id unique across the batch
    on = fg.view(B, H * W)
    comp, inv = torch.unique(key[on], return_inverse=True)  # (K,), (P,)
    pix = torch.arange(H * W).expand(B, -1)[on]  # (P,) flat pixel index
    ys, xs = pix // W, pix % W
    K = len(comp)
    x0 = torch.full((K,), W).scatter_reduce(0, inv, xs, "amin")
    y0 = torch.full((K,), H).scatter_reduce(0, inv, ys, "amin")
    x1 = torch.zeros(K, dtype=torch.long).scatter_reduce(0, inv, xs, "amax") + 1
    y1 = torch.zeros(K, dtype=torch.long).scatter_reduce(0, inv, ys, "amax") + 1
    area = torch.bincount(inv, minlength=K)
    owner = comp // (H * W + 1)
    hs, ws = valid_size(pixel_mask, B, H, W)
    boxes = torch.zeros(B, cfg.max_regions, 4)
    mask = torch.zeros(B, cfg.max_regions, dtype=torch.long)
    for b in range(B):
        idx = (owner == b).nonzero().flatten()
        idx = idx[area[idx] >= cfg.min_area * float(hs[b] * ws[b])]
        idx = idx[area[idx].argsort(descending=True)[:cfg.max_regions]]
        idx = idx[torch.argsort(x0[idx] * (H + 1) + y0[idx])]  # reading order: left to right
        n = len(idx)
        scale = torch.tensor([ws[b], hs[b], ws[b], hs[b]], dtype=torch.float32)
        boxes[b, :n] = torch.stack([x0[idx], y0[idx], x1[idx], y1[idx]], dim=1).float() / scale
        mask[b, :n] = 1
    return boxes.to(pixels.device), mask.to(pixels.device)


def crop_regions(pixels: torch.Tensor, pixel_mask: torch.Tensor | None, boxes: torch.Tensor,
                 box_mask: torch.Tensor, side: int, margin: float) -> torch.Tensor:
    """Square crops around the real boxes, resampled to `side`: (B, 3, H, W), boxes (B, R, 4) in [0, 1] of
    the valid area -> (n_real, 3, side, side) in the order of `box_mask.nonzero()`."""
    B, _, H, W = pixels.shape
    rows, cols = valid_size(pixel_mask, B, H, W)
    hs, ws = rows.to(pixels.device).float() / H, cols.to(pixels.device).float() / W  # valid fraction of the padding
    b, r = box_mask.nonzero(as_tuple=True)
    bx = boxes[b, r].float()  # (n, 4)
    cx, cy = (bx[:, 0] + bx[:, 2]) / 2 * ws[b], (bx[:, 1] + bx[:, 3]) / 2 * hs[b]  # centre, padded frame
    half = torch.maximum((bx[:, 2] - bx[:, 0]) * ws[b] * W, (bx[:, 3] - bx[:, 1]) * hs[b] * H) * (0.5 + margin)
    theta = torch.zeros(len(b), 2, 3, device=pixels.device)  # output [-1, 1] -> input [-1, 1]
    theta[:, 0, 0], theta[:, 1, 1] = 2 * half / W, 2 * half / H
    theta[:, 0, 2], theta[:, 1, 2] = 2 * cx - 1, 2 * cy - 1
    grid = F.affine_grid(theta, [len(b), pixels.shape[1], side, side], align_corners=False)
    return F.grid_sample(pixels[b], grid.to(pixels.dtype), mode="bilinear", padding_mode="border",
                         align_corners=False)


def box_geometry(boxes: torch.Tensor, fourier: int = 0) -> torch.Tensor:
    """(..., 4) boxes -> (..., 7 * (1 + 2 * fourier)) geometry features: corners, centre and area (all in
    [0, 1]), then sin/cos of each at frequencies pi * 2^k, k < fourier (VL-BERT embeds box geometry
    sinusoidally)."""
    x0, y0, x1, y1 = boxes.unbind(-1)
    g = torch.stack([x0, y0, x1, y1, (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) * (y1 - y0)], dim=-1)  # (..., 7)
    if not fourier:
        return g
    ang = g[..., None] * (torch.pi * 2.0 ** torch.arange(fourier, device=g.device, dtype=g.dtype))  # (..., 7, K)
    return torch.cat([g, ang.sin().flatten(-2), ang.cos().flatten(-2)], dim=-1)


class RegionStem(nn.Module):
    """Boxes (given or proposed) -> RoI crops -> CNN features -> region tokens with box-geometry embeddings."""

    def __init__(self, regions: dict, cnn_config: dict, dim: int, mean: list[float], std: list[float]):
        super().__init__()
        from .cnn import CNN, CNNConfig

        self.cfg = RegionConfig(**regions)
        self.cnn = CNN(CNNConfig(**{"pool": "mean", **cnn_config, "image_size": self.cfg.crop}))
        self.feature_dim = self.cnn.config.feature_dim
        self.proj = nn.Linear(self.feature_dim, dim)
        self.geometry = nn.Sequential(nn.Linear(7 * (1 + 2 * self.cfg.fourier), dim), nn.GELU(), nn.Linear(dim, dim))
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32), persistent=False)

    def forward(self, pixels: torch.Tensor, pixel_mask: torch.Tensor | None = None,
                boxes: torch.Tensor | None = None, box_mask: torch.Tensor | None = None):
        """-> content (B, R, C), geometry (B, R, C), box mask (B, R), CNN features (B, R, F) (zeros on padding)."""
        if boxes is None:
            boxes, box_mask = propose_boxes(pixels, pixel_mask, self.cfg, self.mean, self.std)
        elif box_mask is None:
            box_mask = torch.ones(boxes.shape[:2], dtype=torch.long, device=boxes.device)
        if boxes.shape[-1] != 4 or boxes.shape[0] != pixels.shape[0]:
            raise ValueError(f"boxes must be (B={pixels.shape[0]}, R, 4), got {tuple(boxes.shape)}")
        B, R = box_mask.shape
        feats = pixels.new_zeros(B, R, self.feature_dim)
        if box_mask.any():
            crops = crop_regions(pixels, pixel_mask, boxes, box_mask, self.cfg.crop, self.cfg.margin)
            feats = feats.index_put(tuple(box_mask.nonzero(as_tuple=True)), self.cnn(crops).to(feats.dtype))
        geometry = self.geometry(box_geometry(boxes.to(pixels.dtype), self.cfg.fourier))
        return self.proj(feats), geometry, box_mask.long(), feats


class RegionTokens(nn.Module):
    """[image CLS] + one token per region (content + geometry); same call signature as `ImageTokens`."""

    def __init__(self, stem: RegionStem, dim: int, dropout: float, mask_token: bool, eps: float = 1e-6):
        super().__init__()
        self.stem = stem
        split = stem.cfg.split_norm
        self.ln = nn.LayerNorm(dim, eps=eps) if stem.cfg.norm and not split else nn.Identity()
        self.ln_content = nn.LayerNorm(dim, eps=eps) if split else None
        self.ln_geometry = nn.LayerNorm(dim, eps=eps) if split else None
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim)) if mask_token else None
        self.drop = nn.Dropout(dropout)

    def forward(self, pixels: torch.Tensor, pixel_mask: torch.Tensor | None = None,
                masked: torch.Tensor | None = None, with_features: bool = False,
                boxes: torch.Tensor | None = None, box_mask: torch.Tensor | None = None):
        """-> tokens (B, 1 + R, C), key mask (B, 1 + R), region features (B, R, F) or None."""
        content, geometry, box_mask, feats = self.stem(pixels, pixel_mask, boxes, box_mask)
        if masked is not None:
            if self.mask_token is None:
                raise ValueError("this model has no image mask token (config mif_head=False)")
            content = torch.where(masked[..., None], self.mask_token.to(content.dtype), content)
        B = content.shape[0]
        if self.ln_content is not None:  # (B, R, C): position keeps half of each token whatever the content
            tokens = (self.ln_content(content) + self.ln_geometry(geometry)) / 2
        else:
            tokens = self.ln(content + geometry)
        x = self.drop(torch.cat([self.cls.expand(B, -1, -1), tokens], dim=1))  # (B, 1 + R, C)
        mask = torch.cat([torch.ones(B, 1, dtype=torch.long, device=x.device), box_mask], dim=1)
        return x, mask, (feats.detach() if with_features else None)
