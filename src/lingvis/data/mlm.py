"""BERT pretraining data: sentence-pair instances for next-sentence prediction and masked-LM batches.

`SentencePairDataset` follows BERT's `create_pretraining_data`: walk each document's sentences, gather a
chunk up to the target length, cut it into segment A and B; half the time B is replaced by text from a
random other document (is_next = 0). `MLMCollator` pads a batch and masks 15% of the non-special tokens
(80% -> [MASK], 10% -> a random token, 10% kept), optionally whole words; masks are drawn anew for every
batch from torch's RNG (which the trainer seeds and restores on resume)."""
from __future__ import annotations

import random
import re
from dataclasses import dataclass

import torch
from torch.utils.data import Dataset

_SENTENCE_END = re.compile(r"(?<=[.!?;:])\s+|\n\s*\n")
PSEUDO_DOCS = 10  # a single document is cut into this many parts so NSP can draw "random" segments


def split_sentences(text: str) -> list[str]:
    """Sentences (or verse-speech fragments) of a document: cut after . ! ? ; : and at blank lines."""
    return [s for s in (p.strip() for p in _SENTENCE_END.split(text)) if s]


def tokenize_documents(tokenizer, texts: list[str]) -> list[list[list[int]]]:
    """documents -> sentences -> token ids (no specials); empty sentences dropped."""
    docs = []
    for text in texts:
        sentences = split_sentences(text)
        ids = tokenizer.encode_batch(sentences) if sentences else []
        doc = [s for s in ids if s]
        if doc:
            docs.append(doc)
    if not docs:
        raise ValueError("no tokens in the pretraining corpus (every document was empty)")
    if len(docs) == 1 and len(docs[0]) >= 2 * PSEUDO_DOCS:
        only, n = docs[0], len(docs[0])
        docs = [only[i * n // PSEUDO_DOCS:(i + 1) * n // PSEUDO_DOCS] for i in range(PSEUDO_DOCS)]
    return docs


@dataclass
class PairInstance:
    ids: list[int]          # [CLS] A [SEP] B [SEP] (or [CLS] A [SEP] without NSP)
    token_type_ids: list[int]
    is_next: int            # 1 = B follows A, 0 = B is random, -100 = no NSP


def _truncate_pair(a: list[int], b: list[int], budget: int, rng: random.Random) -> None:
    """Drop tokens from the longer segment (front or back at random) until both fit `budget`."""
    while len(a) + len(b) > budget:
        longer = a if len(a) > len(b) else b
        del longer[0 if rng.random() < 0.5 else -1]


class SentencePairDataset(Dataset):
    """Pretraining instances of at most `max_len` tokens, built once from a seed.

    `dupe_factor` passes over the corpus give different cuts; `short_seq_prob` of instances get a shorter
    random target length (as in BERT). With `nsp=False` each instance is one segment (MLM only)."""

    def __init__(self, docs: list[list[list[int]]], cls_id: int, sep_id: int, max_len: int = 128,
                 nsp: bool = True, dupe_factor: int = 2, short_seq_prob: float = 0.1, seed: int = 0):
        if max_len < 8:
            raise ValueError(f"max_len must be >= 8, got {max_len}")
        if nsp and len(docs) < 2:
            raise ValueError("next-sentence prediction needs at least 2 documents (or one long one)")
        self.cls_id, self.sep_id, self.max_len, self.nsp = cls_id, sep_id, max_len, nsp
        self.short_seq_prob = short_seq_prob
        rng = random.Random(seed)
        self.instances: list[PairInstance] = []
        for _ in range(dupe_factor):
            for d in range(len(docs)):
                self.instances += self._from_document(docs, d, rng)
        if not self.instances:
            raise ValueError("the corpus produced no pretraining instances")

    def _random_segment(self, docs, d: int, target: int, rng: random.Random) -> list[int]:
        other = rng.choice([i for i in range(len(docs)) if i != d])
        doc = docs[other]
        out: list[int] = []
        for sent in doc[rng.randrange(len(doc)):]:
            out += sent
            if len(out) >= target:
                break
        return out

    def _pair(self, docs, d: int, chunk: list[list[int]], target: int, rng) -> tuple[list[int], list[int], int]:
        """Cut `chunk` into A and its true continuation (between sentences, or inside a lone sentence);
        with probability 0.5 B is a random segment of another document instead. Returns (A, B, is_next)."""
        if len(chunk) > 1:
            cut = rng.randrange(1, len(chunk))
            a, true_b = [t for s in chunk[:cut] for t in s], [t for s in chunk[cut:] for t in s]
        else:
            toks = chunk[0]
            cut = rng.randrange(1, len(toks)) if len(toks) > 1 else 1
            a, true_b = toks[:cut], toks[cut:]
        if not true_b or rng.random() < 0.5:
            return a, self._random_segment(docs, d, max(1, target - len(a)), rng), 0
        return a, true_b, 1

    def _from_document(self, docs, d: int, rng: random.Random) -> list[PairInstance]:
        doc, out = docs[d], []
        overhead = 3 if self.nsp else 2
        max_tokens = self.max_len - overhead
        target = rng.randint(2, max_tokens) if rng.random() < self.short_seq_prob else max_tokens
        chunk, length = [], 0
        for i, sentence in enumerate(doc):
            chunk.append(sentence)
            length += len(sentence)
            if i == len(doc) - 1 or length >= target:
                out.append(self._instance(docs, d, chunk, target, rng))
                chunk, length = [], 0
                target = rng.randint(2, max_tokens) if rng.random() < self.short_seq_prob else max_tokens
        return out

    def _instance(self, docs, d, chunk, target, rng) -> PairInstance:
        if not self.nsp:
            a = [t for s in chunk for t in s][:self.max_len - 2]
            return PairInstance([self.cls_id, *a, self.sep_id], [0] * (len(a) + 2), -100)
        a, b, is_next = self._pair(docs, d, chunk, target, rng)
        a, b = list(a), list(b)
        _truncate_pair(a, b, self.max_len - 3, rng)
        ids = [self.cls_id, *a, self.sep_id, *b, self.sep_id]
        return PairInstance(ids, [0] * (len(a) + 2) + [1] * (len(b) + 1), is_next)

    def __len__(self) -> int:
        return len(self.instances)

    def __getitem__(self, i: int) -> PairInstance:
        return self.instances[i]


@dataclass
class MaskingConfig:
    mlm_prob: float = 0.15
    mask_frac: float = 0.8      # of the chosen tokens: -> [MASK]
    random_frac: float = 0.1    # -> a random token; the rest stay unchanged
    whole_word: bool = False    # choose whole words (a token and its ## continuations)
    max_predictions: int | None = None

    def __post_init__(self):
        if not 0.0 < self.mlm_prob < 1.0:
            raise ValueError(f"mlm_prob must be in (0, 1), got {self.mlm_prob}")
        if self.mask_frac < 0 or self.random_frac < 0 or self.mask_frac + self.random_frac > 1.0:
            raise ValueError(f"mask_frac + random_frac must be within [0, 1], "
                             f"got {self.mask_frac} + {self.random_frac}")


class MLMCollator:
    """Pads instances and applies masking. Batch keys: input_ids, token_type_ids, attention_mask (B, T),
    mlm_labels (B, T; -100 where not predicted), nsp_labels (B,)."""

    def __init__(self, vocab_size: int, pad_id: int, mask_id: int, special_ids: list[int],
                 continuation: list[bool] | None = None, config: MaskingConfig | None = None):
        self.cfg = config or MaskingConfig()
        if self.cfg.whole_word and continuation is None:
            raise ValueError("whole-word masking needs the tokenizer's continuation flags (## pieces)")
        self.pad_id, self.mask_id = pad_id, mask_id
        self.special = set(special_ids)
        self.continuation = continuation
        self.replace_pool = torch.tensor([i for i in range(vocab_size) if i not in self.special])

    def _words(self, ids: list[int]) -> list[list[int]]:
        """Candidate positions grouped into maskable units (single tokens, or whole words)."""
        words: list[list[int]] = []
        for pos, tok in enumerate(ids):
            if tok in self.special:
                continue
            if self.cfg.whole_word and words and self.continuation[tok] and words[-1][-1] == pos - 1:
                words[-1].append(pos)
            else:
                words.append([pos])
        return words

    def choose(self, ids: list[int]) -> list[int]:
        """Positions to predict: about mlm_prob of the candidate tokens (at least one)."""
        words = self._words(ids)
        n_tokens = sum(len(w) for w in words)
        if n_tokens == 0:
            return []
        budget = max(1, round(n_tokens * self.cfg.mlm_prob))
        if self.cfg.max_predictions:
            budget = min(budget, self.cfg.max_predictions)
        chosen: list[int] = []
        for w in torch.randperm(len(words)).tolist():
            if len(chosen) + len(words[w]) <= budget:
                chosen += words[w]
            if len(chosen) >= budget:
                break
        return sorted(chosen)

    def mask(self, ids: torch.Tensor, positions: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """(masked ids, labels) for one (T,) row."""
        labels = torch.full_like(ids, -100)
        if not positions:
            return ids, labels
        pos = torch.tensor(positions)
        labels[pos] = ids[pos]
        r = torch.rand(len(positions))
        out = ids.clone()
        to_mask = pos[r < self.cfg.mask_frac]
        to_random = pos[(r >= self.cfg.mask_frac) & (r < self.cfg.mask_frac + self.cfg.random_frac)]
        out[to_mask] = self.mask_id
        if len(to_random):
            out[to_random] = self.replace_pool[torch.randint(len(self.replace_pool), (len(to_random),))]
        return out, labels

    def __call__(self, samples: list[PairInstance]) -> dict:
        T = max(len(s.ids) for s in samples)
        B = len(samples)
        ids = torch.full((B, T), self.pad_id, dtype=torch.long)
        types = torch.zeros((B, T), dtype=torch.long)
        attn = torch.zeros((B, T), dtype=torch.long)
        labels = torch.full((B, T), -100, dtype=torch.long)
        for i, s in enumerate(samples):
            n = len(s.ids)
            row, lab = self.mask(torch.tensor(s.ids), self.choose(s.ids))
            ids[i, :n], labels[i, :n], attn[i, :n] = row, lab, 1
            types[i, :n] = torch.tensor(s.token_type_ids)
        nsp = torch.tensor([s.is_next for s in samples], dtype=torch.long)
        return {"input_ids": ids, "token_type_ids": types, "attention_mask": attn, "mlm_labels": labels,
                "nsp_labels": nsp}
