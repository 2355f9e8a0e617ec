"""Knowledge-graph embedding models for link prediction: TransE, RotatE and ComplEx (PyKEEN's conventions:
scores are higher for more plausible triples; TransE and RotatE are negative distances, ComplEx the real
part of the trilinear product), with an optional multimodal entity representation that adds a gated
projection of each entity's image features (e.g. CLIP embeddings of its crops) to its learned embedding.

`score_hrt(h, r, t)` -> (B,); `score_t(h, r)` -> (B, N) over all tails; `score_h(r, t)` -> (B, N) over all
heads."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from .registry import register_family, register_preset

MODELS = ("transe", "rotate", "complex")


@dataclass
class KGEConfig:
    n_entities: int = 1
    n_relations: int = 1
    dim: int = 200                    # real dimension (TransE) or complex dimension (RotatE, ComplEx)
    model: str = "rotate"
    p_norm: int = 2                   # TransE / RotatE distance norm
    image_dim: int = 0                # > 0: entities also get image features of this width (multimodal)

    def __post_init__(self):
        if self.model not in MODELS:
            raise ValueError(f"model must be one of {MODELS}, got {self.model!r}")
        if self.n_entities < 1 or self.n_relations < 1 or self.dim < 1:
            raise ValueError(f"need >= 1 entities, relations and dimensions, got {self.n_entities}, "
                             f"{self.n_relations}, {self.dim}")
        if self.p_norm not in (1, 2):
            raise ValueError(f"p_norm must be 1 or 2, got {self.p_norm}")

    @property
    def complex(self) -> bool:
        return self.model in ("rotate", "complex")

    @property
    def width(self) -> int:
        """Real numbers per entity: 2 * dim for the complex models."""
        return 2 * self.dim if self.complex else self.dim


class KGEModel(nn.Module):
    def __init__(self, config: KGEConfig):
        super().__init__()
        self.config = c = config
        self.entity = nn.Embedding(c.n_entities, c.width)
        self.relation = nn.Embedding(c.n_relations, c.dim if c.model == "rotate" else c.width)
        if c.image_dim:
            self.register_buffer("image_features", torch.zeros(c.n_entities, c.image_dim))
            self.register_buffer("has_image", torch.zeros(c.n_entities))
            self.image_proj = nn.Linear(c.image_dim, c.width)
            self.image_gate = nn.Parameter(torch.zeros(c.width))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        c = self.config
        nn.init.xavier_uniform_(self.entity.weight)  # PyKEEN's default entity initialiser
        if c.model == "rotate":
            nn.init.uniform_(self.relation.weight, -math.pi, math.pi)  # phases: unit-modulus rotations
        else:
            nn.init.xavier_uniform_(self.relation.weight)
        if c.image_dim:
            nn.init.xavier_uniform_(self.image_proj.weight)
            nn.init.zeros_(self.image_proj.bias)

    def set_image_features(self, features: torch.Tensor, present: torch.Tensor) -> None:
        """(N, image_dim) features and (N,) 0/1 presence of each entity's image."""
        if not self.config.image_dim:
            raise ValueError("this model was built without image features (image_dim=0)")
        if tuple(features.shape) != tuple(self.image_features.shape):
            raise ValueError(f"image features must be {tuple(self.image_features.shape)}, got {tuple(features.shape)}")
        self.image_features.copy_(features)
        self.has_image.copy_(present.float())

    # ---- representations ----------------------------------------------------------------------------------
    def entities(self, idx: torch.Tensor | None = None) -> torch.Tensor:
        """Entity vectors (..., width); multimodal: + sigmoid(gate) * proj(image features) where present."""
        e = self.entity.weight if idx is None else self.entity(idx)
        if self.config.image_dim:
            feats = self.image_features if idx is None else self.image_features[idx]
            has = self.has_image if idx is None else self.has_image[idx]
            e = e + torch.sigmoid(self.image_gate) * self.image_proj(feats) * has[..., None]
        return e

    def relations(self, idx: torch.Tensor) -> torch.Tensor:
        """RotatE: (..., 2 * dim) as [cos, sin] of the phases; others the raw vectors."""
        r = self.relation(idx)
        if self.config.model == "rotate":
            return torch.cat([r.cos(), r.sin()], dim=-1)
        return r

    # ---- scores ------------------------------------------------------------------------------------------
    def _split(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        d = self.config.dim
        return x[..., :d], x[..., d:]

    def _rotate(self, x: torch.Tensor, r: torch.Tensor, conj: bool = False) -> torch.Tensor:
        xr, xi = self._split(x)
        rr, ri = self._split(r)
        if conj:
            ri = -ri
        return torch.cat([xr * rr - xi * ri, xr * ri + xi * rr], dim=-1)

    def score_hrt(self, h: torch.Tensor, r: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Index tensors of equal shape (...) -> scores (...)."""
        H, R, T = self.entities(h), self.relations(r), self.entities(t)
        m = self.config.model
        if m == "transe":
            return -torch.linalg.vector_norm(H + R - T, ord=self.config.p_norm, dim=-1)
        if m == "rotate":
            return -self._complex_norm(self._rotate(H, R) - T)
        return self._complex_dot(self._rotate(H, R), T)

    def _complex_norm(self, x: torch.Tensor) -> torch.Tensor:
        if self.config.p_norm == 2:
            return torch.linalg.vector_norm(x, ord=2, dim=-1)
        xr, xi = self._split(x)
        return torch.sqrt(xr ** 2 + xi ** 2 + 1e-12).sum(-1)  # L1 over complex moduli

    def _complex_dot(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Re(<a, conj(b)>) = ar.br + ai.bi, broadcasting over leading dims."""
        return (a * b).sum(-1)

    def score_t(self, h: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        """(B,) heads and relations -> (B, N) scores of every tail."""
        H, R, E = self.entities(h), self.relations(r), self.entities()
        return self._against_all(self._query(H, R, tail=True), E)

    def score_h(self, r: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """(B,) relations and tails -> (B, N) scores of every head."""
        T, R, E = self.entities(t), self.relations(r), self.entities()
        return self._against_all(self._query(T, R, tail=False), E)

    def _query(self, x: torch.Tensor, R: torch.Tensor, tail: bool) -> torch.Tensor:
        """The vector every candidate is compared with: TransE h + r (tails) or t - r (heads); RotatE h*r or
        t*conj(r) (|h*r - t| = |h - t*conj(r)| for unit r); ComplEx h*r or t*conj(r) (Re<h, r, conj t>)."""
        m = self.config.model
        if m == "transe":
            return x + R if tail else x - R
        if m == "rotate":
            return self._rotate(x, R, conj=not tail)
        if tail:
            return self._rotate(x, R)
        tr = self._rotate(x, R, conj=True)  # Re<h, r, conj t> = Re<h, conj(conj(r) t)>: compare h with conj(r) t
        return tr

    def _against_all(self, q: torch.Tensor, E: torch.Tensor) -> torch.Tensor:
        m = self.config.model
        if m == "complex":
            return q @ E.T  # (B, N)
        if m == "transe" or self.config.p_norm == 2:
            return -torch.cdist(q[None], E[None], p=self.config.p_norm)[0]
        d = self.config.dim
        diff_r = q[:, None, :d] - E[None, :, :d]
        diff_i = q[:, None, d:] - E[None, :, d:]
        return -torch.sqrt(diff_r ** 2 + diff_i ** 2 + 1e-12).sum(-1)

    def forward(self, triples: torch.Tensor) -> torch.Tensor:
        """(..., 3) index triples (h, r, t) -> scores (...)."""
        return self.score_hrt(triples[..., 0], triples[..., 1], triples[..., 2])


register_family("kge", KGEConfig, KGEModel, "knowledge-graph embeddings for link prediction (TransE, RotatE, "
                "ComplEx; optionally with image features)")
register_preset("kge-rotate", "kge", "RotatE, 200 complex dimensions", model="rotate", dim=200)
register_preset("kge-transe", "kge", "TransE, L1, 200 dimensions", model="transe", dim=200, p_norm=1)
register_preset("kge-complex", "kge", "ComplEx, 200 complex dimensions", model="complex", dim=200)
