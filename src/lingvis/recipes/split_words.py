"""Split the embeddings of word pairs that text-only pretraining left nearly equal.

A language model pretrained on text alone sees " left" and " right" (or " above" and " below") in the same contexts
equally often, so their embeddings end up close (the shapes LM: cosine 0.78; after a LLaVA stage 2 that could not
tell them apart, 0.99). With tied embeddings the logit gap between the two words is `h . (e_a - e_b)`, so a short
`e_a - e_b` also shrinks the gradient that would teach the model to tell them apart from the image
(docs/llava.md, 2026-12-07 fifth session). `split_word_pairs` keeps each pair's mean `m` and sets the two rows to
`m + d` and `m - d`, `d` random, orthogonal to `m`, `|d| = spread * |m|` (spread 0.65: cosine 0.41 between them),
in the input embedding and, when untied, in the output head (its own mean there).
"""
from __future__ import annotations

import torch


def parse_pairs(spec: str | None) -> list[tuple[str, str]]:
    """'left/right,above/below' -> [('left', 'right'), ('above', 'below')]; None or '' -> []."""
    if not spec:
        return []
    pairs = []
    for part in spec.split(","):
        words = [w.strip() for w in part.split("/")]
        if len(words) != 2 or not all(words) or words[0] == words[1]:
            raise ValueError(f"split_words takes pairs of two different words as 'a/b,c/d', got {part!r} in {spec!r}")
        pairs.append((words[0], words[1]))
    return pairs


def _ids(tok, text: str) -> list[int]:
    ids = tok.encode(text)
    return ids if isinstance(ids, list) else list(ids["input_ids"])


def word_id(tok, word: str) -> int:
    """The one token id of `word` as it follows a space (' left', BPE), else of the bare word (a character
    tokenizer); an error names words that are several tokens either way."""
    for text in (" " + word, word):
        ids = _ids(tok, text)
        if len(ids) == 1:
            return ids[0]
    raise ValueError(f"split_words: {word!r} is {len(_ids(tok, ' ' + word))} tokens after a space and "
                     f"{len(_ids(tok, word))} alone in this tokenizer, not one: only one-token words can be split")


@torch.no_grad()
def split_word_pairs(model, tok, pairs: list[tuple[str, str]], spread: float = 0.65, seed: int = 0) -> list[dict]:
    """Split each pair's embedding rows in place (see the module doc); returns per pair the ids and the input
    embeddings' cosine before and after. `model`: a Llava (its `.llm`) or a GPT."""
    lm = getattr(model, "llm", model)
    emb = lm.wte.weight  # (V, C)
    tables = [emb] + ([lm.lm_head.weight] if lm.lm_head.weight.data_ptr() != emb.data_ptr() else [])
    gen = torch.Generator().manual_seed(seed)
    out = []
    for a, b in pairs:
        ia, ib = word_id(tok, a), word_id(tok, b)
        before = torch.cosine_similarity(emb[ia], emb[ib], dim=0).item()
        for table in tables:  # each (V, C)
            m = (table[ia] + table[ib]) / 2  # (C,)
            d = torch.randn(m.shape, generator=gen).to(m)
            d = d - (d @ m) / (m @ m) * m  # orthogonal to the mean
            d = d / d.norm() * spread * m.norm()
            table[ia], table[ib] = m + d, m - d
        out.append({"pair": [a, b], "ids": [ia, ib], "cos_before": round(before, 4),
                    "cos_after": round(torch.cosine_similarity(emb[ia], emb[ib], dim=0).item(), 4)})
    return out
