"""`lingvis pretrain bert`, `lingvis finetune classify|tag|qa`, `lingvis predict classify|tag|qa`,
`lingvis embed`, `lingvis search-text` (`lingvis search` is the CLIP image search's alias)."""
from __future__ import annotations

import argparse

from .common import add_device_arg, add_train_args, device_for, print_json, train_config


def _subgroup(sub, name: str, help_: str):
    """The sub-subparsers of a top-level command that several families extend (created once)."""
    if name not in sub.choices:
        sub.add_parser(name, help=help_, description=help_).add_subparsers(dest="target", metavar="TASK")
    for action in sub.choices[name]._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    raise ValueError(f"`lingvis {name}` exists but takes no subcommands")


def register(sub, groups) -> None:
    p = groups["pretrain"].add_parser("bert", help="pretrain BERT (masked LM + next-sentence prediction)",
                                      description="Pretrain a BERT encoder with MLM (+ NSP). Without --data it "
                                      "uses 33 embedded Shakespeare plays (validation: the 3 test plays of the "
                                      "built-in genre task); without --preset, bert-mini.")
    add_train_args(p, max_steps=2000, batch_size=32, lr=5e-4, eval_every=250, warmup=100)
    p.add_argument("--text-field", default="text", help="JSONL field holding each document")
    p.add_argument("--tokenizer", help="tokenizer folder/file (default: train WordPiece on --data)")
    p.add_argument("--vocab-size", type=int, default=8000, help="WordPiece vocabulary size")
    p.add_argument("--cased", action="store_true", help="keep case when training WordPiece")
    p.add_argument("--max-len", type=int, default=128, help="tokens per pretraining instance")
    p.add_argument("--no-nsp", action="store_true", help="masked LM only (no next-sentence prediction)")
    p.add_argument("--whole-word", action="store_true", help="mask whole words (all their ## pieces)")
    p.add_argument("--mlm-prob", type=float, default=0.15, help="fraction of tokens chosen for masked-LM prediction")
    p.add_argument("--dupe-factor", type=int, default=2, help="passes over the corpus with different cuts")
    p.add_argument("--dropout", type=float, help="model dropout (default: the preset's)")
    p.set_defaults(func=run_pretrain)

    for task, help_ in (("classify", "sequence classification from CSV/TSV/JSONL (text, text_pair, label)"),
                        ("tag", "BIO token classification from a CoNLL column file"),
                        ("qa", "extractive QA from SQuAD v1.1/v2.0 JSON")):
        f = groups["finetune"].add_parser(task, help=help_, description=f"Fine-tune BERT: {help_}. Without "
                                          "--data it uses the built-in set; --model starts from a checkpoint.")
        add_train_args(f, max_steps=600, batch_size=16, lr=1e-4 if task != "qa" else 2e-4, eval_every=100,
                       warmup=50)
        _finetune_args(f, task)
        f.set_defaults(func=run_finetune, task=task)

    d = groups["data"].add_parser("text-tasks", help="write the built-in BERT fine-tuning sets as files",
                                  description="Writes genre_{train,val,test}.csv (Shakespeare passages, split by "
                                  "play), qa_{split}.json (SQuAD) and tag_{split}.conll for split in train, val, "
                                  "test, test_unseen (names never seen in training).")
    d.add_argument("--out", required=True, help="folder to write")
    d.add_argument("--squad-version", choices=["v1.1", "v2.0"], default="v1.1",
                   help="QA files: v2.0 adds unanswerable questions")
    d.set_defaults(func=run_write_sets)

    pred = _subgroup(sub, "predict", "predict with a fine-tuned model (prints JSON)")
    _predict_parsers(pred)

    e = sub.add_parser("embed", help="sentence embeddings as JSON", description="Sentence embeddings with the "
                       "checkpoint's own pooling (sentence-transformers folders supported).")
    _embed_args(e)
    e.add_argument("texts", nargs="+", metavar="TEXT", help="texts to embed")
    e.set_defaults(func=run_embed)

    s = sub.add_parser("search-text", help="semantic search over the lines of a text file",
                       description="Rank the lines (or JSONL texts) of --corpus by cosine similarity to --query.")
    _embed_args(s)
    s.add_argument("--corpus", required=True, help="text file (one entry per non-empty line) or JSONL")
    s.add_argument("--text-field", default="text", help="JSONL field holding the text")
    s.add_argument("--query", action="append", required=True, help="query text (repeatable)")
    s.add_argument("--top-k", type=int, default=5, help="hits to show per query")
    s.add_argument("--json", action="store_true", help="print JSON instead of ranked lines")
    s.set_defaults(func=run_search)


def _finetune_args(f: argparse.ArgumentParser, task: str) -> None:
    f.add_argument("--val-data", help="validation file (default: 10%% of --data)")
    f.add_argument("--test-data", help="test file, scored with the best checkpoint at the end")
    f.add_argument("--tokenizer", help="tokenizer for a from-scratch model (default: train WordPiece)")
    f.add_argument("--vocab-size", type=int, default=4000, help="WordPiece vocabulary size for a from-scratch model")
    f.add_argument("--max-len", type=int, default=128 if task != "qa" else 256,
                   help="tokens per input; longer inputs are " + ("windowed" if task == "qa" else "truncated"))
    f.add_argument("--dropout", type=float, help="model dropout (default: the preset's or checkpoint's)")
    if task == "classify":
        f.add_argument("--classifier-pooling", choices=["cls", "mean"], default="cls",
                       help="classifier input: [CLS] (BERT; exports to HF) or the mean of the token states")
        f.add_argument("--text-field", default="text", help="column/field holding the text")
        f.add_argument("--pair-field", default="text_pair", help="column/field holding the second text of a pair")
        f.add_argument("--label-field", default="label", help="column/field holding the label")
    if task == "qa":
        f.add_argument("--stride", type=int, default=64, help="tokens shared by consecutive context windows")
        f.add_argument("--squad-version", choices=["v1.1", "v2.0"], default="v1.1",
                       help="built-in set: v2.0 adds unanswerable questions")
    f.add_argument("--cased", action="store_true", help="keep case when training WordPiece (default for tag)")


def _predict_parsers(pred) -> None:
    c = pred.add_parser("classify", help="label texts or text pairs")
    c.add_argument("--text", action="append", default=[], help="text to classify (repeatable)")
    c.add_argument("--pair", action="append", help="second text of a pair (repeat once per --text)")
    c.add_argument("--input", help="CSV/TSV/JSONL file (scored when it has labels)")
    t = pred.add_parser("tag", help="BIO-tag sentences")
    t.add_argument("--text", action="append", default=[], help="sentence (split on whitespace; repeatable)")
    t.add_argument("--input", help="CoNLL file (scored when it has tags)")
    q = pred.add_parser("qa", help="answer questions from a context")
    q.add_argument("--question", action="append", default=[], help="question about --context (repeatable)")
    q.add_argument("--context", help="context for every --question")
    q.add_argument("--input", help="SQuAD JSON file (scored with official EM/F1)")
    q.add_argument("--stride", type=int, help="tokens shared by consecutive context windows")
    q.add_argument("--null-threshold", type=float, default=0.0, help="v2 models: answer '' when the no-answer "
                   "score beats the best span by more than this")
    for p, task in ((c, "classify"), (t, "tag"), (q, "qa")):
        p.add_argument("--model", required=True, help="fine-tuned checkpoint or run folder")
        p.add_argument("--max-len", type=int, help="tokens per input (default: the model's maximum)")
        add_device_arg(p)
        p.set_defaults(func=run_predict, task=task)


def _embed_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="BERT checkpoint folder (e.g. a sentence-transformers model)")
    p.add_argument("--pooling", choices=["cls", "mean", "max", "mean_sqrt_len"], help="default: the checkpoint's")
    p.add_argument("--normalize", action=argparse.BooleanOptionalAction, default=None,
                   help="L2-normalise (default: as the checkpoint says)")
    p.add_argument("--max-len", type=int, help="truncate texts to this many tokens")
    add_device_arg(p)


def run_pretrain(args) -> int:
    from ..recipes.bert import BertPretrainArgs, pretrain_bert

    pargs = BertPretrainArgs(out=args.out, data=args.data, text_field=args.text_field, preset=args.preset,
                             model=args.model, tokenizer=args.tokenizer, vocab_size=args.vocab_size,
                             lowercase=not args.cased, max_len=args.max_len, nsp=not args.no_nsp,
                             whole_word=args.whole_word, mlm_prob=args.mlm_prob, dupe_factor=args.dupe_factor,
                             overrides={"dropout": args.dropout} if args.dropout is not None else {})
    print_json(pretrain_bert(pargs, train_config(args), resume=args.resume))
    return 0


def run_finetune(args) -> int:
    from ..recipes.bert_finetune import FinetuneArgs, finetune

    extra = {k: getattr(args, k) for k in ("text_field", "pair_field", "label_field", "stride", "squad_version")
             if hasattr(args, k)}
    overrides = {"dropout": args.dropout} if args.dropout is not None else {}
    if getattr(args, "classifier_pooling", "cls") != "cls":
        overrides["classifier_pooling"] = args.classifier_pooling
    fargs = FinetuneArgs(task=args.task, out=args.out, data=args.data, val_data=args.val_data,
                         test_data=args.test_data, model=args.model, preset=args.preset, tokenizer=args.tokenizer,
                         vocab_size=args.vocab_size, lowercase=False if args.cased else None, max_len=args.max_len,
                         overrides=overrides, **extra)
    print_json(finetune(fargs, train_config(args), resume=args.resume))
    return 0


def run_write_sets(args) -> int:
    import csv
    import json
    from pathlib import Path

    from ..data import builtin_text as builtin

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for split, examples in builtin.genre_passages().items():
        with open(out / f"genre_{split}.csv", "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(["text", "label"])
            writer.writerows([ex.text, ex.label] for ex in examples)
    sizes = {"train": (300, 600), "val": (40, 100), "test": (80, 200), "test_unseen": (80, 200)}
    for split, (n_qa, n_tag) in sizes.items():
        squad = builtin.templated_squad(n_qa, split, args.squad_version)
        (out / f"qa_{split}.json").write_text(json.dumps(squad, indent=1), encoding="utf-8")
        sentences = builtin.templated_tagging(n_tag, split)
        (out / f"tag_{split}.conll").write_text("".join(
            "".join(f"{w} {t}\n" for w, t in zip(s.tokens, s.tags)) + "\n" for s in sentences), encoding="utf-8")
    print_json(sorted(p.name for p in out.iterdir()))
    return 0


def run_predict(args) -> int:
    from .bert_predict import predict_command

    print_json(predict_command(args))
    return 0


def _embedder(args):
    from .. import api

    model = api.load(args.model, device=device_for(args.device))
    return model, api.load_tokenizer(args.model)


def run_embed(args) -> int:
    from ..embeddings import embed

    model, tok = _embedder(args)
    vecs = embed(model, tok, args.texts, pooling=args.pooling, normalize=args.normalize, max_length=args.max_len)
    print_json({"model": args.model, "dim": int(vecs.shape[1]),
                "embeddings": [[round(float(x), 6) for x in v] for v in vecs]})
    return 0


def run_search(args) -> int:
    from ..data.text import read_text_file, read_texts
    from ..embeddings import embed, search

    path = args.corpus
    if str(path).endswith((".jsonl", ".ndjson")):
        corpus = read_texts(path, args.text_field)
    else:
        corpus = [line.strip() for line in read_text_file(path).split("\n") if line.strip()]
    if not corpus:
        raise ValueError(f"{path}: no non-empty lines to search")
    model, tok = _embedder(args)
    docs = embed(model, tok, corpus, pooling=args.pooling, normalize=args.normalize, max_length=args.max_len)
    results = search(model, tok, corpus, args.query, args.top_k, corpus_embeddings=docs, pooling=args.pooling,
                     max_length=args.max_len)
    if args.json:
        print_json([{"query": q, "hits": hits} for q, hits in zip(args.query, results)])
        return 0
    for q, hits in zip(args.query, results):
        print(f"query: {q}")
        for h in hits:
            print(f"{h['rank']:>3}. {h['score']:.4f}  {h['text']}")
    return 0
