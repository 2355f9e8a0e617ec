"""Boolean attention masks (True = may attend), shaped (B, 1, T, S) for SDPA."""
from __future__ import annotations

import torch


def padding_mask(key_mask: torch.Tensor) -> torch.Tensor:
    """(B, S) 1/0 key validity -> (B, 1, 1, S) bool."""
    return key_mask.bool()[:, None, None, :]


def causal_mask(T: int, S: int, device=None) -> torch.Tensor:
    """(1, 1, T, S): query t (the last T of S positions) sees keys up to its own position."""
    q = torch.arange(S - T, S, device=device)[:, None]
    return (torch.arange(S, device=device)[None, :] <= q)[None, None]


def combine(*masks: torch.Tensor | None) -> torch.Tensor | None:
    """AND of the given masks; rows that would see nothing are opened fully so SDPA stays finite
    (such rows belong to padding queries whose outputs are never used)."""
    out = None
    for m in masks:
        if m is not None:
            out = m if out is None else out & m
    if out is not None:
        out = out | ~out.any(dim=-1, keepdim=True)
    return out
