"""BERT: token + segment + position embeddings, post-norm bidirectional blocks, pooler, task heads.

`position="rotary"` replaces the learned position table by rotary angles on every self-attention's queries
and keys (relative positions, as the GPT/Llama family): not a Hugging Face BertModel layout."""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import nn

from ..nn import BlockConfig, BlockInputs, LearnedPositions, Rotary, run_blocks, transformer_block
from ..nn.masks import combine, padding_mask
from .bert_heads import HEADS, BertOutput, MLMHead, QAHead
from .bert_local import TokenShift, token_groups
from .registry import register_family, register_preset

POOLINGS = ("cls", "mean", "max", "mean_sqrt_len")
POSITIONS = ("learned", "rotary")


@dataclass
class BertConfig:
    vocab_size: int = 30522
    max_positions: int = 512
    type_vocab_size: int = 2
    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768
    mlp_hidden: int = 3072
    activation: str = "gelu"
    norm_eps: float = 1e-12
    dropout: float = 0.1
    pad_id: int = 0
    pooler: bool = True               # dense + tanh over [CLS] (BertModel has it; MLM/tag/QA models don't)
    head: str = "none"                # none | mlm | pretraining (MLM + NSP) | classify | tag | qa
    num_labels: int = 2               # classify / tag
    labels: list[str] | None = None   # id -> label name (kept so `predict` works after `lingvis.load`)
    classifier_dropout: float | None = None
    classifier_pooling: str = "cls"   # classify head input: pooler over [CLS] (BERT) or over the token mean
    tie_embeddings: bool = True       # MLM decoder shares the word embedding matrix
    no_answer: bool = False           # QA trained with unanswerable questions (SQuAD v2)
    pooling: str = "mean"             # sentence embeddings: cls | mean | max | mean_sqrt_len
    normalize: bool = False           # L2-normalise sentence embeddings
    embed_max_length: int | None = None  # truncate texts for embeddings (sentence-transformers max_seq_length)
    init_std: float = 0.02
    prenorm: bool = False             # pre-norm blocks + final LayerNorm (trains from scratch faster); not HF BERT
    position: str = "learned"         # learned (HF BERT) | rotary (relative: rotary q/k angles, no table; not HF BERT)
    rope_theta: float = 10000.0       # rotary base
    token_shift: bool = False         # add a learned projection of both neighbours to each embedding (not HF BERT)

    def __post_init__(self):
        if self.head not in HEADS:
            raise ValueError(f"unknown BERT head {self.head!r}; choose from {', '.join(HEADS)}")
        if self.position not in POSITIONS:
            raise ValueError(f"unknown BERT position {self.position!r}; choose from {', '.join(POSITIONS)}")
        if self.pooling not in POOLINGS:
            raise ValueError(f"unknown pooling {self.pooling!r}; choose from {', '.join(POOLINGS)}")
        if self.labels is not None:
            self.labels = [str(x) for x in self.labels]
            if len(set(self.labels)) != len(self.labels):
                raise ValueError(f"duplicate label names in {self.labels}")
            self.num_labels = len(self.labels)
        if self.classifier_pooling not in ("cls", "mean"):
            raise ValueError(f"classifier_pooling must be 'cls' or 'mean', got {self.classifier_pooling!r}")
        if self.head in ("pretraining", "classify") and not self.pooler:
            raise ValueError(f"head {self.head!r} reads the pooled [CLS] vector: it needs pooler=True")

    def block_config(self) -> BlockConfig:
        return BlockConfig(dim=self.n_embd, n_heads=self.n_head, mlp_hidden=self.mlp_hidden,
                           activation=self.activation, norm="layernorm", norm_eps=self.norm_eps, prenorm=self.prenorm,
                           bias=True, dropout=self.dropout)

    @property
    def label_names(self) -> list[str]:
        return self.labels if self.labels is not None else [f"LABEL_{i}" for i in range(self.num_labels)]


class Bert(nn.Module):
    """Bidirectional encoder. `forward(input_ids (B, T), attention_mask, token_type_ids) -> BertOutput`."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.config = c = config
        self.tok_emb = nn.Embedding(c.vocab_size, c.n_embd)
        self.pos_emb = LearnedPositions(c.max_positions, c.n_embd) if c.position == "learned" else None
        self.rope = Rotary(c.n_embd // c.n_head, c.max_positions, c.rope_theta) if c.position == "rotary" else None
        self.seg_emb = nn.Embedding(c.type_vocab_size, c.n_embd)
        self.emb_ln = nn.LayerNorm(c.n_embd, eps=c.norm_eps)
        self.shift = TokenShift(c.n_embd) if c.token_shift else None
        self.drop = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList(transformer_block(c.block_config()) for _ in range(c.n_layer))
        self.ln_f = nn.LayerNorm(c.n_embd, eps=c.norm_eps) if c.prenorm else None  # after the last block
        self.pooler = nn.Linear(c.n_embd, c.n_embd) if c.pooler else None
        self.head_drop = nn.Dropout(c.dropout if c.classifier_dropout is None else c.classifier_dropout)
        self.mlm = MLMHead(c.n_embd, c.vocab_size, c.activation, c.norm_eps) if c.head in ("mlm", "pretraining") \
            else None
        self.nsp = nn.Linear(c.n_embd, 2) if c.head == "pretraining" else None
        self.classifier = nn.Linear(c.n_embd, c.num_labels) if c.head in ("classify", "tag") else None
        self.qa = QAHead(c.n_embd) if c.head == "qa" else None
        self.apply(self._init_weights)
        if self.mlm is not None and c.tie_embeddings:
            self.mlm.decoder.weight = self.tok_emb.weight

    def _init_weights(self, m: nn.Module) -> None:
        std = self.config.init_std
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=std)
            if isinstance(m, nn.Linear) and m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, LearnedPositions):
            nn.init.normal_(m.weight, std=std)

    # ---- encoder ---------------------------------------------------------------------------------
    def embed(self, input_ids: torch.Tensor | None, token_type_ids: torch.Tensor | None = None,
              position_ids: torch.Tensor | None = None, inputs_embeds: torch.Tensor | None = None) -> torch.Tensor:
        """Word (or given `inputs_embeds` (B, T, C)) + segment + position embeddings, normed: (B, T, C)."""
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("pass exactly one of input_ids and inputs_embeds")
        B, T = input_ids.shape if input_ids is not None else inputs_embeds.shape[:2]
        dev = input_ids.device if input_ids is not None else inputs_embeds.device
        longest = T if position_ids is None else int(position_ids.max()) + 1
        if longest > self.config.max_positions:
            raise ValueError(f"sequence of {longest} tokens exceeds max_positions {self.config.max_positions}; "
                             "truncate the input or use sliding windows")
        if position_ids is None:
            position_ids = torch.arange(T, device=dev)[None].expand(B, T)
        if token_type_ids is None:
            token_type_ids = torch.zeros(B, T, dtype=torch.long, device=dev)
        words = self.tok_emb(input_ids) if inputs_embeds is None else inputs_embeds
        x = words + self.seg_emb(token_type_ids)  # (B, T, C)
        if self.pos_emb is not None:
            x = x + self.pos_emb(position_ids)
        return self.drop(self.emb_ln(x))

    def _rope(self, position_ids: torch.Tensor | None, B: int, T: int, dev) -> tuple | None:
        """Rotary (cos, sin), each (B|1, 1, T, D), for position="rotary"; None with learned positions."""
        if self.rope is None:
            return None
        if position_ids is None:  # one row of angles broadcast over the batch
            position_ids = torch.arange(T, device=dev)[None]  # (1, T)
        return self.rope(position_ids)

    def encode(self, input_ids: torch.Tensor | None, attention_mask: torch.Tensor | None = None,
               token_type_ids: torch.Tensor | None = None, position_ids: torch.Tensor | None = None,
               inputs_embeds: torch.Tensor | None = None) -> torch.Tensor:
        """Last-layer hidden states (B, T, C). `attention_mask` (B, T): 1 = real token, 0 = padding."""
        x = self.embed(input_ids, token_type_ids, position_ids, inputs_embeds)
        mask = None
        if attention_mask is not None and not bool(attention_mask.bool().all()):
            mask = combine(padding_mask(attention_mask))  # (B, 1, 1, T) key mask, True = attend
        if self.shift is not None:
            x = self.shift(x, token_groups(attention_mask, x.shape[0], x.shape[1], x.device))
        rope = self._rope(position_ids, x.shape[0], x.shape[1], x.device)
        return self._final_norm(run_blocks(self.blocks, x, BlockInputs(attn_mask=mask, rope=rope)))

    def _final_norm(self, h: torch.Tensor) -> torch.Tensor:
        return h if self.ln_f is None else self.ln_f(h)

    def encode_packed(self, input_ids: torch.Tensor, lengths: list[int],
                      token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        """Several sequences concatenated into one row (N,) -> hidden states (N, C). Positions restart at
        each sequence and attention is block-diagonal, so each sequence sees only itself: the result equals
        encoding them separately, but the linear layers run once over real tokens only (no padding)."""
        dev = input_ids.device
        sizes = torch.tensor(lengths, device=dev)
        if int(sizes.sum()) != input_ids.numel():
            raise ValueError(f"lengths sum to {int(sizes.sum())} but {input_ids.numel()} ids were given")
        starts = torch.repeat_interleave(torch.cumsum(sizes, 0) - sizes, sizes)  # (N,) start of own sequence
        positions = torch.arange(input_ids.numel(), device=dev) - starts  # (N,)
        seq = torch.repeat_interleave(torch.arange(len(lengths), device=dev), sizes)  # (N,)
        same = (seq[:, None] == seq[None, :])[None, None]  # (1, 1, N, N) block-diagonal, True = attend
        # passed to SDPA as an additive float mask (0 / -inf): its CPU kernels run faster with those
        mask = torch.zeros(same.shape, device=dev).masked_fill_(~same, float("-inf"))
        types = None if token_type_ids is None else token_type_ids[None]
        x = self.embed(input_ids[None], types, positions[None])  # (1, N, C)
        if self.shift is not None:
            x = self.shift(x, seq[None])
        rope = self._rope(positions[None], 1, x.shape[1], dev)
        return self._final_norm(run_blocks(self.blocks, x, BlockInputs(attn_mask=mask, rope=rope))[0])

    def pool(self, hidden: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """tanh(dense(x)) of the [CLS] vector, or of the mean over real tokens (classifier_pooling='mean')."""
        if self.pooler is None:
            raise ValueError("this BERT has no pooler (pooler=False)")
        if self.config.classifier_pooling == "cls":
            return torch.tanh(self.pooler(hidden[:, 0]))  # (B, C)
        m = torch.ones(hidden.shape[:2], device=hidden.device) if attention_mask is None else attention_mask
        m = m.to(hidden.dtype).unsqueeze(-1)  # (B, T, 1)
        return torch.tanh(self.pooler((hidden * m).sum(1) / m.sum(1).clamp(min=1.0)))

    # ---- heads -----------------------------------------------------------------------------------
    def forward(self, input_ids: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None, position_ids: torch.Tensor | None = None,
                mlm_positions: torch.Tensor | None = None, inputs_embeds: torch.Tensor | None = None) -> BertOutput:
        """`mlm_positions` (B, T) bool: MLM logits only at those positions, shape (N, V) (saves the
        vocabulary projection at the other 85% during pretraining). `inputs_embeds` (B, T, C) replaces the
        word embeddings."""
        h = self.encode(input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds)
        out = BertOutput(hidden=h, pooled=self.pool(h, attention_mask) if self.pooler is not None else None)
        head = self.config.head
        if self.mlm is not None:
            out.logits = self.mlm(h[mlm_positions] if mlm_positions is not None else h)
        if head == "pretraining":
            out.nsp_logits = self.nsp(out.pooled)  # (B, 2)
        elif head == "classify":
            out.logits = self.classifier(self.head_drop(out.pooled))  # (B, L)
        elif head == "tag":
            out.logits = self.classifier(self.head_drop(h))  # (B, T, L)
        elif head == "qa":
            out.start_logits, out.end_logits = self.qa(h)  # (B, T) each
        return out


def with_head(model: Bert, head: str, labels: list[str] | None = None, no_answer: bool = False,
              **overrides) -> Bert:
    """A new Bert with `model`'s embeddings and encoder (and pooler when both have one) and a fresh `head`.
    Used to fine-tune a pretrained checkpoint for another task."""
    pooler = head in ("pretraining", "classify") or (model.config.pooler and head == "none")
    cfg = replace(model.config, head=head, labels=labels, pooler=pooler, no_answer=no_answer,
                  num_labels=len(labels) if labels else model.config.num_labels, **overrides)
    new = Bert(cfg)
    keep = ("tok_emb.", "pos_emb.", "seg_emb.", "emb_ln.", "shift.", "blocks.", "ln_f.")
    keep += ("pooler.",) if pooler else ()
    own = new.state_dict()
    for k, v in model.state_dict().items():
        if k.startswith(keep) and k in own:
            own[k].copy_(v)
    if same_head(model.config, cfg):
        new.load_state_dict(model.state_dict(), strict=False)
    return new


def same_head(a: BertConfig, b: BertConfig) -> bool:
    return a.head == b.head and a.num_labels == b.num_labels and a.labels == b.labels


register_family("bert", BertConfig, Bert, "bidirectional encoder (BERT): MLM/NSP, classify, tag, QA, embeddings")
register_preset("bert-base", "bert", "BERT-base, 110M (109,482,240 parameters without heads)")
register_preset("bert-large", "bert", "BERT-large, 335M", n_layer=24, n_head=16, n_embd=1024, mlp_hidden=4096)
register_preset("minilm-l6", "bert", "6 layers, width 384 (all-MiniLM-L6-v2 shape)",
                n_layer=6, n_head=12, n_embd=384, mlp_hidden=1536)
register_preset("bert-small", "bert", "4 layers, width 512 (Google BERT-Small)",
                n_layer=4, n_head=8, n_embd=512, mlp_hidden=2048)
register_preset("bert-mini", "bert", "4 layers, width 256, 128 positions: pretrains on a CPU in minutes",
                n_layer=4, n_head=4, n_embd=256, mlp_hidden=1024, max_positions=128)
register_preset("bert-tiny", "bert", "2 layers, width 128: tests and quick demos",
                n_layer=2, n_head=2, n_embd=128, mlp_hidden=512, max_positions=128)
register_preset("bert-tiny-preln", "bert", "bert-tiny shape, 4 heads, pre-norm, no dropout: learns from scratch in "
                "CPU minutes (no Hugging Face layout)", n_layer=2, n_head=4, n_embd=128, mlp_hidden=512,
                max_positions=128, prenorm=True, dropout=0.0)
register_preset("bert-tiny-rope", "bert", "bert-tiny-preln with rotary (relative) positions instead of a learned "
                "table: from-scratch runs (no Hugging Face layout)", n_layer=2, n_head=4, n_embd=128, mlp_hidden=512,
                max_positions=128, prenorm=True, dropout=0.0, position="rotary")
register_preset("bert-tiny-rope-shift", "bert", "bert-tiny-rope + token shift (each embedding gains both neighbours): "
                "the demo's from-scratch model, leaves the MLM plateau in CPU minutes (no Hugging Face layout)",
                n_layer=2, n_head=4, n_embd=128, mlp_hidden=512, max_positions=128, prenorm=True, dropout=0.0,
                position="rotary", token_shift=True)
