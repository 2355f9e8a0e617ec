"""GPT: token embedding + causal Transformer blocks + LM head (GPT-2 layout and names)."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from ..nn import (BlockConfig, BlockInputs, KVCache, LearnedPositions, Rotary, SinusoidalPositions, check_rope_scaling,
                  make_norm, run_blocks, transformer_block)
from ..nn.losses import linear_cross_entropy
from .causal_lm import CausalLM
from .causal_shift import CausalTokenShift
from .init import init_normal
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
    # modern decoders (Llama, Mistral, Qwen2/3): all optional, defaults give GPT-2
    mlp_hidden: int | None = None   # MLP width (default mlp_ratio * n_embd)
    n_kv_head: int | None = None    # grouped-query attention: key/value heads (default n_head)
    head_dim: int | None = None     # default n_embd // n_head
    qkv_bias: bool | None = None    # default `bias` (Qwen2: True with bias=False)
    attn_out_bias: bool | None = None
    mlp_bias: bool | None = None
    qk_norm: bool = False           # per-head q/k norm (Qwen3)
    rope_scaling: dict | None = None  # transformers' rope_scaling: linear | dynamic | yarn | llama3 (+ fields)
    sliding_window: int | None = None  # attend to the last `sliding_window` positions (Mistral)
    layer_types: list[str] | None = None  # per layer "sliding_attention" | "full_attention" (default: all sliding)
    token_shift: int = 0            # mix a gated projection of the k previous token embeddings into each (0: off)

    def __post_init__(self):
        if self.position not in ("learned", "sinusoidal", "rotary"):
            raise ValueError(f"unknown position {self.position!r}; expected learned, sinusoidal or rotary")
        self.rope_scaling = check_rope_scaling(self.rope_scaling)
        if self.rope_scaling and self.position != "rotary":
            raise ValueError("rope_scaling needs position='rotary'")
        if self.layer_types is not None:
            if len(self.layer_types) != self.n_layer:
                raise ValueError(f"layer_types has {len(self.layer_types)} entries for n_layer {self.n_layer}")
            bad = sorted(set(self.layer_types) - {"sliding_attention", "full_attention"})
            if bad:
                raise ValueError(f"layer_types: unknown type(s) {bad}; expected sliding_attention or full_attention")

    @property
    def head_size(self) -> int:
        return self.head_dim or self.n_embd // self.n_head

    def layer_window(self, i: int) -> int | None:
        """The sliding window of layer i (None: full attention)."""
        if self.sliding_window is None:
            return None
        if self.layer_types is not None and self.layer_types[i] != "sliding_attention":
            return None
        return self.sliding_window

    def block_config(self) -> BlockConfig:
        return BlockConfig(dim=self.n_embd, n_heads=self.n_head,
                           mlp_hidden=self.mlp_hidden or int(self.mlp_ratio * self.n_embd),
                           activation=self.activation, norm=self.norm, norm_eps=self.norm_eps, prenorm=True,
                           bias=self.bias, dropout=self.dropout, cross_attention=self.cross_attention,
                           cross_dim=self.cross_dim, n_kv_heads=self.n_kv_head, head_dim=self.head_dim,
                           qkv_bias=self.qkv_bias, attn_out_bias=self.attn_out_bias, mlp_bias=self.mlp_bias,
                           qk_norm=self.qk_norm)


class GPT(CausalLM):
    """Decoder-only language model. `forward(input_ids (B, T)) -> logits (B, T, V)`."""

    fused_loss = True  # forward(input_ids, labels=labels) returns the loss (used by tasks.lm.CausalLMTask)

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = c = config
        self.wte = nn.Embedding(c.vocab_size, c.n_embd)
        self.wpe = LearnedPositions(c.block_size, c.n_embd) if c.position == "learned" else None
        self.sin = SinusoidalPositions(c.block_size, c.n_embd) if c.position == "sinusoidal" else None
        self.rope = Rotary(c.head_size, c.block_size, c.rope_theta, c.rope_scaling) if c.position == "rotary" \
            else None
        self.shift = CausalTokenShift(c.n_embd, c.token_shift) if c.token_shift else None
        self.drop = nn.Dropout(c.dropout)
        bc = c.block_config()
        self.blocks = nn.ModuleList(transformer_block(bc, c.layer_window(i)) for i in range(c.n_layer))
        self.ln_f = make_norm(c.norm, c.n_embd, c.norm_eps, c.bias)
        self.lm_head = nn.Linear(c.n_embd, c.vocab_size, bias=False)
        if c.tie_embeddings:
            self.lm_head.weight = self.wte.weight
        self.apply(init_normal)
        for name, p in self.named_parameters():  # GPT-2: scale residual projections by depth
            if name.endswith("attn.proj.weight") or name.endswith("mlp.proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * c.n_layer))

    def reset_buffers(self) -> None:
        """Recompute the non-persistent buffers (rotary frequencies, sinusoidal table) and re-tie the head,
        e.g. after building on the meta device and `to_empty`."""
        c = self.config
        dev = self.wte.weight.device
        if self.rope is not None:
            self.rope = Rotary(c.head_size, c.block_size, c.rope_theta, c.rope_scaling).to(dev)
        if self.sin is not None:
            self.sin = SinusoidalPositions(c.block_size, c.n_embd).to(dev)
        if c.tie_embeddings:
            self.lm_head.weight = self.wte.weight

    @property
    def context_length(self) -> int:
        return self.config.block_size

    def new_cache(self, batch_size: int, max_len: int | None = None, ring: bool = True) -> KVCache:
        """A cache for `batch_size` rows of up to `max_len` columns; sliding-window layers keep a ring of
        `sliding_window` columns unless `ring=False` (callers that splice cache columns themselves)."""
        c = self.config
        windows = [c.layer_window(i) for i in range(c.n_layer)] if ring else [None] * c.n_layer
        if c.token_shift:  # one more slot: the token embeddings the shift reads back
            return KVCache(c.n_layer + 1, max_len or c.block_size, windows + [None])
        return KVCache(c.n_layer, max_len or c.block_size, windows)

    def embed_tokens(self, input_ids: torch.Tensor) -> torch.Tensor:
        """(B, T) ids -> (B, T, C) token embeddings (what `inputs_embeds` replaces)."""
        return self.wte(input_ids)

    def add_positions(self, x: torch.Tensor, position_ids: torch.Tensor) -> tuple[torch.Tensor, tuple | None]:
        """(B, T, C) embeddings with the learned or sinusoidal positions added, and the rotary (cos, sin) for
        the blocks (None without rotary positions)."""
        if self.wpe is not None:
            x = x + self.wpe(position_ids)
        elif self.sin is not None:
            x = x + self.sin(position_ids)
        return x, self.rope(position_ids) if self.rope is not None else None

    def forward(self, input_ids: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None,
                position_ids: torch.Tensor | None = None, cache: KVCache | None = None,
                last_only: bool = False, memory: torch.Tensor | None = None,
                memory_mask: torch.Tensor | None = None, labels: torch.Tensor | None = None,
                inputs_embeds: torch.Tensor | None = None, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (B, T, V) (or (B, 1, V) with `last_only`). With `labels` (B, T) (-100 = ignore) it returns
        instead the mean cross-entropy of the logits against them, from a fused head + loss that never
        materialises the (B, T, V) log-softmax or its gradient (the fast training path). `inputs_embeds`
        (B, T, C) replaces the token embeddings (e.g. image features placed among text tokens). `attn_mask`
        (B, 1, T, S) bool (True = may attend) replaces the causal + padding mask: e.g. block-diagonal causal
        attention over packed documents (`tasks/packing.document_mask`), with `position_ids` restarting."""
        # input_ids: (B, T); attention_mask: (B, S) over cached + new positions (1 = real token)
        # memory: (B, M, cross_dim) encoder output for cross-attention; memory_mask: bool (B, 1, 1, M)
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("pass exactly one of input_ids and inputs_embeds")
        x = self.wte(input_ids) if inputs_embeds is None else inputs_embeds  # (B, T, C)
        B, T = x.shape[:2]
        if self.config.cross_attention and memory is None:
            raise ValueError("this GPT has cross-attention: pass `memory` (the encoder output)")
        past = cache.length if cache is not None else 0
        S = past + T
        if S > self.config.block_size:
            raise ValueError(f"sequence of {S} tokens exceeds the context length {self.config.block_size}")
        if position_ids is None:
            position_ids = torch.arange(past, S, device=x.device)[None].expand(B, T)
        if self.shift is not None:
            x = self.shift(x, position_ids, cache, self.config.n_layer)  # (B, T, C)
        x, rope = self.add_positions(x, position_ids)
        ctx = BlockInputs(attn_mask=attn_mask, is_causal=True, key_mask=attention_mask, cache=cache, memory=memory,
                          memory_mask=memory_mask, rope=rope)
        x = run_blocks(self.blocks, self.drop(x), ctx)
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

# Llama-family shapes (the GPT family with RMSNorm, SwiGLU, rotary, grouped-query attention); HF folders of
# these architectures load with `lingvis.load` (interop/llama.py)
LLAMA = dict(norm="rmsnorm", activation="swiglu", position="rotary", bias=False)
register_preset("tinyllama-1.1b", "gpt", "TinyLlama-1.1B: 22 layers, width 2048, 32 heads / 4 kv heads "
                "(1,100,048,384 parameters)", **LLAMA, vocab_size=32000, block_size=2048, n_layer=22, n_head=32,
                n_kv_head=4, n_embd=2048, mlp_hidden=5632, norm_eps=1e-5, tie_embeddings=False)
register_preset("llama-3.2-1b", "gpt", "Llama-3.2-1B: 16 layers, width 2048, 32 / 8 kv heads, llama3 rope scaling, "
                "tied embeddings (1,235,814,400 parameters)", **LLAMA, vocab_size=128256, block_size=131072,
                n_layer=16, n_head=32, n_kv_head=8, n_embd=2048, mlp_hidden=8192, norm_eps=1e-5, rope_theta=500000.0,
                rope_scaling={"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                              "original_max_position_embeddings": 8192}, tie_embeddings=True)
register_preset("qwen2.5-0.5b", "gpt", "Qwen2.5-0.5B: 24 layers, width 896, 14 / 2 kv heads, q/k/v bias, tied "
                "(494,032,768 parameters)", **LLAMA, vocab_size=151936, block_size=32768, n_layer=24, n_head=14,
                n_kv_head=2, n_embd=896, mlp_hidden=4864, norm_eps=1e-6, rope_theta=1000000.0, qkv_bias=True,
                tie_embeddings=True)
register_preset("qwen3-0.6b", "gpt", "Qwen3-0.6B: 28 layers, width 1024, 16 / 8 kv heads of 128, q/k norm, tied "
                "(596,049,920 parameters)", **LLAMA, vocab_size=151936, block_size=40960, n_layer=28, n_head=16,
                n_kv_head=8, head_dim=128, n_embd=1024, mlp_hidden=3072, norm_eps=1e-6, rope_theta=1000000.0,
                qk_norm=True, tie_embeddings=True)
register_preset("mistral-7b", "gpt", "Mistral-7B-v0.1: 32 layers, width 4096, 32 / 8 kv heads, sliding window 4096 "
                "(7,241,732,096 parameters)", **LLAMA, vocab_size=32000, block_size=32768, n_layer=32, n_head=32,
                n_kv_head=8, n_embd=4096, mlp_hidden=14336, norm_eps=1e-5, sliding_window=4096,
                tie_embeddings=False)
register_preset("smollm2-135m", "gpt", "SmolLM2-135M: 30 layers, width 576, 9 / 3 kv heads, tied "
                "(134,515,008 parameters)", **LLAMA, vocab_size=49152, block_size=8192, n_layer=30, n_head=9,
                n_kv_head=3, n_embd=576, mlp_hidden=1536, norm_eps=1e-5, rope_theta=100000.0, tie_embeddings=True)
