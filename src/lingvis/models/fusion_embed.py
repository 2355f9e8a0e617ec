"""Input embeddings of the fusion model: BERT-like text embeddings and image tokens (ViT-style patches or
CNN grid features, projected) with ViLT's interpolated position embeddings and pixel-mask handling."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..nn.vision import PatchEmbed


class TextEmbeddings(nn.Module):
    """word + segment (token type) + learned position embeddings, then LayerNorm (BERT / ViLT text side)."""

    def __init__(self, vocab_size: int, dim: int, max_len: int, type_vocab_size: int, eps: float,
                 dropout: float):
        super().__init__()
        self.max_len = max_len
        self.word_emb = nn.Embedding(vocab_size, dim)
        self.pos_emb = nn.Embedding(max_len, dim)
        self.type_emb = nn.Embedding(type_vocab_size, dim)
        self.ln = nn.LayerNorm(dim, eps=eps)
        self.drop = nn.Dropout(dropout)

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        B, T = input_ids.shape
        if T > self.max_len:
            raise ValueError(f"text of {T} tokens exceeds the model's max_text_len {self.max_len}")
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        pos = torch.arange(T, device=input_ids.device)[None]  # (1, T)
        x = self.word_emb(input_ids) + self.type_emb(token_type_ids) + self.pos_emb(pos)  # (B, T, C)
        return self.drop(self.ln(x))


class PatchStem(nn.Module):
    """ViT patch embedding as a fusion image stem: the patch grid, and for masked-image regression the raw
    pixel patches as features."""

    def __init__(self, channels: int, dim: int, patch_size: int):
        super().__init__()
        self.patch_size = patch_size
        self.proj = PatchEmbed(channels, dim, patch_size)
        self.feature_dim = channels * patch_size * patch_size
        self.stride = patch_size

    def forward(self, pixels: torch.Tensor, with_features: bool = False):
        """(B, 3, H, W) -> grid (B, C, H/p, W/p) and, if asked, pixel patches (B, N, 3*p*p)."""
        grid = self.proj(pixels)
        return grid, (self.proj.patches(pixels) if with_features else None)


class CNNStem(nn.Module):
    """CNN grid features (the shared ResNet-style `models.cnn.CNN`, its pooling head unused), projected to
    the model width. Features for masked-image regression are the (detached) grid features."""

    def __init__(self, cnn_config: dict, dim: int):
        super().__init__()
        from .cnn import CNN, CNNConfig

        self.cnn = CNN(CNNConfig(**cnn_config))
        self.grid = self.cnn.config.feature_size
        self.feature_dim = self.cnn.config.feature_dim
        self.stride = self.cnn.config.reduction
        self.proj = nn.Linear(self.feature_dim, dim)

    def forward(self, pixels: torch.Tensor, with_features: bool = False):
        """(B, 3, H, W) -> grid (B, C, H/s, W/s) and, if asked, detached grid features (B, N, F)."""
        x = self.cnn.stem(pixels)
        for stage in self.cnn.stages:
            x = stage(x)  # (B, F, h, w)
        feats = x.flatten(2).transpose(1, 2)  # (B, N, F)
        grid = self.proj(feats).transpose(1, 2).reshape(x.shape[0], -1, *x.shape[-2:])  # (B, C, h, w)
        return grid, (feats.detach() if with_features else None)


class ImageTokens(nn.Module):
    """[image CLS] + grid tokens with learned position embeddings that are bilinearly interpolated to each
    image's valid grid (from `pixel_mask`), exactly as HF ViLT's `visual_embed` with max_image_length=-1.
    Invalid (padding) grid cells stay in the sequence and are masked out of attention."""

    def __init__(self, stem: nn.Module, dim: int, grid: int, dropout: float, mask_token: bool):
        super().__init__()
        self.stem, self.grid = stem, grid
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos = nn.Parameter(torch.zeros(1, grid * grid + 1, dim))
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim)) if mask_token else None
        self.drop = nn.Dropout(dropout)

    def valid_grid(self, pixel_mask: torch.Tensor, H: int, W: int):
        """(B, H, W) 0/1 pixel mask -> token mask (B, H, W) and valid rows/cols per image (as HF ViLT)."""
        m = F.interpolate(pixel_mask[:, None].float(), size=(H, W)).long()[:, 0]  # nearest, (B, H, W)
        return m, m.sum(dim=1)[:, 0], m.sum(dim=2)[:, 0]

    def positions(self, hs: torch.Tensor, ws: torch.Tensor, H: int, W: int) -> torch.Tensor:
        """(B, H*W, C) grid position embeddings resized to each image's valid (h, w), zero-padded."""
        C, g = self.pos.shape[-1], self.grid
        spatial = self.pos[:, 1:].transpose(1, 2).reshape(1, C, g, g)  # (1, C, g, g)
        cache: dict[tuple[int, int], torch.Tensor] = {}
        rows = []
        for h, w in zip(hs.tolist(), ws.tolist()):
            if (h, w) not in cache:
                p = spatial if (h, w) == (g, g) else F.interpolate(spatial, size=(h, w), mode="bilinear",
                                                                   align_corners=True)
                cache[(h, w)] = F.pad(p, (0, W - w, 0, H - h))  # (1, C, H, W)
            rows.append(cache[(h, w)])
        return torch.cat(rows).flatten(2).transpose(1, 2)  # (B, H*W, C)

    def forward(self, pixels: torch.Tensor, pixel_mask: torch.Tensor | None = None,
                masked: torch.Tensor | None = None, with_features: bool = False):
        """pixels (B, 3, H, W); pixel_mask (B, H, W); masked (B, N) bool grid cells to replace by the
        mask token -> tokens (B, 1 + N, C), key mask (B, 1 + N), stem features (B, N, F) or None."""
        x, feats = self.stem(pixels, with_features)  # (B, C, Hg, Wg)
        B, C, Hg, Wg = x.shape
        if pixel_mask is None:
            pixel_mask = torch.ones(B, *pixels.shape[-2:], device=pixels.device)
        grid_mask, hs, ws = self.valid_grid(pixel_mask, Hg, Wg)
        x = x.flatten(2).transpose(1, 2)  # (B, N, C)
        if masked is not None:
            if self.mask_token is None:
                raise ValueError("this model has no image mask token (config mif_head=False)")
            x = torch.where(masked[..., None], self.mask_token.to(x.dtype), x)
        x = x + self.positions(hs, ws, Hg, Wg)
        cls = (self.cls + self.pos[:, :1]).expand(B, -1, -1)  # (B, 1, C)
        x = self.drop(torch.cat([cls, x], dim=1))  # (B, 1 + N, C)
        mask = torch.cat([torch.ones(B, 1, dtype=torch.long, device=x.device), grid_mask.flatten(1)], dim=1)
        return x, mask, feats
