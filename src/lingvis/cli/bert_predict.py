"""`lingvis predict classify|tag|qa`: predictions as JSON; files with gold labels are scored too."""
from __future__ import annotations

from .. import api
from .common import device_for
from ..data.tasks_text import QAExample, read_classification, read_conll, read_squad
from ..eval import accuracy, entity_scores, squad_evaluate
from ..tasks.classify import predict_classify
from ..tasks.qa import predict_qa
from ..tasks.tag import entities, predict_tags


def _load(args, head: str):
    model = api.load(args.model, device=device_for(args.device))
    if getattr(model, "family", None) != "bert" or model.config.head != head:
        what = getattr(getattr(model, "config", None), "head", type(model).__name__)
        raise ValueError(f"{args.model} is not a BERT {head} model (head: {what}); fine-tune one with "
                         f"`lingvis finetune {'classify' if head == 'classify' else head}`")
    return model, api.load_tokenizer(args.model)


def _classify(args) -> dict:
    model, tok = _load(args, "classify")
    if args.input:
        examples = read_classification(args.input, require_labels=False)
        texts, pairs = [e.text for e in examples], [e.text_pair for e in examples]
    else:
        if not args.text:
            raise ValueError("give --text (repeatable) or --input FILE")
        if args.pair and len(args.pair) != len(args.text):
            raise ValueError(f"{len(args.text)} --text but {len(args.pair)} --pair; give one --pair per --text")
        texts, pairs, examples = args.text, args.pair, None
    preds = predict_classify(model, tok, texts, pairs, args.max_len)
    out = {"predictions": [{"text": t, **p} for t, p in zip(texts, preds)]}
    if examples and all(e.label is not None for e in examples):
        out["accuracy"] = accuracy([e.label for e in examples], [p["label"] for p in preds])
    return out


def _tag(args) -> dict:
    model, tok = _load(args, "tag")
    gold = None
    if args.input:
        sentences = read_conll(args.input, require_tags=False)
        words = [s.tokens for s in sentences]
        if sentences[0].tags is not None:
            gold = [s.tags for s in sentences]
    else:
        if not args.text:
            raise ValueError("give --text (repeatable) or --input FILE")
        words = [t.split() for t in args.text]
    tags = predict_tags(model, tok, words, args.max_len)
    out = {"predictions": [{"tokens": w, "tags": t, "entities": entities(w, t)} for w, t in zip(words, tags)]}
    if gold is not None:
        s = entity_scores(gold, tags)
        out["scores"] = {"precision": s.precision, "recall": s.recall, "f1": s.f1}
    return out


def _qa(args) -> dict:
    model, tok = _load(args, "qa")
    version = None
    if args.input:
        examples, version = read_squad(args.input)
    else:
        if not args.question or not args.context:
            raise ValueError("give --question (repeatable) and --context, or --input SQuAD.json")
        examples = [QAExample(str(i), q, args.context, [], False, f"--question {i + 1}")
                    for i, q in enumerate(args.question)]
    preds = predict_qa(model, tok, examples, args.max_len, args.stride, args.null_threshold)
    out = {"predictions": [{"question": e.question, **p} for e, p in zip(examples, preds)]}
    if version is not None:
        refs = {e.id: [a for a, _ in e.answers] for e in examples}
        res = squad_evaluate(refs, {p["id"]: p["answer"] for p in preds}, version=version)
        out["scores"] = {"exact": res.exact, "f1": res.f1, "total": res.total}
    return out


def predict_command(args) -> dict:
    return {"classify": _classify, "tag": _tag, "qa": _qa}[args.task](args)
