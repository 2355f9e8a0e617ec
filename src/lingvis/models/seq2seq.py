"""Encoder-decoder Transformer ("Attention Is All You Need", Marian layout) built from the shared Block.

`encode(src)` runs the bidirectional encoder once; `decode(tgt, memory)` runs the causal decoder whose
blocks cross-attend to the memory. `decoder_view(memory)` binds the memory so that the shared decoding
code (generate.stream_ids, beam.beam_search) drives the decoder like any causal LM.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from ..nn import (BlockConfig, BlockInputs, KVCache, LearnedPositions, SinusoidalPositions, make_norm, run_blocks,
                  transformer_block)
from ..nn.masks import padding_mask
from .registry import register_family, register_preset


@dataclass
class Seq2SeqConfig:
    vocab_size: int = 32000
    tgt_vocab_size: int | None = None    # a separate decoder vocabulary (needs share_embeddings=False)
    encoder_layers: int = 6
    decoder_layers: int = 6
    dim: int = 512
    n_head: int = 8
    ffn_dim: int = 2048
    activation: str = "relu"
    norm: str = "layernorm"
    norm_eps: float = 1e-5
    prenorm: bool = False                # post-norm as in the paper and Marian
    final_norm: bool = False             # a norm after each stack (pre-norm models need it)
    position: str = "sinusoidal"         # sinusoidal (static, not saved) | learned
    sinusoidal_interleave: bool = False  # False: Marian/fairseq layout (sines, then cosines)
    max_len: int = 512                   # positions per side
    scale_embedding: bool = True         # multiply token embeddings by sqrt(dim)
    share_embeddings: bool = True        # one table for source and target tokens
    tie_embeddings: bool = True          # output projection = decoder embedding
    final_logits_bias: bool = False      # Marian's bias buffer added to the logits
    bias: bool = True
    dropout: float = 0.1
    pad_id: int = 0
    eos_id: int = 1
    decoder_start_id: int = 0            # first decoder token (Marian: the pad id; lingvis-trained: <s>)
    forced_eos_id: int | None = None     # beam search: only this token at the last step (Marian: eos)
    suppress_ids: list[int] = field(default_factory=list)  # never generated (Marian: the pad id)

    def __post_init__(self):
        if self.tgt_vocab_size is not None and self.tgt_vocab_size != self.vocab_size and self.share_embeddings:
            raise ValueError(f"tgt_vocab_size {self.tgt_vocab_size} != vocab_size {self.vocab_size} needs "
                             "share_embeddings=False")
        if self.position not in ("sinusoidal", "learned"):
            raise ValueError(f"unknown position {self.position!r}; expected sinusoidal or learned")

    @property
    def target_vocab(self) -> int:
        return self.tgt_vocab_size or self.vocab_size

    def block_config(self, cross: bool) -> BlockConfig:
        return BlockConfig(dim=self.dim, n_heads=self.n_head, mlp_hidden=self.ffn_dim, activation=self.activation,
                           norm=self.norm, norm_eps=self.norm_eps, prenorm=self.prenorm, bias=self.bias,
                           dropout=self.dropout, cross_attention=cross)


class Seq2Seq(nn.Module):
    """`forward(src_ids (B, S), tgt_ids (B, T), src_mask, tgt_mask) -> logits (B, T, V)`."""

    def __init__(self, config: Seq2SeqConfig):
        super().__init__()
        self.config = c = config
        self.embed = nn.Embedding(c.vocab_size, c.dim)
        self.tgt_embed = None if c.share_embeddings else nn.Embedding(c.target_vocab, c.dim)
        pos = (lambda: SinusoidalPositions(c.max_len, c.dim, c.sinusoidal_interleave)) \
            if c.position == "sinusoidal" else (lambda: LearnedPositions(c.max_len, c.dim))
        self.enc_pos, self.dec_pos = pos(), pos()
        self.embed_scale = math.sqrt(c.dim) if c.scale_embedding else 1.0
        self.drop = nn.Dropout(c.dropout)
        self.encoder = nn.ModuleList(transformer_block(c.block_config(cross=False)) for _ in range(c.encoder_layers))
        self.decoder = nn.ModuleList(transformer_block(c.block_config(cross=True)) for _ in range(c.decoder_layers))
        self.enc_norm = make_norm(c.norm, c.dim, c.norm_eps, c.bias) if c.final_norm else None
        self.dec_norm = make_norm(c.norm, c.dim, c.norm_eps, c.bias) if c.final_norm else None
        self.lm_head = nn.Linear(c.dim, c.target_vocab, bias=False)
        if c.final_logits_bias:
            self.register_buffer("final_logits_bias", torch.zeros(c.target_vocab))
        else:
            self.final_logits_bias = None
        self.apply(self._init_weights)
        if c.tie_embeddings:
            self.lm_head.weight = self.target_embedding.weight

    def _init_weights(self, m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, std=self.config.dim ** -0.5 if self.config.scale_embedding else 0.02)

    @property
    def target_embedding(self) -> nn.Embedding:
        return self.embed if self.tgt_embed is None else self.tgt_embed

    @property
    def context_length(self) -> int:
        return self.config.max_len

    def new_cache(self, batch_size: int, max_len: int | None = None) -> KVCache:
        return KVCache(self.config.decoder_layers, max_len or self.config.max_len)

    def encode(self, src_ids: torch.Tensor | None, src_mask: torch.Tensor | None = None,
               inputs_embeds: torch.Tensor | None = None) -> torch.Tensor:
        """(B, S) source ids (right-padded; `src_mask` 1 = real token) -> (B, S, C) memory. `inputs_embeds`
        (B, S, C) replaces the scaled token embeddings."""
        tok = _embed(self.embed, src_ids, inputs_embeds, self.embed_scale)  # (B, S, C)
        S = tok.shape[1]
        if S > self.config.max_len:
            raise ValueError(f"source of {S} tokens exceeds max_len {self.config.max_len}")
        pos = torch.arange(S, device=tok.device)[None]  # (1, S)
        x = self.drop(tok + self.enc_pos(pos))  # (B, S, C)
        x = run_blocks(self.encoder, x, BlockInputs(attn_mask=self.memory_mask(src_mask)))
        return self.enc_norm(x) if self.enc_norm is not None else x

    @staticmethod
    def memory_mask(src_mask: torch.Tensor | None) -> torch.Tensor | None:
        """(B, S) 1/0 -> (B, 1, 1, S) bool, or None when nothing is padded."""
        if src_mask is None or bool(src_mask.all()):
            return None
        return padding_mask(src_mask)

    def decode(self, tgt_ids: torch.Tensor | None, memory: torch.Tensor, memory_mask: torch.Tensor | None = None,
               attention_mask: torch.Tensor | None = None, position_ids: torch.Tensor | None = None,
               cache: KVCache | None = None, last_only: bool = False,
               inputs_embeds: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T) target ids (after the start token) -> (B, T, V) logits. `memory_mask` is (B, 1, 1, S).
        `inputs_embeds` (B, T, C) replaces the scaled target token embeddings."""
        tok = _embed(self.target_embedding, tgt_ids, inputs_embeds, self.embed_scale)  # (B, T, C)
        T = tok.shape[1]
        past = cache.length if cache is not None else 0
        S = past + T
        if S > self.config.max_len:
            raise ValueError(f"target of {S} tokens exceeds max_len {self.config.max_len}")
        if position_ids is None:
            position_ids = torch.arange(past, S, device=tok.device)[None]
        x = self.drop(tok + self.dec_pos(position_ids))  # (B, T, C)
        ctx = BlockInputs(is_causal=True, key_mask=attention_mask, cache=cache, memory=memory, memory_mask=memory_mask)
        x = run_blocks(self.decoder, x, ctx)
        if last_only:
            x = x[:, -1:]
        if self.dec_norm is not None:
            x = self.dec_norm(x)
        logits = self.lm_head(x)  # (B, T, V)
        return logits + self.final_logits_bias if self.final_logits_bias is not None else logits

    def forward(self, src_ids: torch.Tensor, tgt_ids: torch.Tensor, src_mask: torch.Tensor | None = None,
                tgt_mask: torch.Tensor | None = None) -> torch.Tensor:
        memory = self.encode(src_ids, src_mask)
        return self.decode(tgt_ids, memory, self.memory_mask(src_mask), tgt_mask)

    def decoder_view(self, memory: torch.Tensor, src_mask: torch.Tensor | None = None) -> "DecoderView":
        return DecoderView(self, memory, self.memory_mask(src_mask))

    def start_ids(self, batch_size: int, device=None) -> torch.Tensor:
        return torch.full((batch_size, 1), self.config.decoder_start_id, dtype=torch.long, device=device)

    @torch.inference_mode()
    def generate(self, src_ids: torch.Tensor, src_mask: torch.Tensor | None = None, num_beams: int = 1,
                 **kw) -> torch.Tensor:
        """Translate (B, S) source ids -> (B * R, 1 + N) target ids starting with the decoder start token.
        `num_beams` > 1: beam search (`BeamConfig` keywords; forced eos and suppressed ids default to the
        config's); otherwise greedy or sampling (`SamplingConfig` keywords)."""
        from ..beam import generate_tokens

        c = self.config
        if num_beams > 1:
            kw.setdefault("forced_eos_id", c.forced_eos_id)
            kw.setdefault("suppress_ids", list(c.suppress_ids))
        was_training = self.training
        self.eval()
        try:
            view = self.decoder_view(self.encode(src_ids, src_mask), src_mask)
            return generate_tokens(view, self.start_ids(src_ids.shape[0], src_ids.device), num_beams=num_beams,
                                   default_eos=c.eos_id, default_pad=c.pad_id, **kw)
        finally:
            self.train(was_training)


def _embed(table: nn.Embedding, ids: torch.Tensor | None, embeds: torch.Tensor | None, scale: float) -> torch.Tensor:
    if (ids is None) == (embeds is None):
        raise ValueError("pass exactly one of token ids and inputs_embeds")
    return table(ids) * scale if embeds is None else embeds


class DecoderView:
    """A decoder with its encoder memory bound: the causal-LM protocol of generate.py and beam.py
    (`__call__(input_ids, attention_mask, position_ids, cache, last_only)`, `new_cache`, `context_length`),
    plus `expand_beams(k)` which repeats each memory row k times for beam search."""

    def __init__(self, model: nn.Module, memory: torch.Tensor, memory_mask: torch.Tensor | None):
        self.model, self.memory, self.memory_mask = model, memory, memory_mask

    @property
    def context_length(self) -> int:
        return self.model.context_length

    @property
    def shares_memory_across_beams(self) -> bool:
        return True

    def new_cache(self, batch_size: int, max_len: int | None = None) -> KVCache:
        return self.model.new_cache(batch_size, max_len)

    def expand_beams(self, k: int) -> "DecoderView":
        mask = None if self.memory_mask is None else self.memory_mask.repeat_interleave(k, 0)
        return DecoderView(self.model, self.memory.repeat_interleave(k, 0), mask)

    def parameters(self):
        return self.model.parameters()

    def __call__(self, input_ids: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None,
                 position_ids: torch.Tensor | None = None, cache: KVCache | None = None,
                 last_only: bool = False, inputs_embeds: torch.Tensor | None = None) -> torch.Tensor:
        return self.model.decode(input_ids, self.memory, self.memory_mask, attention_mask, position_ids, cache,
                                 last_only, inputs_embeds)


register_family("seq2seq", Seq2SeqConfig, Seq2Seq, "encoder-decoder Transformer (translation)")
register_preset("transformer-base", "seq2seq", "Attention Is All You Need base: 6+6 layers, width 512, 8 heads, "
                "FFN 2048, sinusoidal positions, shared embeddings", encoder_layers=6, decoder_layers=6, dim=512,
                n_head=8, ffn_dim=2048)
register_preset("transformer-big", "seq2seq", "Attention Is All You Need big: 6+6 layers, width 1024, 16 heads, "
                "FFN 4096", encoder_layers=6, decoder_layers=6, dim=1024, n_head=16, ffn_dim=4096, dropout=0.3)
register_preset("transformer-small", "seq2seq", "3+3 layers, width 256, 4 heads: trains on a CPU in minutes",
                encoder_layers=3, decoder_layers=3, dim=256, n_head=4, ffn_dim=1024, max_len=128)
register_preset("transformer-tiny", "seq2seq", "2+2 layers, width 128, 4 heads: CPU demos",
                encoder_layers=2, decoder_layers=2, dim=128, n_head=4, ffn_dim=512, max_len=128)
register_preset("transformer-nano", "seq2seq", "1+1 layers, width 32: tests", encoder_layers=1, decoder_layers=1,
                dim=32, n_head=4, ffn_dim=64, max_len=64, dropout=0.0)
