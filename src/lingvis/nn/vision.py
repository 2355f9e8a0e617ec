"""Vision stems shared by the image families: patch embedding (ViT, fusion patch tokens, DiT)."""
from __future__ import annotations

import torch
from torch import nn

from .packed_linear import linear


def patchify(pixels: torch.Tensor, p: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, H/p * W/p, C*p*p) in the order of a Conv2d weight's flattened (C, p, p)."""
    B, C, H, W = pixels.shape
    x = pixels.reshape(B, C, H // p, p, W // p, p)
    return x.permute(0, 2, 4, 1, 3, 5).reshape(B, (H // p) * (W // p), C * p * p)


class PatchEmbed(nn.Conv2d):
    """A convolution with kernel = stride = patch size (parameters `weight`, `bias` as a Conv2d), computed as
    one matmul over flattened patches, which is faster than the convolution on CPUs."""

    def __init__(self, channels: int, dim: int, patch_size: int, bias: bool = True):
        super().__init__(channels, dim, patch_size, patch_size, bias=bias)
        self.patch_size = patch_size

    def patches(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> raw pixel patches (B, N, C*p*p); a ragged border is cropped."""
        p = self.patch_size
        H, W = pixels.shape[-2] // p * p, pixels.shape[-1] // p * p
        return patchify(pixels[..., :H, :W], p)

    def tokens(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> patch tokens (B, N, dim), row-major over the patch grid."""
        w = self.weight.view(self.out_channels, -1)  # (dim, C*p*p)
        return linear(self.patches(pixels.to(w.dtype)), w, self.bias, self, "tokens")  # F.linear, kernel measured

    def grid(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, dim, H/p, W/p) feature map."""
        B, _, H, W = pixels.shape
        p = self.patch_size
        return self.tokens(pixels).transpose(1, 2).reshape(B, self.out_channels, H // p, W // p)
