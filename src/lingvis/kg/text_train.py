"""Text relation extraction as generation with the encoder-decoder family: sentences -> linearised triples
(`text_triples.linearize`) trained through the one Trainer (`Seq2SeqTask` with strict triple micro-F1 as
the validation metric), and `extract_triples` that decodes, parses and scores each triple (confidence =
exp of the mean token log-probability of its segment under the model) with character spans."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from ..models import registry
from ..tasks.seq2seq import EncodedPairs, Seq2SeqTask, cut_at_eos, pad_right
from ..tokenizers import Tokenizer, train_bpe
from ..train.checkpoint import resumable
from ..train.config import TrainConfig
from ..train.task import Task
from ..train.trainer import Trainer
from .text_triples import (
    ENTITY,
    MARKERS,
    TRIPLET,
    Mention,
    Sentence,
    TextTriple,
    entity_f1,
    linearize,
    parse,
    read_sentences,
    shapes_sentence,
    strict_triple_f1,
)

DEFAULT_PRESET = "transformer-tiny"
SPECIALS = {"bos": "<s>", "eos": "</s>", "pad": "<pad>", "unk": "<unk>"}


def shapes_caption_sentences(split: str, n_scenes: int, seed: int = 0) -> list[Sentence]:
    """Every caption of `n_scenes` built-in shapes scenes of a split (the captions `lingvis data shapes`
    writes for the same split, size and seed), with gold mentions and triples."""
    from ..data.shapes import ShapesDataset

    data = ShapesDataset(split, n_scenes, seed)
    return [shapes_sentence(c, f"{split}:{k}:{j}") for k, caps in enumerate(data.captions) for j, c in enumerate(caps)]


class TripleTask(Seq2SeqTask):
    """Seq2seq cross-entropy; evaluation decodes greedily and scores strict triple micro-F1 and entity F1."""

    name = "text-triples"
    metric_for_best = "triple_f1"

    @torch.no_grad()
    def evaluate(self, model: nn.Module, batches) -> dict[str, float]:
        batches = list(batches)
        out = Task.evaluate(self, model, batches)
        gold, pred, pred_m = [], [], []
        for b in batches:
            ids = model.generate(b["src_ids"], b["src_mask"], max_new_tokens=self.max_new_tokens)
            for row, ref in zip(cut_at_eos(ids, self.eos_id), b["refs"]):
                t, m = parse(decode_markup(self.tokenizer, row[1:]))
                g, gm = parse(ref)
                gold.append(Sentence("", triples=g, mentions=gm + [x for tt in g for x in (tt.head, tt.tail)]))
                pred.append(t)
                pred_m.append(m + [x for tt in t for x in (tt.head, tt.tail)])
        out["triple_f1"] = strict_triple_f1(gold, pred)["f1"]
        out["entity_f1"] = entity_f1(gold, pred_m)["f1"]
        return out


def decode_markup(tok: Tokenizer, ids: Sequence[int]) -> str:
    """Token ids -> text with the markers kept and the role tokens (bos/eos/pad) dropped."""
    drop = {i for i in (tok.bos_id, tok.eos_id, tok.pad_id) if i is not None}
    return tok.decode([i for i in ids if i not in drop], skip_special_tokens=False)


@dataclass
class TextTripleArgs:
    out: str
    data: str | None = None           # SpERT/CONLL04 JSON or JSONL sentences (default: shapes captions)
    val_data: str | None = None
    preset: str = DEFAULT_PRESET
    model: str | None = None          # fine-tune this checkpoint (and its tokenizer)
    vocab_size: int = 800
    label_smoothing: float = 0.1
    n_train: int = 3000               # built-in shapes scenes (about 4 captions each)
    n_val: int = 100
    val_fraction: float = 0.1
    seed: int = 0
    overrides: dict = field(default_factory=dict)


def load_corpus(args: TextTripleArgs) -> tuple[list[Sentence], list[Sentence]]:
    """(training, validation) sentences: the built-in shapes captions, or --data (and --val-data, else a split)."""
    if not args.data:
        return shapes_caption_sentences("train", args.n_train, args.seed), \
            shapes_caption_sentences("val", args.n_val, args.seed)
    train = read_sentences(args.data)
    if args.val_data:
        return train, read_sentences(args.val_data)
    if len(train) < 2:
        raise ValueError(f"{args.data}: need at least 2 sentences to split off validation, got {len(train)}")
    n_val = max(1, int(len(train) * args.val_fraction))
    return train[n_val:], train[:n_val]


def train_text_triples(args: TextTripleArgs, cfg: TrainConfig, resume: bool = False) -> dict:
    """Train (fine-tune, resume) a sentence -> linearised-triples seq2seq model; returns the trainer summary."""
    from .. import api

    torch.manual_seed(cfg.seed)
    train, val = load_corpus(args)
    sources = [s.text for s in train]
    targets = [linearize(s) for s in train]
    if args.model or resumable(args.out, resume):
        src = args.model or args.out
        tok, model = api.load_tokenizer(src), api.load(src).train()
        if getattr(model, "family", None) != "seq2seq":
            raise ValueError(f"{src} holds a {getattr(model, 'family', '?')} model, not seq2seq")
    else:
        tok = train_bpe(sources + targets, args.vocab_size, SPECIALS, chat_markers=list(MARKERS))
        fields = {"vocab_size": tok.vocab_size, "pad_id": tok.pad_id, "eos_id": tok.eos_id,
                  "decoder_start_id": tok.bos_id, **args.overrides}
        fam, mcfg = registry.preset_config(args.preset, **fields)
        if fam != "seq2seq":
            raise ValueError(f"preset {args.preset!r} is a {fam} model, not seq2seq")
        model = registry.family(fam).model_cls(mcfg)
    for m in MARKERS:
        if tok.token_to_id(m) is None:
            raise ValueError(f"the tokenizer has no {m} token: it cannot write linearised triples")
    c = model.config
    train_set = EncodedPairs(sources, targets, tok, c.max_len, c.max_len)
    val_set = EncodedPairs([s.text for s in val], [linearize(s) for s in val], tok, c.max_len, c.max_len)
    longest = max(len(p.tgt) for p in val_set.items)
    task = TripleTask(tok, c.decoder_start_id, c.eos_id, c.pad_id, args.label_smoothing,
                      max_new_tokens=min(c.max_len - 1, longest + 8))
    meta = {"task": "text-triples", "format": "rebel-typed", "markers": list(MARKERS)}
    summary = Trainer(model, task, train_set, val_set, cfg, args.out, tokenizer=tok, meta=meta).fit(resume)
    summary.update(train_sentences=len(train_set), val_sentences=len(val_set))
    return summary


@torch.no_grad()
def extract_triples(model, tok: Tokenizer, texts: Sequence[str], batch_size: int = 64, max_new_tokens: int = 96,
                    num_beams: int = 1) -> list[tuple[list[TextTriple], list[Mention]]]:
    """(triples, standalone mentions) of each text; every triple and mention carries its character span in the
    text, and each triple a confidence."""
    model.eval()
    c = model.config
    device = next(model.parameters()).device
    starts = {tok.token_to_id(TRIPLET), tok.token_to_id(ENTITY)}
    out = []
    for i in range(0, len(texts), batch_size):
        chunk = list(texts[i:i + batch_size])
        ids = [s[:c.max_len] for s in tok.encode_batch(chunk, add_special_tokens=True)]
        src = pad_right(ids, c.pad_id).to(device)
        mask = pad_right([[1] * len(s) for s in ids], 0).to(device)
        gen = model.generate(src, mask, num_beams=num_beams, max_new_tokens=min(max_new_tokens, c.max_len - 1))
        rows = [r[1:] for r in cut_at_eos(gen, c.eos_id)]
        logp = _token_logprobs(model, src, mask, rows, c)
        for text, row, lp in zip(chunk, rows, logp):
            confs, cur = [], None
            for t, p in zip(row, lp):
                if t in starts:
                    if cur:
                        confs.append(cur)
                    cur = []
                if cur is not None:
                    cur.append(p)
            if cur:
                confs.append(cur + [lp[-1]])  # the last segment also answers for the eos
            conf = [float(torch.tensor(seg).mean().exp()) for seg in confs]
            out.append(parse(decode_markup(tok, row), text, conf))
    return out


def _token_logprobs(model, src, mask, rows: list[list[int]], c) -> list[list[float]]:
    """Log-probability of each generated token (and the closing eos) given the source, by teacher forcing."""
    tgt = [[c.decoder_start_id, *r] for r in rows]
    labels = [[*r, c.eos_id] for r in rows]
    tgt_in = pad_right(tgt, c.pad_id).to(src.device)
    logits = model(src, tgt_in, mask).float().log_softmax(-1)  # (B, T, V)
    out = []
    for b, lab in enumerate(labels):
        idx = torch.tensor(lab, device=src.device)
        out.append(logits[b, torch.arange(len(lab), device=src.device), idx].tolist())
    return out


def evaluate_text_triples(model, tok: Tokenizer, sentences: Sequence[Sentence], **kw) -> dict:
    """Strict triple micro-F1 and entity F1 on gold sentences, with a few examples."""
    preds = extract_triples(model, tok, [s.text for s in sentences], **kw)
    triples = [p[0] for p in preds]
    mentions = [p[1] + [m for t in p[0] for m in (t.head, t.tail)] for p in preds]
    gold_mentions = [Sentence(s.text, s.id, s.mentions, s.triples) for s in sentences]
    tf = strict_triple_f1(sentences, triples)
    ef = entity_f1(gold_mentions, mentions)
    examples = [{"text": s.text, "gold": linearize(s), "pred": [t.key() for t in p[0]]}
                for s, p in zip(sentences[:3], preds[:3])]
    return {"triple_f1": tf["f1"], "triple_precision": tf["precision"], "triple_recall": tf["recall"],
            "gold_triples": tf["gold"], "entity_f1": ef["f1"], "sentences": len(sentences), "examples": examples}
