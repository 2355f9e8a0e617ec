"""The one Transformer block every lingvis family reuses: an ordered list of residual branches.

A branch is (norm, sublayer, optional modulation). Pre-norm: `x + gate * sublayer(modulate(norm(x)))`;
post-norm: `norm(x + sublayer(x))`. Sublayers are built modules with `forward(x, ctx)` (ctx: BlockInputs);
which branches a family uses is decided by builder functions (nn/builders.py), never by flags in here:

    GPT / BERT / ViT / CLIP        [attn, mlp]
    decoder over an encoder        [attn, cross_attn, mlp]
    Llama / Qwen / Mistral         [attn (GQA, q/k norm, window), mlp (SwiGLU)], RMSNorm
    divided space-time (video)     [temporal_attn, attn, mlp]
    DiT (adaLN-zero)               [attn, cross_attn, mlp], each modulated by a conditioning vector

Each sublayer and norm is registered under its own name, so parameter names stay those of the family
(`ln_1`, `attn.qkv`, `ln_2`, `mlp.fc`...) and checkpoint maps stay short.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from .context import BlockInputs
from .norm import add_then_norm


@dataclass
class Branch:
    name: str                          # attribute (state-dict prefix) of the sublayer
    layer: nn.Module                   # forward(x (B, T, C), ctx) -> (B, T, C)
    norm_name: str | None = None       # attribute of its norm (None: no norm)
    norm: nn.Module | None = None
    modulation: nn.Module | None = None  # cond (B, C_cond) -> (shift, scale, gate), each (B, C)


class Modulation(nn.Module):
    """adaLN-zero: SiLU + a zero-initialised linear map from the conditioning vector to the shift and scale
    of a branch's normed input and the gate of its output (so a new block starts as the identity)."""

    def __init__(self, cond_dim: int, dim: int):
        super().__init__()
        self.linear = nn.Linear(cond_dim, 3 * dim)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        # cond: (B, C_cond) -> shift, scale, gate: (B, 1, C) each
        return self.linear(nn.functional.silu(cond))[:, None].chunk(3, dim=-1)


class Block(nn.Module):
    """Residual branches applied in order; `forward(x (B, T, C), ctx) -> (B, T, C)` (k*B rows when a branch
    tiles the batch, see `_residual`). Keyword arguments
    (`is_causal=`, `memory=`, ...) build a `BlockInputs` when no ctx is given."""

    def __init__(self, branches: Sequence[Branch], prenorm: bool = True):
        super().__init__()
        if not branches:
            raise ValueError("a block needs at least one branch")
        self.prenorm = prenorm
        self.branches: list[tuple[str | None, str, str | None]] = []
        for b in branches:
            if b.norm is not None:
                self.add_module(b.norm_name, b.norm)
            self.add_module(b.name, b.layer)
            mod = None
            if b.modulation is not None:
                if not prenorm:
                    raise ValueError(f"branch {b.name!r}: modulation needs a pre-norm block")
                mod = f"{b.name}_mod"
                self.add_module(mod, b.modulation)
            self.branches.append((b.norm_name if b.norm is not None else None, b.name, mod))

    def forward(self, x: torch.Tensor, ctx: BlockInputs | None = None, **inputs) -> torch.Tensor:
        ctx = ctx if ctx is not None else BlockInputs(**inputs)
        normed = None  # the next branch's normed input, made together with this branch's residual add
        if ctx.normed is not None:  # the previous block made x and this block's first normed input together
            if ctx.normed[0] is x and self.prenorm:
                normed = ctx.normed[1]
            ctx.normed = None
        last = len(self.branches) - 1
        for i, (norm_name, name, mod_name) in enumerate(self.branches):
            norm = getattr(self, norm_name) if norm_name else None
            layer = getattr(self, name)
            if not self.prenorm:
                y = x + layer(x, ctx)
                x = norm(y) if norm is not None else y
                continue
            h = normed if normed is not None else norm(x) if norm is not None else x
            normed = None
            if mod_name is None:
                y = layer(h, ctx)  # (B, T, C)
                nxt = self.branches[i + 1] if i < last else None
                if nxt is not None and nxt[0] is not None and nxt[2] is None:
                    # pre-norm: the residual add and the next branch's norm in one native pass (fp32 inference)
                    fused = add_then_norm(x, y, getattr(self, nxt[0]))
                    if fused is not None:
                        x, normed = fused  # (B, T, C) each
                        continue
                elif nxt is None and ctx.next_norm is not None:  # the next block's entry norm (`run_blocks`)
                    fused = add_then_norm(x, y, ctx.next_norm)
                    if fused is not None:
                        x = fused[0]
                        ctx.normed = fused  # (B, T, C) each: read by the next block when it gets this x
                        continue
                x = _residual(x, y)
                continue
            if ctx.cond is None:
                raise ValueError(f"branch {name!r} is modulated: pass the conditioning vector (ctx.cond)")
            shift, scale, gate = getattr(self, mod_name)(ctx.cond)  # (B, 1, C) each
            x = _residual(x, gate * layer(h * (1 + scale) + shift, ctx))
        return x

    def entry_norm(self) -> nn.Module | None:
        """The norm this block applies first to its input (pre-norm, first branch normed and unmodulated), which
        the previous block may apply together with its last residual add (`run_blocks`), else None."""
        if not self.prenorm:
            return None
        norm_name, _, mod_name = self.branches[0]
        return getattr(self, norm_name) if norm_name is not None and mod_name is None else None


def _residual(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """x + y, where a branch may widen the batch to k * B rows (e.g. a guided batch meeting its k prompts in
    cross-attention): the residual stream is then tiled to match."""
    if y.shape[0] != x.shape[0]:
        if y.shape[0] % x.shape[0]:
            raise ValueError(f"a branch returned {y.shape[0]} rows for a batch of {x.shape[0]}")
        x = x.repeat(y.shape[0] // x.shape[0], *([1] * (x.dim() - 1)))
    return x + y


TRANSFORMER_LAYERS: list[type] = [Block]  # module types that are one transformer layer (FSDP units, checkpointing)


def register_layer_type(cls: type) -> type:
    """Mark a module type as one transformer layer, for FSDP wrapping and activation checkpointing."""
    if cls not in TRANSFORMER_LAYERS:
        TRANSFORMER_LAYERS.append(cls)
    return cls


def transformer_layers(model: nn.Module) -> list[nn.Module]:
    """The model's transformer layers (outermost ones: a layer inside another is not listed twice)."""
    kinds = tuple(TRANSFORMER_LAYERS)
    found, inside = [], set()
    for m in model.modules():
        if id(m) in inside:
            continue
        if isinstance(m, kinds):
            found.append(m)
            inside.update(id(s) for s in m.modules())
    return found
