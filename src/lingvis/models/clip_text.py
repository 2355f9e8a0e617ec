"""CLIP's text tower (causal Transformer over token + learned position embeddings, final LayerNorm) and
the tokenisation rules shared by every CLIP text tower (CLIP's own or a BERT-family encoder)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..nn import BlockConfig, BlockInputs, make_norm, run_blocks, transformer_block
from .registry import register_family
from .vit import init_blocks


@dataclass
class CLIPTextConfig:
    vocab_size: int = 49408
    context_length: int = 77
    dim: int = 512
    depth: int = 12
    heads: int = 8
    mlp_hidden: int = 2048
    activation: str = "quick_gelu"
    norm_eps: float = 1e-5
    dropout: float = 0.0

    @property
    def out_dim(self) -> int:
        return self.dim

    def block_config(self) -> BlockConfig:
        return BlockConfig(dim=self.dim, n_heads=self.heads, mlp_hidden=self.mlp_hidden,
                           activation=self.activation, norm_eps=self.norm_eps, prenorm=True, dropout=self.dropout)


class CLIPTextEncoder(nn.Module):
    """`encode(input_ids (B, T), attention_mask) -> (B, T, C)` final-normed hidden states (causal)."""

    def __init__(self, config: CLIPTextConfig):
        super().__init__()
        self.config = c = config
        self.tok_emb = nn.Embedding(c.vocab_size, c.dim)
        self.pos_emb = nn.Parameter(torch.empty(c.context_length, c.dim))
        self.drop = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList(transformer_block(c.block_config()) for _ in range(c.depth))
        self.ln_final = make_norm("layernorm", c.dim, c.norm_eps)
        nn.init.normal_(self.tok_emb.weight, std=0.02)
        nn.init.normal_(self.pos_emb, std=0.01)
        init_blocks(self.blocks, c.dim)

    @property
    def out_dim(self) -> int:
        return self.config.dim

    def encode(self, input_ids: torch.Tensor | None, attention_mask: torch.Tensor | None = None,
               output_hidden_states: bool = False, inputs_embeds: torch.Tensor | None = None):
        # input_ids: (B, T) (or inputs_embeds (B, T, C)); attention_mask: (B, T) 1 = token, 0 = padding
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("pass exactly one of input_ids and inputs_embeds")
        tok = self.tok_emb(input_ids) if inputs_embeds is None else inputs_embeds  # (B, T, C)
        T = tok.shape[1]
        if T > self.config.context_length:
            raise ValueError(f"text of {T} tokens exceeds the context length {self.config.context_length}")
        x = self.drop(tok + self.pos_emb[:T])  # (B, T, C)
        padded = attention_mask is not None and not bool(attention_mask.bool().all())
        ctx = BlockInputs(is_causal=True, key_mask=attention_mask if padded else None)
        hidden = [] if output_hidden_states else None
        x = self.ln_final(run_blocks(self.blocks, x, ctx, hidden))
        return (x, hidden) if output_hidden_states else x


register_family("clip_text", CLIPTextConfig, CLIPTextEncoder, "CLIP text tower (causal Transformer)")


def text_inputs(tokenizer, texts: list[str], context_length: int, style: str, bos_id: int | None,
                eos_id: int | None, pad_id: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids (B, T) and attention mask (B, T) for a CLIP text tower, padded to the longest text.

    style 'clip': [bos] + text + [eos] (eos kept when truncating; pooling reads the eos position);
    style 'encoder': the tokenizer's own special tokens (e.g. [CLS] text [SEP] for BERT)."""
    if isinstance(texts, str):
        texts = [texts]
    if not texts:
        raise ValueError("no texts to encode")
    if style == "clip":
        if eos_id is None:
            raise ValueError("this CLIP model needs an end-of-text token id (eos_token_id) to pool its text")
        body = tokenizer.encode_batch(list(texts))
        head = [bos_id] if bos_id is not None else []
        seqs = [(head + ids)[:context_length - 1] + [eos_id] for ids in body]
    else:
        seqs = [ids[:context_length - 1] + ids[-1:] if len(ids) > context_length else ids
                for ids in tokenizer.encode_batch(list(texts), add_special_tokens=True)]
    pad = pad_id if pad_id is not None else (eos_id if eos_id is not None else 0)
    T = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), T), pad, dtype=torch.long)
    mask = torch.zeros((len(seqs), T), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, :len(s)] = torch.tensor(s, dtype=torch.long)
        mask[i, :len(s)] = 1
    return ids, mask  # (B, T), (B, T)
