"""`lingvis pretrain fusion`, `lingvis finetune vqa`, `lingvis vqa --model DIR --image IMG --question Q`."""
from __future__ import annotations

import argparse

from .common import add_device_arg, add_train_args, device_for, print_json, train_config


def register(sub, groups) -> None:
    p = groups["pretrain"].add_parser(
        "fusion", help="pretrain a single-stream image+text model (masked LM + image-text matching)",
        description="Pretrain a fusion model on image-caption pairs: masked LM conditioned on the image, "
        "image-text matching with hard negatives from the batch and image-text contrastive alignment of "
        "unimodal passes (optionally masked image-feature regression). --data: a generate_shapes folder, COCO captions JSON, JSONL, CSV/TSV or .tar shards; "
        "without it, synthetic shapes are generated under OUT/data. Default preset: fusion-small.")
    add_train_args(p, max_steps=1500, batch_size=64, lr=1e-3, eval_every=250, warmup=100)
    _data_args(p)
    p.add_argument("--mlm-prob", type=float, default=0.15, help="fraction of caption tokens masked")
    p.add_argument("--whole-word", action="store_true", help="mask every piece of a chosen word together")
    p.add_argument("--itm-prob", type=float, default=0.5, help="fraction of pairs given a hard negative caption")
    p.add_argument("--mif-prob", type=float, default=0.0,
                   help="> 0: masked image-feature regression on this fraction of image tokens (grid cells or "
                   "regions; a region keeps its box geometry)")
    p.add_argument("--hard-fraction", type=float, default=0.5,
                   help="share of ITM negatives that are hard (the most similar caption in the batch)")
    p.add_argument("--no-itc", action="store_true",
                   help="leave out the image-text contrastive loss over unimodal passes")
    p.set_defaults(func=run_pretrain)

    f = groups["finetune"].add_parser(
        "vqa", help="fine-tune visual question answering (answer classifier)",
        description="Train a VQA answer classifier (VQAv2 soft targets, BCE) on a fusion model, fresh from "
        "--preset or from --model (a `pretrain fusion` run or a ViLT folder). --data: a generate_shapes "
        "folder, a VQAv2 questions .json (annotations_*.json beside it) or a JSONL "
        '{"image","question","answers"}. Prints the official VQA accuracy per question type.')
    add_train_args(f, max_steps=3000, batch_size=64, lr=1e-3, eval_every=250, warmup=100)
    _data_args(f)
    f.add_argument("--min-answer-count", type=int, default=1, help="answers rarer than this are left out")
    f.add_argument("--max-answers", type=int, help="keep only the most frequent answers")
    f.add_argument("--generative", action="store_true",
                   help="generate answers with the captioner (image tower + decoder; preset captioner-*) "
                   "instead of classifying over an answer vocabulary")
    f.add_argument("--skip-bad", action="store_true",
                   help="drop questions with missing images or empty text (with a warning) instead of failing")
    f.add_argument("--readout", choices=["pooled", "regions"],
                   help="VQA head input: pooled (ViLT: the pooled question vector) or regions (plus question-"
                   "conditioned region readings that keep subject and object apart); default: the preset's")
    f.add_argument("--readout-queries", type=int,
                   help="region readers of --readout regions (default: the preset's, 4)")
    f.add_argument("--readout-roles", choices=["none", "order"],
                   help="region readers' word weights: none (content only) or order (plus a learned bias by the "
                   "word's index from the question's start and end, so readers take the subject and the object "
                   "apart); default: the preset's")
    f.add_argument("--readout-geometry", action=argparse.BooleanOptionalAction, default=None,
                   help="region readout also reads the boxes of the regions its readers pick and their offsets "
                   "(position questions; needs --readout regions); default: the preset's or the model's")
    f.set_defaults(func=run_finetune)

    q = sub.add_parser("vqa", help="answer a question about an image",
                       description="Answer questions about one image with a VQA model (lingvis or ViLT folder).")
    q.add_argument("--model", required=True, help="checkpoint or run folder")
    q.add_argument("--image", required=True, help="image file")
    q.add_argument("--question", action="append", required=True, help="question (repeatable)")
    q.add_argument("--top-k", type=int, default=1, help="print the k most likely answers")
    add_device_arg(q)
    q.set_defaults(func=run_vqa)


def _data_args(p) -> None:
    p.add_argument("--val-data", help="validation data (default: the val split of a folder)")
    p.add_argument("--image-root", help="folder that relative image paths are resolved against")
    p.add_argument("--tokenizer", help="tokenizer folder (default: the model's, else train WordPiece)")
    p.add_argument("--vocab-size", type=int, default=1000, help="WordPiece vocabulary size when training one")
    p.add_argument("--shapes-train", type=int, default=4000, help="built-in data: training scenes")
    p.add_argument("--shapes-eval", type=int, default=500, help="built-in data: scenes per eval split")
    p.add_argument("--dropout", type=float, help="model dropout (default: the preset's or checkpoint's)")


def _common(args) -> dict:
    return dict(out=args.out, data=args.data, val_data=args.val_data, image_root=args.image_root,
                preset=args.preset, model=args.model, tokenizer=args.tokenizer, vocab_size=args.vocab_size,
                shapes_train=args.shapes_train, shapes_eval=args.shapes_eval,
                overrides={"dropout": args.dropout} if args.dropout is not None else {})


def run_pretrain(args) -> int:
    from ..recipes.fusion import FusionPretrainArgs, pretrain_fusion

    pargs = FusionPretrainArgs(**_common(args), mlm_prob=args.mlm_prob, itm_prob=args.itm_prob,
                               whole_word=args.whole_word, mif_prob=args.mif_prob, hard_fraction=args.hard_fraction, itc=not args.no_itc)
    print_json(pretrain_fusion(pargs, train_config(args), resume=args.resume))
    return 0


def run_finetune(args) -> int:
    from ..recipes.vqa import VQAFinetuneArgs, finetune_vqa

    common = _common(args)
    for flag, field in (("readout", "vqa_readout"), ("readout_queries", "vqa_queries"),
                        ("readout_roles", "vqa_roles"), ("readout_geometry", "vqa_geometry")):
        if getattr(args, flag) is not None:
            common["overrides"][field] = getattr(args, flag)
    fargs = VQAFinetuneArgs(**common, min_answer_count=args.min_answer_count,
                            max_answers=args.max_answers, skip_bad=args.skip_bad, generative=args.generative)
    summary = finetune_vqa(fargs, train_config(args), resume=args.resume)
    print_json(summary)
    for split, res in summary.get("test", {}).items():
        types = ", ".join(f"{k} {v:.1f}" for k, v in sorted(res["per_question_type"].items()))
        print(f"[vqa] {split}: VQA accuracy {res['overall']:.2f}% over {res['questions']} questions ({types})")
    return 0


def run_vqa(args) -> int:
    from .. import api
    from ..recipes.vqa_generative import answer_questions_generative
    from ..tasks.vqa import answer_questions

    model, tok = api.load(args.model, device=device_for(args.device)), api.load_tokenizer(args.model)
    if getattr(model, "family", None) == "captioner":
        if args.top_k > 1:
            raise ValueError("--top-k > 1 needs an answer-classifier model; this one generates answers")
        results = answer_questions_generative(model, tok, args.image, args.question)
    else:
        results = answer_questions(model, tok, args.image, args.question, args.top_k)
    for question, answers in zip(args.question, results):
        shown = ", ".join(f"{a} ({p:.2f})" for a, p in answers) if args.top_k > 1 else answers[0][0]
        print(f"Q: {question}\nA: {shown}")
    return 0
