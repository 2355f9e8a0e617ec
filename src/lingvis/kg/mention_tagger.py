"""Entity mentions with the BERT tagger: gold mention spans -> word-level BIO tags (B-<type>, I-<type>), a BERT
token classifier trained on them through the one Trainer (`TagTask`), and tagging that maps the predicted
words back to character spans. `kg build --tagger RUN` adds the tagger's mentions to the seq2seq extractor's
(a mention the generator missed still gets linked and stored)."""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..data.tasks_text import TaggedSentence
from ..train.config import TrainConfig
from ..train.trainer import Trainer
from .text_train import TextTripleArgs, load_corpus
from .text_triples import Mention, Sentence, entity_f1

DEFAULT_PRESET = "bert-tiny"


@dataclass(frozen=True)
class TaggedMention(Mention):
    """A mention found by the tagger (its statements are attributed to the tagger model)."""

_WORD = re.compile(r"\w+|[^\w\s]")


def words(text: str) -> list[tuple[str, int, int]]:
    """(word, start, end) character offsets: runs of word characters, every other non-space char alone."""
    return [(m.group(), m.start(), m.end()) for m in _WORD.finditer(text)]


def gold_mentions(s: Sentence) -> list[Mention]:
    """A sentence's mentions with spans, standalone and in triples, each once."""
    seen, out = set(), []
    for m in list(s.mentions) + [x for t in s.triples for x in (t.head, t.tail)]:
        if m.span is not None and m.span not in seen:
            seen.add(m.span)
            out.append(m)
    return out


def bio_sentence(s: Sentence) -> TaggedSentence:
    """Word-level BIO tags from the character spans of the sentence's mentions (a word belongs to a mention
    when it starts inside its span)."""
    ws = words(s.text)
    tags = ["O"] * len(ws)
    for m in sorted(gold_mentions(s), key=lambda m: m.span):
        inside = [i for i, (_, a, _) in enumerate(ws) if m.span[0] <= a < m.span[1]]
        for k, i in enumerate(inside):
            tags[i] = f"{'B' if k == 0 else 'I'}-{m.type}"
    return TaggedSentence([w for w, _, _ in ws], tags, s.id)


def mentions_from_tags(text: str, tags: Sequence[str]) -> list[Mention]:
    """BIO tags over `words(text)` -> mentions with character spans (seqeval's chunking rules)."""
    from ..eval import get_entities

    ws = words(text)
    if len(tags) != len(ws):
        raise ValueError(f"{len(tags)} tags for {len(ws)} words of {text!r}")
    out = []
    for typ, a, b in get_entities(list(tags)):
        start, end = ws[a][1], ws[b][2]
        out.append(TaggedMention(text[start:end], typ, (start, end)))
    return out


def tag_mentions(model, tok, texts: Sequence[str]) -> list[list[Mention]]:
    """The tagger's mentions of each text, with character spans."""
    from ..tasks.tag import predict_tags

    tags = predict_tags(model, tok, [[w for w, _, _ in words(t)] for t in texts])
    return [mentions_from_tags(t, g) for t, g in zip(texts, tags)]


@dataclass
class TaggerArgs:
    out: str
    data: str | None = None           # SpERT/CONLL04 JSON or JSONL sentences (default: shapes captions)
    val_data: str | None = None
    preset: str = DEFAULT_PRESET
    model: str | None = None          # a pretrained BERT checkpoint (and its tokenizer) to fine-tune
    vocab_size: int = 600
    max_len: int = 64
    n_train: int = 600                # built-in shapes scenes (about 4 captions each)
    n_val: int = 50
    seed: int = 0
    overrides: dict = field(default_factory=dict)


def train_mention_tagger(args: TaggerArgs, cfg: TrainConfig, resume: bool = False) -> dict:
    """Train a BERT BIO tagger on the sentences' mention spans; returns the trainer summary."""
    import torch

    from ..recipes.bert import build_model, build_tokenizer
    from ..tasks.tag import TagTask, encode_tagging

    torch.manual_seed(cfg.seed)
    corpus = TextTripleArgs(out=args.out, data=args.data, val_data=args.val_data, n_train=args.n_train,
                            n_val=args.n_val, seed=args.seed)
    train, val = load_corpus(corpus)
    train_t, val_t = [bio_sentence(s) for s in train], [bio_sentence(s) for s in val]
    types = sorted({t[2:] for s in train_t for t in s.tags if t != "O"})
    if not types:
        raise ValueError(f"{args.data or 'the training sentences'}: no mention carries a character span to tag")
    labels = ["O"] + [f"{p}-{t}" for t in types for p in "BI"]
    tok = build_tokenizer(args.out, args.model, None, [s.text for s in train], args.vocab_size, lowercase=False,
                          resume=resume)
    model = build_model(args.preset, args.model, tok, "tag", args.max_len, labels=labels, overrides=args.overrides)
    feats = [encode_tagging(tok, d, labels, args.max_len) for d in (train_t, val_t)]
    meta = {"task": "mention-tagger", "max_len": args.max_len}
    summary = Trainer(model, TagTask(tok.pad_id or 0, labels), feats[0], feats[1], cfg, args.out, tokenizer=tok,
                      meta=meta).fit(resume=resume)
    summary.update(train_sentences=len(train), val_sentences=len(val), labels=labels)
    return summary


def evaluate_tagger(model, tok, sentences: Sequence[Sentence]) -> dict:
    """Entity F1 (mention text and type) of the tagger's mentions against the gold ones, and span accuracy."""
    pred = tag_mentions(model, tok, [s.text for s in sentences])
    gold = [Sentence(s.text, s.id, gold_mentions(s)) for s in sentences]
    f = entity_f1(gold, pred)
    spans_gold = sum(len(g.mentions) for g in gold)
    spans_hit = sum(len({(m.span, m.type) for m in g.mentions} & {(m.span, m.type) for m in p})
                    for g, p in zip(gold, pred))
    return {"entity_f1": f["f1"], "span_recall": spans_hit / spans_gold if spans_gold else 0.0,
            "sentences": len(sentences)}
