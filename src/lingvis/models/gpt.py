"""GPT: token embedding + causal Transformer blocks + LM head (GPT-2 layout and names)."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from ..nn import Block, BlockConfig, KVCache, LearnedPositions, Rotary, SinusoidalPositions, make_norm
from ..nn.losses import linear_cross_entropy
from ..nn.masks import causal_mask, combine, padding_mask
from .causal_lm import CausalLM
from .registry import register_family, register_preset


@dataclass
class GPTConfig:
    vocab_size: int = 50257
    block_size: int = 1024          # context length
    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768
    mlp_ratio: float = 4.0
    activation: str = "gelu_tanh"
    norm: str = "layernorm"
    norm_eps: float = 1e-5
    position: str = "learned"       # learned | rotary | sinusoidal
    rope_theta: float = 10000.0
    bias: bool = True
    dropout: float = 0.0
    tie_embeddings: bool = True
    cross_attention: bool = False   # blocks also attend to a `memory` (encoder output): captioning decoders
    cross_dim: int | None = None    # width of that memory; default n_embd

    def block_config(self) -> BlockConfig:
        return BlockConfig(dim=self.n_embd, n_heads=self.n_head, mlp_hidden=int(self.mlp_ratio * self.n_embd),
                           activation=self.activation, norm=self.norm, norm_eps=self.norm_eps, prenorm=True,
                           bias=self.bias, dropout=self.dropout, cross_attention=self.cross_attention,
                           cross_dim=self.cross_dim)


class GPT(CausalLM):
    """Decoder-only language model. `forward(input_ids (B, T)) -> logits (B, T, V)`."""

    fused_loss = True  # forward(input_ids, labels=labels) returns the loss (used by tasks.lm.CausalLMTask)

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = c = config
        self.wte = nn.Embedding(c.vocab_size, c.n_embd)
        self.wpe = LearnedPositions(c.block_size, c.n_embd) if c.position == "learned" else None
        self.sin = SinusoidalPositions(c.block_size, c.n_embd) if c.position == "sinusoidal" else None
        self.rope = Rotary(c.n_embd // c.n_head, c.block_size, c.rope_theta) if c.position == "rotary" else None
        if c.position not in ("learned", "sinusoidal", "rotary"):
            raise ValueError(f"unknown position {c.position!r}; expected learned, sinusoidal or rotary")
        self.drop = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList(Block(c.block_config()) for _ in range(c.n_layer))
        self.ln_f = make_norm(c.norm, c.n_embd, c.norm_eps, c.bias)
        self.lm_head = nn.Linear(c.n_embd, c.vocab_size, bias=False)
        if c.tie_embeddings:
            self.lm_head.weight = self.wte.weight
        self.apply(self._init_weights)
        for name, p in self.named_parameters():  # GPT-2: scale residual projections by depth
            if name.endswith("attn.proj.weight") or name.endswith("mlp.proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * c.n_layer))

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, std=0.02)

    @property
    def context_length(self) -> int:
        return self.config.block_size

    def new_cache(self, batch_size: int, max_len: int | None = None) -> KVCache:
        return KVCache(self.config.n_layer, max_len or self.config.block_size)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                position_ids: torch.Tensor | None = None, cache: KVCache | None = None,
                last_only: bool = False, memory: torch.Tensor | None = None,
                memory_mask: torch.Tensor | None = None, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (B, T, V) (or (B, 1, V) with `last_only`). With `labels` (B, T) (-100 = ignore) it returns
        instead the mean cross-entropy of the logits against them, from a fused head + loss that never
        materialises the (B, T, V) log-softmax or its gradient (the fast training path)."""
        # input_ids: (B, T); attention_mask: (B, S) over cached + new positions (1 = real token)
        # memory: (B, M, cross_dim) encoder output for cross-attention; memory_mask: bool (B, 1, 1, M)
        B, T = input_ids.shape
        if self.config.cross_attention and memory is None:
            raise ValueError("this GPT has cross-attention: pass `memory` (the encoder output)")
        past = cache.length if cache is not None else 0
        S = past + T
        if S > self.config.block_size:
            raise ValueError(f"sequence of {S} tokens exceeds the context length {self.config.block_size}")
        if position_ids is None:
            position_ids = torch.arange(past, S, device=input_ids.device)[None].expand(B, T)
        x = self.wte(input_ids)  # (B, T, C)
        if self.wpe is not None:
            x = x + self.wpe(position_ids)
        elif self.sin is not None:
            x = x + self.sin(position_ids)
        rope = self.rope(position_ids) if self.rope is not None else None
        x = self.drop(x)
        mask = None
        if attention_mask is not None:
            mask = combine(causal_mask(T, S, x.device), padding_mask(attention_mask))  # (B, 1, T, S)
        elif past > 0 and T > 1:
            mask = causal_mask(T, S, x.device)
        is_causal = mask is None and T > 1
        for i, block in enumerate(self.blocks):
            x = block(x, mask, is_causal, rope, cache, i, memory, memory_mask)
        if cache is not None:
            cache.advance(T)
        if labels is not None:
            return linear_cross_entropy(self.ln_f(x).flatten(0, 1), self.lm_head.weight, labels.flatten())
        if last_only:
            x = x[:, -1:]
        return self.lm_head(self.ln_f(x))  # (B, T, V)


register_family("gpt", GPTConfig, GPT, "decoder-only causal language model")
register_preset("gpt2", "gpt", "GPT-2 small, 124M", n_layer=12, n_head=12, n_embd=768)
register_preset("gpt2-medium", "gpt", "GPT-2 medium, 355M", n_layer=24, n_head=16, n_embd=1024)
register_preset("gpt2-large", "gpt", "GPT-2 large, 774M", n_layer=36, n_head=20, n_embd=1280)
register_preset("gpt2-xl", "gpt", "GPT-2 XL, 1.5B", n_layer=48, n_head=25, n_embd=1600)
register_preset("gpt-mini", "gpt", "6 layers, width 384, context 256 (CPU benchmark size)",
                n_layer=6, n_head=6, n_embd=384, block_size=256)
register_preset("gpt-micro", "gpt", "4 layers, width 256, context 128: trains on a CPU in minutes",
                n_layer=4, n_head=4, n_embd=256, block_size=128)
register_preset("gpt-nano", "gpt", "2 layers, width 64: tests", n_layer=2, n_head=4, n_embd=64, block_size=64)
register_preset("llama-micro", "gpt", "LLaMA-style micro model: RMSNorm, SwiGLU, rotary, no biases",
                n_layer=4, n_head=4, n_embd=256, block_size=128, norm="rmsnorm", activation="swiglu",
                position="rotary", bias=False, tie_embeddings=False, mlp_ratio=8 / 3)
