"""Block-diagonal causal attention for packed rows: each token attends only to earlier tokens of its own
document (conversation), so packing several conversations into one row changes none of their outputs.

The causal decoders take only a key-padding mask, so for the duration of a forward pass this installs a
pre-hook on every self-attention layer (`lingvis.nn.Attention`) that hands it the (B, 1, T, T) mask
instead. `tests/tasks/test_chat_sft.py` checks that a packed row gives each conversation exactly the
logits it gets alone.
"""
from __future__ import annotations

import inspect
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from ..nn.attention import Attention


def document_mask(doc_ids: torch.Tensor) -> torch.Tensor:
    """(B, T) document ids (-1 = padding) -> (B, 1, T, T) bool: same document and not in the future.
    Padding queries see the other padding keys, so no row of the mask is empty."""
    T = doc_ids.shape[1]
    same = doc_ids[:, :, None] == doc_ids[:, None, :]  # (B, T, T)
    causal = torch.ones(T, T, dtype=torch.bool, device=doc_ids.device).tril()
    return (same & causal)[:, None]  # (B, 1, T, T)


def _self_attention(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, Attention) and not getattr(m, "cross", False)]


@contextmanager
def packed_attention(model: nn.Module, doc_ids: torch.Tensor) -> Iterator[None]:
    """Within this block, every self-attention layer of `model` uses the block-diagonal causal mask of
    `doc_ids` (B, T) for inputs of T tokens."""
    layers = _self_attention(model)
    if not layers:
        raise ValueError(f"{type(model).__name__} has no lingvis self-attention layers, so packed rows cannot be "
                         "masked per conversation; train without packing")
    mask = document_mask(doc_ids)
    T = doc_ids.shape[1]
    signature = inspect.signature(type(layers[0]).forward)
    if "attn_mask" not in signature.parameters or "is_causal" not in signature.parameters:
        raise TypeError(f"{type(layers[0]).__name__}.forward takes no attn_mask/is_causal; packing cannot mask it")

    def hook(module, args, kwargs):
        bound = signature.bind(module, *args, **kwargs)
        x = bound.arguments["x"] if "x" in bound.arguments else args[0]
        if x.shape[1] != T:
            raise ValueError(f"packed attention mask is for {T} tokens, the layer got {x.shape[1]}")
        bound.arguments["attn_mask"], bound.arguments["is_causal"] = mask, False
        return bound.args[1:], bound.kwargs

    handles = [m.register_forward_pre_hook(hook, with_kwargs=True) for m in layers]
    try:
        yield
    finally:
        for h in handles:
            h.remove()
