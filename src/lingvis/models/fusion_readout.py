"""Question-conditioned region readout for the fusion VQA head (`FusionConfig.vqa_readout="regions"`).

A pooled question vector mixes the subject's and the object's information into one sum, so "is the red
square left of the blue circle?" and its swap look alike to the classifier. Here K learned queries each
pick question words (attention over the real text tokens: e.g. the subject phrase, the object phrase), the
picked words look up their region (attention over the real image tokens: content decides the match), and the
K region readings are concatenated beside the pooled vector, so the subject's and the object's boxes land
in different coordinates and the classifier can compare them.

With `roles="order"` (`FusionConfig.vqa_roles`) each reader's word scores also get a learned bias over the
word's index counted from the question's first real token and from its last one, so a reader can take "the
first-named object" (the subject) and another "the last-named one" (the object) whatever their words say:
content alone finds the objects a question names, not which of them is the subject. Even readers start
leaning to the front of the question, odd ones to its back (a ramp of `ROLE_RAMP` per word; learned from
there), so the roles are apart from the first step.

With `geometry=True` (`FusionConfig.vqa_geometry`) the region boxes themselves join the readings: each
reader's expected box (its region weights over the boxes' centre and size) and the centre offsets between
every two readers go through a small MLP into one more C-wide slot, so "A left of B" is a sign of one input
(the subject reader's x minus the object reader's) instead of something to decode from mixed embeddings."""
from __future__ import annotations

import math

import torch
from torch import nn

ROLES = ("none", "order")
ROLE_RAMP = 0.3  # initial bias per word of distance from a reader's end of the question
GEO_SCALE = 4.0  # box features enter the geometry MLP as (centre - 0.5) * s, size * s, offset * s: O(1) inputs


def masked_softmax(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Softmax over the last axis with `mask` (broadcastable, 1 = real) zeroing padded keys exactly; a row
    with no real key gives all zeros instead of NaN."""
    real = mask.bool()
    p = scores.float().masked_fill(~real, float("-inf")).softmax(-1)
    return torch.where(real, p, torch.zeros_like(p)).nan_to_num(0.0).to(scores.dtype)


class RegionReadout(nn.Module):
    """(text (B, T, D), text mask (B, T), image tokens (B, N, D), image mask (B, N), pooled (B, C))
    -> (B, (K + 1) * C): the pooled vector and K question-conditioned region readings. The fusion model feeds
    D = 2C: each token's final hidden state beside its stack input (word / region embedding), so words can
    be matched to regions by what they name (colour, shape) directly, and the box geometry is read where it
    is still clean."""

    def __init__(self, dim: int, n_queries: int, eps: float, in_dim: int | None = None, roles: str = "none",
                 max_len: int = 0, geometry: bool = False):
        super().__init__()
        if n_queries < 1:
            raise ValueError(f"vqa_queries must be >= 1, got {n_queries}")
        if roles not in ROLES:
            raise ValueError(f"vqa_roles must be one of {ROLES}, got {roles!r}")
        if roles == "order" and max_len < 1:
            raise ValueError(f"vqa_roles='order' needs the text length table size (max_len >= 1), got {max_len}")
        self.n_queries, self.scale = n_queries, 1.0 / math.sqrt(dim)
        d = in_dim or dim
        self.queries = nn.Parameter(torch.randn(n_queries, dim))  # (K, C) what each reader looks for
        self.word_key = nn.Linear(d, dim)
        self.region_query = nn.Linear(d, dim)
        self.region_key = nn.Linear(d, dim)
        self.region_value = nn.Linear(d, dim)
        self.norm = nn.LayerNorm(dim, eps=eps)
        self.roles = roles
        k = n_queries
        self.relation = nn.Sequential(nn.Linear(4 * k + 2 * k * (k - 1), dim), nn.GELU(), nn.Linear(dim, dim),
                                      nn.LayerNorm(dim, eps=eps)) if geometry else None
        if roles == "order":
            ramp = -ROLE_RAMP * torch.arange(max_len, dtype=torch.float)  # (L,) 0, -r, -2r, ...
            front = torch.arange(n_queries) % 2 == 0  # (K,) even readers lean to the front, odd to the back
            self.from_start = nn.Parameter(torch.where(front[:, None], ramp, 0.0))  # (K, L) by index from start
            self.from_end = nn.Parameter(torch.where(front[:, None], 0.0, ramp))  # (K, L) by index from end

    @property
    def out_dim_factor(self) -> int:
        return self.n_queries + 1 + (self.relation is not None)

    def attention(self, text: torch.Tensor, text_mask: torch.Tensor, image: torch.Tensor,
                  image_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Word weights (B, K, T) and region weights (B, K, N) of each query (rows sum to 1 over real keys)."""
        scores = torch.einsum("kc,btc->bkt", self.queries, self.word_key(text)) * self.scale  # (B, K, T)
        if self.roles == "order":
            scores = scores + self.order_bias(text_mask).to(scores.dtype)
        words = masked_softmax(scores, text_mask[:, None, :])  # (B, K, T)
        phrase = words @ text  # (B, K, D) the words query k picked
        scores = self.region_query(phrase) @ self.region_key(image).transpose(1, 2) * self.scale  # (B, K, N)
        return words, masked_softmax(scores, image_mask[:, None, :])

    def order_bias(self, text_mask: torch.Tensor) -> torch.Tensor:
        """(B, T) 1/0 mask -> (B, K, T) each reader's bias at each real word's index counted from the first
        real word and from the last (padding anywhere is skipped; padded entries are masked later)."""
        L = self.from_start.shape[1]
        real = text_mask.long()
        start = (real.cumsum(1) - 1).clamp(0, L - 1)  # (B, T)
        end = (real.sum(1, keepdim=True) - 1 - (real.cumsum(1) - 1)).clamp(0, L - 1)  # (B, T)
        return self.from_start[:, start].permute(1, 0, 2) + self.from_end[:, end].permute(1, 0, 2)  # (B, K, T)

    def box_features(self, regions: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        """Region weights (B, K, N), boxes (B, N, 4) as (x0, y0, x1, y1) -> (B, 4K + 2K(K - 1)): each reader's
        expected centre and size, then the centre offset (dx, dy) of every ordered pair of readers."""
        x0, y0, x1, y1 = boxes.to(regions.dtype).unbind(-1)  # (B, N) each
        geo = torch.stack([(x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0], dim=-1)  # (B, N, 4)
        read = regions @ geo  # (B, K, 4) padded regions weigh 0
        K = read.shape[1]
        i, j = torch.triu_indices(K, K, 1).unbind(0)
        offsets = read[:, i, :2] - read[:, j, :2]  # (B, P, 2) for the pairs i < j
        return torch.cat([read.flatten(1), offsets.flatten(1), -offsets.flatten(1)], dim=-1)

    @staticmethod
    def normalise_box_features(f: torch.Tensor, k: int) -> torch.Tensor:
        """`box_features` (B, 4K + 2K(K - 1)) -> the same centred on the image middle and scaled by `GEO_SCALE`:
        raw centres sit near 0.5 with sizes ~0.1-0.2 and the relations' margin 0.12, so a fresh MLP sees
        nearly constant inputs and learns the signs and grid cells slowly; here a 1/3-image step is ~1.3."""
        shift = torch.zeros(k, 4, dtype=f.dtype, device=f.device)
        shift[:, :2] = 0.5  # (K, 4) centres only
        shift = torch.cat([shift.flatten(), f.new_zeros(f.shape[-1] - 4 * k)])
        return (f - shift) * GEO_SCALE

    def forward(self, text: torch.Tensor, text_mask: torch.Tensor, image: torch.Tensor, image_mask: torch.Tensor,
                pooled: torch.Tensor, boxes: torch.Tensor | None = None) -> torch.Tensor:
        """-> (B, (K + 1) C), or (B, (K + 2) C) with the geometry slot (needs `boxes` (B, N, 4))."""
        _, regions = self.attention(text, text_mask, image, image_mask)
        read = self.norm(regions @ self.region_value(image))  # (B, K, C)
        parts = [pooled, read.flatten(1)]
        if self.relation is not None:
            if boxes is None or boxes.shape[:2] != image.shape[:2] or boxes.shape[-1] != 4:
                got = None if boxes is None else tuple(boxes.shape)
                raise ValueError(f"the geometry readout needs boxes (B, N, 4) = {(*image.shape[:2], 4)}, got {got}")
            geo = self.normalise_box_features(self.box_features(regions, boxes), self.n_queries)
            parts.append(self.relation(geo))  # (B, C)
        return torch.cat(parts, dim=-1)
