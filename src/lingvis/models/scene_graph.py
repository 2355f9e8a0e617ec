"""Scene-graph model: regions (given boxes, or the built-in proposer of `fusion_regions`) -> objects with a
type and attributes, and a score for every (subject, predicate, object) over ordered region pairs.

Each region is an RoI crop encoded by the shared ResNet-style CNN plus a box-geometry embedding
(`fusion_regions.RegionStem`), refined by a small MLP into an object embedding `h` (B, R, C). Object heads
classify the type and each attribute; the predicate head scores ordered pairs from [h_i, h_j, relative box
geometry] with independent sigmoids (a pair may be both `left_of` and `above`), as Visual Genome's
"no graph constraint" evaluation ranks them."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from .fusion_regions import RegionStem, box_geometry
from .registry import register_family, register_preset
from .vit import CLIP_MEAN, CLIP_STD


@dataclass
class SceneGraphConfig:
    image_size: int = 64
    dim: int = 128
    hidden: int = 256
    types: list[str] = field(default_factory=lambda: ["circle", "square", "triangle", "star", "cross"])
    attributes: dict[str, list[str]] = field(default_factory=lambda: {
        "colour": ["red", "green", "blue", "yellow", "purple", "orange"], "size": ["small", "large"]})
    predicates: list[str] = field(default_factory=lambda: ["left_of", "right_of", "above", "below"])
    regions: dict = field(default_factory=lambda: {"max_regions": 6, "crop": 16, "fourier": 4})
    cnn: dict = field(default_factory=lambda: {"stem_width": 32, "stem_stride": 1, "widths": [32, 64],
                                               "depths": [1, 1], "norm": "groupnorm"})
    dropout: float = 0.0
    image_mean: list[float] = field(default_factory=lambda: list(CLIP_MEAN))
    image_std: list[float] = field(default_factory=lambda: list(CLIP_STD))

    def __post_init__(self):
        if not self.types or not self.predicates:
            raise ValueError("a scene-graph model needs at least one object type and one predicate")
        for name, values in self.attributes.items():
            if not values:
                raise ValueError(f"attribute {name!r} has no values")


def pair_geometry(boxes: torch.Tensor) -> torch.Tensor:
    """(B, R, 4) boxes -> (B, R, R, 8) features of each ordered pair (i, j): centre offsets of j from i,
    log size ratios, and both boxes' widths and heights."""
    x0, y0, x1, y1 = boxes.unbind(-1)  # (B, R) each
    cx, cy, w, h = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0).clamp(min=1e-3), (y1 - y0).clamp(min=1e-3)
    dx, dy = cx[:, None, :] - cx[:, :, None], cy[:, None, :] - cy[:, :, None]  # (B, R, R): j relative to i
    lw, lh = (w[:, None, :] / w[:, :, None]).log(), (h[:, None, :] / h[:, :, None]).log()
    R = boxes.shape[1]
    wi, hi = w[:, :, None].expand(-1, -1, R), h[:, :, None].expand(-1, -1, R)
    wj, hj = w[:, None, :].expand(-1, R, -1), h[:, None, :].expand(-1, R, -1)
    return torch.stack([dx, dy, lw, lh, wi, hi, wj, hj], dim=-1)  # (B, R, R, 8)


class SceneGraphModel(nn.Module):
    """`forward(pixels (B, 3, H, W), boxes (B, R, 4) | None, box_mask (B, R) | None)` -> dict with
    `type_logits` (B, R, T), `attr_logits` {name: (B, R, A)}, `pred_logits` (B, R, R, P) (subject i,
    object j), `boxes` (B, R, 4) in [0, 1] and `box_mask` (B, R)."""

    def __init__(self, config: SceneGraphConfig):
        super().__init__()
        self.config = c = config
        self.stem = RegionStem(c.regions, c.cnn, c.dim, c.image_mean, c.image_std)
        self.obj = nn.Sequential(nn.LayerNorm(c.dim), nn.Linear(c.dim, c.hidden), nn.GELU(), nn.Dropout(c.dropout),
                                 nn.Linear(c.hidden, c.dim), nn.GELU())
        self.type_head = nn.Linear(c.dim, len(c.types))
        self.attr_heads = nn.ModuleDict({k: nn.Linear(c.dim, len(v)) for k, v in c.attributes.items()})
        geo = 7 * (1 + 2 * self.stem.cfg.fourier)
        self.pair = nn.Sequential(nn.Linear(2 * c.dim + 8 + 2 * geo, c.hidden), nn.GELU(), nn.Dropout(c.dropout),
                                  nn.Linear(c.hidden, c.hidden), nn.GELU(), nn.Linear(c.hidden, len(c.predicates)))

    @property
    def max_regions(self) -> int:
        return self.stem.cfg.max_regions

    def forward(self, pixels: torch.Tensor, boxes: torch.Tensor | None = None,
                box_mask: torch.Tensor | None = None) -> dict:
        if boxes is None:
            from .fusion_regions import propose_boxes

            boxes, box_mask = propose_boxes(pixels, None, self.stem.cfg, self.stem.mean, self.stem.std)
        elif box_mask is None:
            box_mask = torch.ones(boxes.shape[:2], dtype=torch.long, device=boxes.device)
        content, geometry, box_mask, _ = self.stem(pixels, None, boxes, box_mask)
        h = self.obj(content + geometry)  # (B, R, C)
        B, R, C = h.shape
        g = box_geometry(boxes.to(h.dtype), self.stem.cfg.fourier)  # (B, R, G)
        hi, hj = h[:, :, None].expand(B, R, R, C), h[:, None].expand(B, R, R, C)
        gi, gj = g[:, :, None].expand(B, R, R, -1), g[:, None].expand(B, R, R, -1)
        pair = torch.cat([hi, hj, pair_geometry(boxes.to(h.dtype)), gi, gj], dim=-1)  # (B, R, R, 2C + 8 + 2G)
        return {"type_logits": self.type_head(h), "attr_logits": {k: m(h) for k, m in self.attr_heads.items()},
                "pred_logits": self.pair(pair), "boxes": boxes, "box_mask": box_mask}


register_family("scene-graph", SceneGraphConfig, SceneGraphModel,
                "region scene-graph model: object types, attributes and pairwise predicates")
register_preset("scene-graph-small", "scene-graph", "CPU size: 64px images, up to 6 regions cropped to 16px, "
                "a two-stage ResNet, width 128")
register_preset("scene-graph-nano", "scene-graph", "tests: width 32, 12px crops, one-stage CNN", dim=32, hidden=64,
                regions={"max_regions": 4, "crop": 12, "fourier": 2},
                cnn={"stem_width": 8, "stem_stride": 1, "widths": [16], "depths": [1], "norm": "groupnorm"})
