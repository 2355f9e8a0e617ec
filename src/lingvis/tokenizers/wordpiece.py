"""Train a BERT-style WordPiece tokenizer: BERT normaliser (optional lower-casing), BERT pre-tokenizer,
`##` continuation pieces, the specials [PAD] [UNK] [CLS] [SEP] [MASK] (ids 0-4) and the
`[CLS] A [SEP] B [SEP]` template (segment id 0 for A and its [SEP], 1 for B and its [SEP]).

A folder holding only a BERT `vocab.txt` loads through `Tokenizer.load` as well."""
from __future__ import annotations

from typing import Iterable

import tokenizers as hf_tok
from tokenizers import decoders, models, normalizers, pre_tokenizers, processors, trainers

from lingvis.tokenizers.base import Tokenizer
from lingvis.tokenizers.train import TextSource, _CountingIterator, iter_texts

BERT_SPECIAL_TOKENS = {"pad": "[PAD]", "unk": "[UNK]", "cls": "[CLS]", "sep": "[SEP]", "mask": "[MASK]"}
CONTINUATION = "##"


def bert_template(cls: str, cls_id: int, sep: str, sep_id: int) -> processors.TemplateProcessing:
    """`[CLS] $A [SEP]` for one text and `[CLS] $A [SEP] $B:1 [SEP]:1` for a pair."""
    return processors.TemplateProcessing(single=f"{cls} $A {sep}", pair=f"{cls} $A {sep} $B:1 {sep}:1",
                                         special_tokens=[(cls, cls_id), (sep, sep_id)])


def train_wordpiece(
    texts_or_files: TextSource | Iterable[TextSource],
    vocab_size: int,
    lowercase: bool = True,
    *,
    min_frequency: int = 2,
    strip_accents: bool | None = None,
    text_field: str = "text",
    model_max_length: int | None = 512,
    show_progress: bool = False,
) -> Tokenizer:
    """WordPiece vocabulary of at most `vocab_size` entries (specials and single characters included).

    `strip_accents=None` follows `lowercase` (as BERT's uncased models do). Not reproducible across
    processes: the tokenizers library numbers the `##` continuation pieces in hash-map order, which breaks
    merge-count ties differently each time, so two trainings on the same text differ in a few dozen rare
    pieces (byte-level BPE, `train_bpe`, is reproducible). A run saves its tokenizer, so resuming is exact."""
    specials = list(BERT_SPECIAL_TOKENS.values())
    if vocab_size < len(specials) + 26:
        raise ValueError(f"vocab_size={vocab_size} is too small for a WordPiece vocabulary "
                         f"({len(specials)} special tokens plus the characters of the corpus)")
    backend = hf_tok.Tokenizer(models.WordPiece(unk_token=BERT_SPECIAL_TOKENS["unk"],
                                                continuing_subword_prefix=CONTINUATION))
    backend.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True,
                                                    strip_accents=strip_accents, lowercase=lowercase)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.decoder = decoders.WordPiece(prefix=CONTINUATION)
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size, min_frequency=min_frequency, show_progress=show_progress,
        special_tokens=[hf_tok.AddedToken(t, special=True, normalized=False) for t in specials],
        continuing_subword_prefix=CONTINUATION)
    seen = _CountingIterator(iter_texts(texts_or_files, text_field))
    backend.train_from_iterator(seen, trainer=trainer)
    if seen.chars == 0:
        raise ValueError("no training text: every input was empty")
    cls, sep = BERT_SPECIAL_TOKENS["cls"], BERT_SPECIAL_TOKENS["sep"]
    backend.post_processor = bert_template(cls, backend.token_to_id(cls), sep, backend.token_to_id(sep))
    return Tokenizer(backend, BERT_SPECIAL_TOKENS, model_max_length=model_max_length)


def continuation_flags(tokenizer: Tokenizer) -> list[bool]:
    """Per id: True when the token continues the previous word (a `##` piece). Used by whole-word masking."""
    vocab = tokenizer.get_vocab()
    flags = [False] * tokenizer.vocab_size
    for token, i in vocab.items():
        if token.startswith(CONTINUATION) and len(token) > len(CONTINUATION):
            flags[i] = True
    return flags
