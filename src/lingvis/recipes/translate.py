"""Translation: parallel data -> shared BPE tokenizer (both sides) -> encoder-decoder -> Trainer; plus
text-level `translate` and held-out `evaluate_translation` (sacrebleu BLEU/chrF).

Without --data the built-in English<->Chinese shapes corpus is used. `direction="both"` trains one model
for both directions: each source starts with a target-language tag (`>>zh<<`, `>>en<<`, as multilingual
Marian models do), and the tags are stored in the checkpoint's `lingvis.json` (`meta.target_tags`)."""
from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .. import api
from ..data.parallel import ParallelPair, build_parallel_corpus, read_parallel
from ..data.text import train_val_split
from ..generate import SamplingConfig, stream_ids
from ..models import registry
from ..progress import progress
from ..tasks.seq2seq import EncodedPairs, Seq2SeqTask, cut_at_eos, pad_right
from ..tokenizers import Tokenizer, train_bpe
from ..train.checkpoint import resumable
from ..train.config import TrainConfig
from ..train.trainer import Trainer

DEFAULT_PRESET = "transformer-tiny"
SPECIALS = {"bos": "<s>", "eos": "</s>", "pad": "<pad>", "unk": "<unk>"}
DIRECTIONS = ("en-zh", "zh-en", "both")


def tag(lang: str) -> str:
    return f">>{lang}<<"


@dataclass
class TranslateArgs:
    out: str
    data: str | None = None           # TSV / JSONL file, or the source file of an aligned pair
    tgt_data: str | None = None       # the target file of an aligned pair
    val_data: str | None = None
    val_tgt_data: str | None = None
    direction: str = "both"           # built-in corpus: en-zh, zh-en or both
    target_lang: str | None = None    # user data: target language code (picks BLEU's tokenizer)
    preset: str | None = None
    model: str | None = None          # fine-tune this checkpoint (its tokenizer too)
    tokenizer: str | None = None      # a tokenizer folder/file; default: train a shared BPE
    vocab_size: int = 1000
    label_smoothing: float = 0.1
    n_train: int = 20000              # built-in corpus sizes
    n_val: int = 300
    val_fraction: float = 0.05
    seed: int = 0
    overrides: dict = field(default_factory=dict)


@dataclass
class Corpus:
    train: list[ParallelPair]
    val: list[ParallelPair]
    meta: dict


def tagged(pairs: list[ParallelPair], direction: str) -> list[ParallelPair]:
    """en->zh pairs turned into the requested direction(s); 'both' prefixes target-language tags."""
    if direction == "en-zh":
        return pairs
    if direction == "zh-en":
        return [ParallelPair(p.tgt, p.src) for p in pairs]
    return ([ParallelPair(f"{tag('zh')} {p.src}", p.tgt) for p in pairs]
            + [ParallelPair(f"{tag('en')} {p.tgt}", p.src) for p in pairs])


@functools.lru_cache(maxsize=2)
def _builtin(n_train: int, n_held_out: int, seed: int) -> dict[str, list[ParallelPair]]:
    return build_parallel_corpus(n_train=n_train, n_val=n_held_out, n_test=n_held_out, seed=seed)


def held_out_pairs(args: TranslateArgs, split: str = "test") -> list[ParallelPair]:
    """English->Chinese pairs of the built-in corpus split ('test' or 'test_unseen') matching `args`:
    disjoint from the training pairs of a run with the same corpus sizes and seed."""
    return _builtin(args.n_train, args.n_val, args.seed)[split]


def builtin_corpus(args: TranslateArgs) -> Corpus:
    if args.direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {args.direction!r}")
    c = _builtin(args.n_train, args.n_val, args.seed)
    meta = {"task": "translate", "direction": args.direction,
            "corpus": {"n_train": args.n_train, "n_val": args.n_val, "seed": args.seed}}
    if args.direction == "both":
        meta["target_tags"] = {"zh": tag("zh"), "en": tag("en")}
    else:
        meta["target_lang"] = args.direction.split("-")[1]
    return Corpus(tagged(c["train"], args.direction), tagged(c["val"], args.direction), meta)


def user_corpus(args: TranslateArgs) -> Corpus:
    """Pairs of --data (and --val-data); pairs with an empty side are skipped and counted in meta."""
    read = read_parallel(args.data, args.tgt_data)
    pairs, skipped = read.pairs, read.skipped
    if args.val_data:
        val_read = read_parallel(args.val_data, args.val_tgt_data)
        val, skipped, train = val_read.pairs, skipped + val_read.skipped, pairs
    elif len(pairs) < 2:
        raise ValueError(f"{args.data}: need at least 2 pairs to split off validation, got {len(pairs)}")
    else:
        train, val = train_val_split(pairs, args.val_fraction, seed=args.seed)
    if not train or not val:
        raise ValueError(f"{args.data}: need training and validation pairs, got {len(train)} and {len(val)}")
    return Corpus(train, val, {"task": "translate", "target_lang": args.target_lang, "skipped_pairs": skipped})


def make_tokenizer(args: TranslateArgs, corpus: Corpus, resume: bool) -> Tokenizer:
    if resumable(args.out, resume):
        return api.load_tokenizer(args.out)
    if args.model:
        return api.load_tokenizer(args.model)
    if args.tokenizer:
        return Tokenizer.load(args.tokenizer)
    texts = [t for p in corpus.train for t in (p.src, p.tgt)]
    tags = list(corpus.meta.get("target_tags", {}).values())
    return train_bpe(texts, args.vocab_size, SPECIALS, chat_markers=tags)


def make_model(args: TranslateArgs, tok: Tokenizer) -> torch.nn.Module:
    if args.model:
        model = api.load_as(args.model, "seq2seq")
        if model.config.vocab_size < tok.vocab_size:
            raise ValueError(f"tokenizer has {tok.vocab_size} tokens but the model only {model.config.vocab_size}")
        return model.train()
    missing = [r for r in ("bos", "eos", "pad") if getattr(tok, f"{r}_id") is None]
    if missing:
        raise ValueError(f"the tokenizer needs {missing} special tokens for translation")
    fields = {"vocab_size": tok.vocab_size, "pad_id": tok.pad_id, "eos_id": tok.eos_id,
              "decoder_start_id": tok.bos_id, **args.overrides}
    fam, cfg = registry.preset_of(args.preset or DEFAULT_PRESET, "seq2seq", **fields)
    return registry.family(fam).model_cls(cfg)


def train_translation(args: TranslateArgs, cfg: TrainConfig, resume: bool = False) -> dict:
    """Train (or resume / fine-tune) a translation model; returns the trainer summary."""
    torch.manual_seed(cfg.seed)
    corpus = user_corpus(args) if args.data else builtin_corpus(args)
    tok = make_tokenizer(args, corpus, resume)
    model = make_model(args, tok)
    c = model.config
    train_set = EncodedPairs([p.src for p in corpus.train], [p.tgt for p in corpus.train], tok, c.max_len, c.max_len)
    val_set = EncodedPairs([p.src for p in corpus.val], [p.tgt for p in corpus.val], tok, c.max_len, c.max_len)
    target_lang = corpus.meta.get("target_lang")
    task = Seq2SeqTask(tok, c.decoder_start_id, c.eos_id, c.pad_id, args.label_smoothing, target_lang,
                       max_new_tokens=min(c.max_len - 1, 2 + max(len(p.tgt) for p in val_set.items)))
    summary = Trainer(model, task, train_set, val_set, cfg, args.out, tokenizer=tok, meta=corpus.meta).fit(resume)
    summary.update(train_pairs=len(train_set), val_pairs=len(val_set),
                   skipped_pairs=corpus.meta.get("skipped_pairs", 0),
                   parameters=sum(p.numel() for p in model.parameters()))
    return summary


def read_meta(path: str | Path) -> dict:
    """The `lingvis.json` extras of a checkpoint (empty for Hugging Face folders)."""
    folder = api.resolve_checkpoint(path)
    meta_file = folder / "lingvis.json"
    return json.loads(meta_file.read_text()) if meta_file.is_file() else {}


def prepare_sources(texts: list[str], to: str | None, meta: dict, tok: Tokenizer | None = None) -> list[str]:
    """Stripped sources, prefixed with the target-language tag of a multi-target model: from the checkpoint's
    meta, or (Hugging Face folders) a `>>to<<` token of the tokenizer, as multilingual Marian models use."""
    tags = dict(meta.get("target_tags") or {})
    for i, t in enumerate(texts):
        if not t.strip():
            raise ValueError(f"source {i} is empty")
    if not tags and to is not None and tok is not None and tok.token_to_id(tag(to)) is not None:
        tags = {to: tag(to)}
    if not tags and to is not None and meta.get("target_lang") not in (None, to):
        raise ValueError(f"this model translates into {meta['target_lang']!r}, not {to!r}")
    if tags:
        if to is None:
            raise ValueError(f"this model translates into {sorted(tags)}: choose one with --to / to=")
        if to not in tags:
            raise ValueError(f"unknown target language {to!r}; this model knows {sorted(tags)}")
        return [f"{tags[to]} {t.strip()}" for t in texts]
    return [t.strip() for t in texts]


@torch.inference_mode()
def translate(model, tok: Tokenizer, texts: list[str], to: str | None = None, meta: dict | None = None,
              num_beams: int = 4, max_new_tokens: int = 64, batch_size: int = 32, **decode) -> list[str]:
    """Translate `texts` (beam search by default; `num_beams=1` + sampling keywords otherwise)."""
    sources = prepare_sources(list(texts), to, meta or {}, tok)
    device = next(model.parameters()).device
    c = model.config
    out: list[str] = []
    for i in progress(range(0, len(sources), batch_size), desc="translate", unit="batch", delay=2, leave=False):
        ids = [s[:c.max_len] for s in tok.encode_batch(sources[i:i + batch_size], add_special_tokens=True)]
        src = pad_right(ids, c.pad_id).to(device)
        mask = pad_right([[1] * len(s) for s in ids], 0).to(device)
        gen = model.generate(src, mask, num_beams=num_beams, max_new_tokens=min(max_new_tokens, c.max_len - 1),
                             **decode)
        out += [tok.decode(row[1:]) for row in cut_at_eos(gen, c.eos_id)]
    return out


def evaluate_translation(model, tok: Tokenizer, pairs: list[ParallelPair], to: str | None = None,
                         meta: dict | None = None, num_beams: int = 4, **kw) -> dict:
    """Corpus BLEU and chrF of `model` on `pairs` (source -> reference), with a few examples."""
    from ..eval.translation import corpus_bleu, corpus_chrf

    hyps = translate(model, tok, [p.src for p in pairs], to, meta, num_beams=num_beams, **kw)
    refs = [p.tgt for p in pairs]
    bleu = corpus_bleu(hyps, refs, target_lang=to or (meta or {}).get("target_lang"))
    examples = [{"src": p.src, "ref": p.tgt, "hyp": h} for p, h in zip(pairs[:3], hyps[:3])]
    return {"bleu": bleu.score, "chrf": corpus_chrf(hyps, refs).score, "n": len(pairs),
            "signature": bleu.signature, "examples": examples}


def stream_translation(model, tok: Tokenizer, text: str, to: str | None = None, meta: dict | None = None,
                       max_new_tokens: int = 64, **sampling) -> Iterator[str]:
    """Yield the translation of one sentence piece by piece as it is decoded (greedy, or sampling with
    `temperature` / `top_k` / `top_p` / `seed`), through the shared `generate.stream_ids`."""
    source = prepare_sources([text], to, meta or {}, tok)[0]
    c, device = model.config, next(model.parameters()).device
    src = torch.tensor([tok.encode(source, add_special_tokens=True)[:c.max_len]], device=device)
    model.eval()
    with torch.inference_mode():
        view = model.decoder_view(model.encode(src))
    cfg = SamplingConfig(max_new_tokens=min(max_new_tokens, c.max_len - 1), eos_ids=[c.eos_id], **sampling)
    out: list[int] = []
    sent = ""
    for nxt in stream_ids(view, model.start_ids(1, device), cfg):
        if int(nxt[0]) == c.eos_id:
            break
        out.append(int(nxt[0]))
        piece = tok.decode(out)
        if not piece.endswith("\ufffd") and len(piece) > len(sent):  # wait for whole UTF-8 characters
            yield piece[len(sent):]
            sent = piece
    rest = tok.decode(out)[len(sent):]
    if rest:
        yield rest
