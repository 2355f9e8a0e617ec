"""`lingvis pretrain seq2seq`, `lingvis finetune translate`, `lingvis translate`, `lingvis evaluate translate`,
`lingvis finetune caption`, `lingvis caption`, `lingvis evaluate caption`."""
from __future__ import annotations

import argparse
import sys

from .common import add_device_arg, add_train_args, device_for, print_json, train_config


def register(sub, groups) -> None:
    register_translation(sub, groups)
    register_captioning(sub, groups)


def register_translation(sub, groups) -> None:
    for group, name, help_ in (("pretrain", "seq2seq", "train an encoder-decoder translation model from scratch"),
                               ("finetune", "translate", "train or fine-tune (--model) a translation model")):
        p = groups[group].add_parser(name, help=help_, description=help_ + ". Without --data: the built-in "
                                     "English<->Chinese shapes corpus (--direction en-zh, zh-en or both).")
        add_train_args(p, max_steps=3000, batch_size=64, lr=1e-3, eval_every=250, warmup=100)
        add_translate_data_args(p)
        p.set_defaults(func=run_train_translate)

    t = sub.add_parser("translate", help="translate text with a seq2seq model",
                       description="Translate each TEXT (or each line of stdin) with beam search, or sampling "
                       "with --temperature > 0.")
    t.add_argument("text", nargs="*", help="source sentences (default: read lines from stdin)")
    t.add_argument("--to", help="target language of a multi-target model (e.g. zh, en)")
    t.add_argument("--stream", action="store_true", help="print each translation as it is decoded "
                   "(greedy, or sampling with --temperature)")
    add_decode_args(t, beams=4, max_new=128)
    t.set_defaults(func=run_translate)

    e = groups["evaluate"].add_parser("translate", help="BLEU and chrF (sacrebleu) of a translation model",
                                      description="Score a translation model on --data, or on a held-out split "
                                      "of the built-in corpus it was trained on.")
    e.add_argument("--data", help="parallel file (TSV/JSONL) or source file (with --tgt-data)")
    e.add_argument("--tgt-data", help="target file of two aligned plain-text files")
    e.add_argument("--split", choices=["test", "test_unseen"], default="test", help="built-in held-out split")
    e.add_argument("--direction", choices=["en-zh", "zh-en"], default="en-zh", help="built-in corpus direction")
    e.add_argument("--to", help="target language (multi-target models; default: from --direction)")
    e.add_argument("--n", type=int, default=300, help="sentences to score")
    add_decode_args(e, beams=4, max_new=128)
    e.set_defaults(func=run_evaluate_translate)


def register_captioning(sub, groups) -> None:
    c = groups["finetune"].add_parser("caption", help="train or fine-tune (--model) an image captioner",
                                      description="Train a captioner (image tower + cross-attending decoder). "
                                      "Without --data: the built-in shapes scenes.")
    add_train_args(c, max_steps=3000, batch_size=32, lr=1e-3, eval_every=250, warmup=100)
    c.add_argument("--val-data", help="validation image-text dataset (default: split off --val-fraction)")
    c.add_argument("--image-root", help="folder that relative image paths of --data refer to")
    add_common_data_args(c, vocab=400)
    c.add_argument("--n-train", type=int, default=4000, help="built-in shapes scenes for training")
    c.set_defaults(func=run_train_caption)

    ec = groups["evaluate"].add_parser("caption", help="CIDEr-D and BLEU-4 of a captioner",
                                       description="Score a captioner on an image-text dataset (captions of "
                                       "one image are its references) or on built-in shapes scenes.")
    ec.add_argument("--data", help="image-text dataset (default: built-in shapes scenes)")
    ec.add_argument("--image-root", help="folder that relative image paths of --data refer to")
    ec.add_argument("--split", choices=["test", "test_unseen"], default="test", help="built-in held-out split")
    ec.add_argument("--n", type=int, default=300, help="images to score")
    add_decode_args(ec, beams=3, max_new=32)
    ec.set_defaults(func=run_evaluate_caption)

    k = sub.add_parser("caption", help="caption images", description="Caption each IMAGE with beam search, "
                       "or sampling with --temperature > 0. Images that fail to load are reported and skipped.")
    k.add_argument("images", nargs="+", help="image files")
    add_decode_args(k, beams=3, max_new=32)
    k.set_defaults(func=run_caption)


def add_common_data_args(p: argparse.ArgumentParser, vocab: int) -> None:
    p.add_argument("--tokenizer", help="tokenizer folder/file (default: train a BPE on the training text)")
    p.add_argument("--vocab-size", type=int, default=vocab, help="BPE vocabulary size")
    p.add_argument("--label-smoothing", type=float, default=0.1, help="label smoothing of the cross-entropy loss")
    p.add_argument("--val-fraction", type=float, default=0.05, help="share of --data held out for validation")
    p.add_argument("--dropout", type=float, help="model dropout (default: the preset's or checkpoint's)")


def add_translate_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tgt-data", help="target-side file when --data is the source side of two aligned files")
    p.add_argument("--val-data", help="validation pairs (default: split off --val-fraction of --data)")
    p.add_argument("--val-tgt-data", help="target side of --val-data for two aligned files")
    p.add_argument("--direction", choices=["en-zh", "zh-en", "both"], default="both",
                   help="built-in corpus direction; 'both' trains one model with target-language tags")
    p.add_argument("--target-lang", help="target language code of --data (chooses BLEU's tokenizer)")
    p.add_argument("--n-train", type=int, default=20000, help="built-in corpus training pairs")
    p.add_argument("--n-val", type=int, default=300, help="built-in corpus validation (and test) pairs")
    add_common_data_args(p, vocab=1000)


def add_decode_args(p: argparse.ArgumentParser, beams: int, max_new: int) -> None:
    p.add_argument("--model", required=True, help="checkpoint or run folder")
    p.add_argument("--num-beams", type=int, default=beams, help="beam width (1 = greedy)")
    p.add_argument("--length-penalty", type=float, default=1.0,
                   help="beam search: log-prob / length**penalty (> 0 favours longer outputs, < 0 shorter)")
    p.add_argument("--n-best", type=int, default=1, help="print this many hypotheses per input (beam search)")
    p.add_argument("--max-new-tokens", type=int, default=max_new, help="most tokens to generate per output")
    p.add_argument("--temperature", type=float, default=0.0, help="> 0: sample instead of beam search")
    p.add_argument("--top-k", type=int, help="sampling: only the k most likely tokens (default: all)")
    p.add_argument("--top-p", type=float, help="sampling: nucleus probability mass (default: off)")
    p.add_argument("--seed", type=int, help="sampling seed for reproducible output (default: random)")
    p.add_argument("--batch-size", type=int, default=32, help="inputs decoded together")
    add_device_arg(p)


def decode_options(args) -> dict:
    """Beam search keywords, or sampling keywords when --temperature > 0."""
    if args.temperature > 0:
        return dict(num_beams=1, temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, seed=args.seed)
    if args.n_best > args.num_beams:
        raise ValueError(f"--n-best {args.n_best} exceeds --num-beams {args.num_beams}")
    if args.num_beams == 1:
        return dict(num_beams=1)
    return dict(num_beams=args.num_beams, length_penalty=args.length_penalty, num_return_sequences=args.n_best)


def _overrides(args) -> dict:
    return {"dropout": args.dropout} if args.dropout is not None else {}


def run_train_translate(args) -> int:
    from ..recipes.translate import TranslateArgs, train_translation

    targs = TranslateArgs(out=args.out, data=args.data, tgt_data=args.tgt_data, val_data=args.val_data,
                          val_tgt_data=args.val_tgt_data, direction=args.direction, target_lang=args.target_lang,
                          preset=args.preset, model=args.model, tokenizer=args.tokenizer, vocab_size=args.vocab_size,
                          label_smoothing=args.label_smoothing, n_train=args.n_train, n_val=args.n_val,
                          val_fraction=args.val_fraction, overrides=_overrides(args))
    print_json(train_translation(targs, train_config(args), resume=args.resume))
    return 0


def _source_lines(args) -> tuple[list[str], int]:
    """TEXT arguments, or stdin lines; returns (lines, number of empty lines)."""
    lines = args.text or [line.rstrip("\n") for line in sys.stdin]
    if not lines:
        raise ValueError("nothing to translate: pass TEXT arguments or lines on stdin")
    return lines, sum(1 for line in lines if not line.strip())


def _print_hyps(hyps: list[str], n_best: int) -> None:
    for i in range(0, len(hyps), n_best):
        group = hyps[i:i + n_best]
        print(group[0] if n_best == 1 else "\n".join(f"{j + 1}\t{h}" for j, h in enumerate(group)), flush=True)


def run_translate(args) -> int:
    from ..recipes.translate import read_meta, translate

    model, tok = _load(args.model, "seq2seq", args.device)
    lines, empty = _source_lines(args)
    if args.stream:
        return _stream(model, tok, lines, args)
    opts = decode_options(args)
    n_best = opts.get("num_return_sequences", 1)
    todo = [line for line in lines if line.strip()]
    hyps = iter(translate(model, tok, todo, args.to, read_meta(args.model), max_new_tokens=args.max_new_tokens,
                          batch_size=args.batch_size, **opts) if todo else [])
    for line in lines:  # one output per input line; empty inputs give empty outputs
        if line.strip():
            _print_hyps([next(hyps) for _ in range(n_best)], n_best)
        else:
            print(flush=True)
    if empty:
        print(f"skipped {empty} empty source line(s)", file=sys.stderr)
    return 0


def _stream(model, tok, lines: list[str], args) -> int:
    from ..recipes.translate import read_meta, stream_translation

    sampling = dict(temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, seed=args.seed)
    meta = read_meta(args.model)
    for line in lines:
        if line.strip():
            for piece in stream_translation(model, tok, line, args.to, meta, args.max_new_tokens, **sampling):
                print(piece, end="", flush=True)
        print(flush=True)
    return 0


def run_train_caption(args) -> int:
    from ..recipes.caption import CaptionArgs, train_captioner

    cargs = CaptionArgs(out=args.out, data=args.data, val_data=args.val_data, image_root=args.image_root,
                        preset=args.preset, model=args.model, tokenizer=args.tokenizer, vocab_size=args.vocab_size,
                        label_smoothing=args.label_smoothing, n_train=args.n_train, val_fraction=args.val_fraction)
    if args.dropout is not None:
        raise ValueError("--dropout is not supported for captioners; set it in the preset's decoder config")
    print_json(train_captioner(cargs, train_config(args), resume=args.resume))
    return 0


def run_caption(args) -> int:
    from ..data.images import ImageError, load_image
    from ..recipes.caption import caption_images

    model, tok = _load(args.model, "captioner", args.device)
    opts = decode_options(args)
    n_best = opts.get("num_return_sequences", 1)
    images, names, failed = [], [], 0
    for path in args.images:
        try:
            images.append(load_image(path))
            names.append(path)
        except (ImageError, OSError) as e:
            failed += 1
            print(f"error: {e}", file=sys.stderr)
    hyps = caption_images(model, tok, images, max_new_tokens=args.max_new_tokens, batch_size=args.batch_size,
                          **opts) if images else []
    for k, name in enumerate(names):
        for j, h in enumerate(hyps[k * n_best:(k + 1) * n_best]):
            print(f"{name}\t{h}" if n_best == 1 else f"{name}\t{j + 1}\t{h}", flush=True)
    if failed:
        print(f"skipped {failed} of {len(args.images)} image(s) that failed to load", file=sys.stderr)
    return 1 if failed else 0


def _load(path: str, family: str, device: str):
    from .. import api

    model, tok = api.load(path, device=device_for(device)), api.load_tokenizer(path)
    if getattr(model, "family", None) != family:
        raise ValueError(f"{path} holds a {getattr(model, 'family', '?')} model, not {family}")
    return model, tok


def run_evaluate_translate(args) -> int:
    from ..data.parallel import read_parallel
    from ..recipes.translate import TranslateArgs, evaluate_translation, held_out_pairs, read_meta, tagged

    model, tok = _load(args.model, "seq2seq", args.device)
    meta = read_meta(args.model)
    if args.data:
        pairs, to = read_parallel(args.data, args.tgt_data).pairs, args.to
    else:
        corpus = meta.get("corpus")
        if corpus is None:
            raise ValueError(f"{args.model} was not trained on the built-in corpus: pass --data")
        pairs = tagged(held_out_pairs(TranslateArgs(out="", **corpus), args.split), args.direction)
        to = args.to or args.direction.split("-")[1]
    opts = decode_options(args)
    opts.pop("num_return_sequences", None)
    result = evaluate_translation(model, tok, pairs[:args.n], to, meta, max_new_tokens=args.max_new_tokens,
                                  batch_size=args.batch_size, **opts)
    print_json(result)
    return 0


def run_evaluate_caption(args) -> int:
    from ..recipes.caption import evaluate_captions, shapes_split, user_split

    model, tok = _load(args.model, "captioner", args.device)
    data = user_split(args.data, args.image_root) if args.data else shapes_split(args.split, args.n)
    data.loaders, data.captions = data.loaders[:args.n], data.captions[:args.n]
    opts = decode_options(args)
    opts.pop("num_return_sequences", None)
    print_json(evaluate_captions(model, tok, data, max_new_tokens=args.max_new_tokens, batch_size=args.batch_size,
                                 **opts))
    return 0
