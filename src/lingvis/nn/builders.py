"""Small builders that turn a `BlockConfig` into sublayers and blocks. A new variant is a new builder (or a
new sublayer), never a flag inside `Block`."""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from .attention import Attention
from .block import Block, Branch, Modulation
from .mlp import MLP
from .norm import make_norm
from .space_time import SpatialAttention, TemporalAttention


@dataclass
class BlockConfig:
    dim: int
    n_heads: int
    mlp_hidden: int
    activation: str = "gelu"
    norm: str = "layernorm"
    norm_eps: float = 1e-5
    prenorm: bool = True           # pre-norm (GPT-2, ViT, CLIP, Llama) or post-norm (BERT, original Transformer)
    bias: bool = True              # default for every projection and norm below
    dropout: float = 0.0
    cross_attention: bool = False  # decoder blocks attend to an encoder output
    cross_dim: int | None = None
    n_kv_heads: int | None = None  # grouped-query attention (default: n_heads)
    head_dim: int | None = None    # default: dim // n_heads
    qkv_bias: bool | None = None   # q/k/v projection bias (Qwen2: True with bias=False)
    attn_out_bias: bool | None = None
    mlp_bias: bool | None = None
    qk_norm: bool = False          # per-head norm (of the block's kind) on queries and keys (Qwen3)
    window: int | None = None      # sliding-window self-attention (Mistral)
    cond_dim: int | None = None    # adaLN-zero modulation of every branch by a (B, cond_dim) vector (DiT)


def norm_layer(cfg: BlockConfig) -> nn.Module:
    return make_norm(cfg.norm, cfg.dim, cfg.norm_eps, cfg.bias)


def self_attention(cfg: BlockConfig, window: int | None = None) -> Attention:
    return Attention(cfg.dim, cfg.n_heads, cfg.bias, cfg.dropout, n_kv_heads=cfg.n_kv_heads, head_dim=cfg.head_dim,
                     qkv_bias=cfg.qkv_bias, out_bias=cfg.attn_out_bias, qk_norm=cfg.norm if cfg.qk_norm else None,
                     norm_eps=cfg.norm_eps, window=window if window is not None else cfg.window)


def cross_attention(cfg: BlockConfig) -> Attention:
    return Attention(cfg.dim, cfg.n_heads, cfg.bias, cfg.dropout, cross=True, kv_dim=cfg.cross_dim or cfg.dim,
                     n_kv_heads=cfg.n_kv_heads, head_dim=cfg.head_dim, qkv_bias=cfg.qkv_bias,
                     out_bias=cfg.attn_out_bias, qk_norm=cfg.norm if cfg.qk_norm else None, norm_eps=cfg.norm_eps)


def mlp(cfg: BlockConfig) -> MLP:
    return MLP(cfg.dim, cfg.mlp_hidden, cfg.activation, cfg.bias if cfg.mlp_bias is None else cfg.mlp_bias,
               cfg.dropout)


def modulation(cfg: BlockConfig) -> Modulation | None:
    return Modulation(cfg.cond_dim, cfg.dim) if cfg.cond_dim else None


def transformer_block(cfg: BlockConfig, window: int | None = None) -> Block:
    """[self-attention, (cross-attention,) MLP], each with its norm (`ln_1`, `ln_cross`, `ln_2`), modulated
    when `cond_dim` is set. `window` overrides the config's sliding window for this layer."""
    branches = [Branch("attn", self_attention(cfg, window), "ln_1", norm_layer(cfg), modulation(cfg))]
    if cfg.cross_attention:
        branches.append(Branch("cross_attn", cross_attention(cfg), "ln_cross", norm_layer(cfg), modulation(cfg)))
    branches.append(Branch("mlp", mlp(cfg), "ln_2", norm_layer(cfg), modulation(cfg)))
    return Block(branches, cfg.prenorm)


def transformer_block_plain_cross(cfg: BlockConfig) -> Block:
    """PixArt-alpha's block: modulated self-attention and MLP (adaLN-zero, `cond_dim`), and between them a
    cross-attention to the memory that is neither modulated nor gated (`x + cross_attn(ln_cross(x))`; PixArt reads
    the raw stream, this keeps the LayerNorm), so the text reaches the tokens whatever the conditioning vector
    says. State-dict keys: `transformer_block`'s minus `cross_attn_mod`."""
    if not cfg.cross_attention:
        raise ValueError("transformer_block_plain_cross needs cross_attention=True")
    return Block([Branch("attn", self_attention(cfg), "ln_1", norm_layer(cfg), modulation(cfg)),
                  Branch("cross_attn", cross_attention(cfg), "ln_cross", norm_layer(cfg)),
                  Branch("mlp", mlp(cfg), "ln_2", norm_layer(cfg), modulation(cfg))], cfg.prenorm)


def divided_space_time_block(cfg: BlockConfig) -> Block:
    """TimeSformer's divided attention: [temporal attention, spatial attention, MLP], pre-norm
    (`ln_t -> temporal_attn`, `ln_1 -> attn`, `ln_2 -> mlp`); the token layout comes from `ctx.extras`."""
    return Block([Branch("temporal_attn", TemporalAttention(cfg.dim, cfg.n_heads, cfg.bias, cfg.dropout), "ln_t",
                         norm_layer(cfg)),
                  Branch("attn", SpatialAttention(cfg.dim, cfg.n_heads, cfg.bias, cfg.dropout), "ln_1", norm_layer(cfg)),
                  Branch("mlp", mlp(cfg), "ln_2", norm_layer(cfg))], prenorm=True)
