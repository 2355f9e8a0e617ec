"""REPA (representation alignment, Yu et al. 2024): an auxiliary diffusion loss that makes an early denoiser
block's hidden tokens (computed from the noisy input), through a small trainable head, predict a frozen pretrained
image encoder's patch features of the CLEAN image; the loss is the negative cosine similarity per token, averaged.
The head is training-only (`TextToImage.repa_head`): sampling and the exported pipeline never use it.

`RepaEncoder` wraps a frozen image tower with a spatial feature map (`forward_features(pixels) -> (B, N, C)`, e.g.
the shapes CLIP's CNN before attention pooling) and returns its features resized to the denoiser's token grid;
`block_output` captures one block's output during a forward; `repa_loss` is the alignment term."""
from __future__ import annotations

import inspect
import math
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn


class RepaEncoder(nn.Module):
    """Frozen image tower -> (B, grid*grid, C) patch features of [-1, 1] images, resized to the token grid."""

    def __init__(self, tower: nn.Module, source: str = "the image tower", layer: int | None = None):
        """`layer`: a ViT's hidden state after that block (HF `hidden_states` index, e.g. -2: the input to the last
        block, the feature layer a dense-tuned shapes tower was trained at) instead of its output tokens."""
        super().__init__()
        if not callable(getattr(tower, "forward_features", None)):
            raise ValueError(f"{source}: a {type(tower).__name__} has no spatial feature map "
                             "(`forward_features(pixels) -> (B, N, C)`); REPA needs a CNN or ViT image tower")
        if layer is not None and "output_hidden_states" not in inspect.signature(tower.forward_features).parameters:
            raise ValueError(f"{source}: a {type(tower).__name__} has no per-layer hidden states (repa layer {layer})")
        self.layer = layer
        c = tower.config
        self.tower = tower.eval().requires_grad_(False)
        self.size = int(c.image_size)
        self.register_buffer("mean", torch.tensor(list(c.image_mean)).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(list(c.image_std)).view(1, 3, 1, 1), persistent=False)
        self.dim = int(getattr(c, "feature_dim", None) or getattr(c, "dim"))

    def train(self, mode: bool = True):
        return super().train(False)  # always frozen, batch norm in eval mode

    @torch.no_grad()
    def forward(self, images: torch.Tensor, grid: int) -> torch.Tensor:
        """(B, 3, H, W) clean images in [-1, 1] -> (B, grid*grid, C) features (row-major, as DiT's tokens)."""
        self.to(images.device)  # a no-op once there
        x = (images.float() + 1) / 2  # (B, 3, H, W) in [0, 1]
        if x.shape[-1] != self.size or x.shape[-2] != self.size:
            x = F.interpolate(x, size=(self.size, self.size), mode="bicubic", align_corners=False).clamp(0, 1)
        if self.layer is None:
            tokens = self.tower.forward_features((x - self.mean) / self.std)  # (B, N, C)
        else:
            tokens = self.tower.forward_features((x - self.mean) / self.std, output_hidden_states=True)[1][self.layer]
        n = tokens.shape[1]
        side = math.isqrt(n)
        if side * side != n:  # a ViT's class token first
            side = math.isqrt(n - 1)
            if side * side != n - 1:
                raise ValueError(f"the image tower's {n} feature tokens are not a square grid (with or without a "
                                 "class token)")
            tokens = tokens[:, 1:]
        fmap = tokens.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[2], side, side)  # (B, C, s, s)
        if side != grid:
            fmap = F.interpolate(fmap, size=(grid, grid), mode="bilinear", align_corners=False)  # (B, C, g, g)
        return fmap.flatten(2).transpose(1, 2)  # (B, g*g, C)


def load_repa_encoder(path: str, layer: int | None = None) -> RepaEncoder:
    """A lingvis CLIP run (its image tower) or an image tower (a ViT / CNN folder, e.g. a dense-tuned shapes tower)
    as a frozen REPA target; clear errors otherwise."""
    from pathlib import Path

    from .. import api

    if not Path(path).exists():
        raise FileNotFoundError(f"REPA encoder run {path!r} does not exist (pass a lingvis CLIP run, e.g. one from "
                                "`lingvis pretrain clip`)")
    model = api.load(path)
    tower = getattr(model, "vision", None) if getattr(model, "family", None) == "clip" else model
    if tower is None:
        raise ValueError(f"{path} holds no image tower")
    return RepaEncoder(tower, source=path, layer=layer)


@contextmanager
def block_output(denoiser: nn.Module, depth: int):
    """Capture the output (B, N, D) of denoiser.blocks[depth - 1] during the forwards inside the block; yields a
    list that holds it afterwards."""
    blocks = getattr(denoiser, "blocks", None)
    if blocks is None:
        raise ValueError(f"REPA needs a Transformer denoiser with `blocks` (DiT); a {type(denoiser).__name__} has none")
    if not 1 <= depth <= len(blocks):
        raise ValueError(f"repa_depth must be in [1, {len(blocks)}] (the denoiser's blocks), got {depth}")
    out: list[torch.Tensor] = []
    handle = blocks[depth - 1].register_forward_hook(lambda _m, _i, o: out.append(o))
    try:
        yield out
    finally:
        handle.remove()


def repa_loss(hidden: torch.Tensor, head: nn.Module, target: torch.Tensor) -> torch.Tensor:
    """Negative cosine similarity of head(hidden) (B, N, D) -> (B, N, C) and the target (B, N, C), mean over tokens."""
    if hidden.shape[:2] != target.shape[:2]:
        raise ValueError(f"REPA: {tuple(hidden.shape[:2])} hidden tokens vs {tuple(target.shape[:2])} encoder "
                         "features")
    pred = head(hidden.float())  # (B, N, C)
    return -F.cosine_similarity(pred, target.float(), dim=-1).mean()
