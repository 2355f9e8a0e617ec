"""`lingvis pretrain clip`, `finetune image-classify`, `data shapes`, `zero-shot`, `evaluate retrieval`,
`search-images`."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from .common import add_device_arg, add_train_args, device_for, print_json, train_config


def register(sub, groups) -> None:
    _register_pretrain_clip(groups["pretrain"])
    _register_finetune_classify(groups["finetune"])
    _register_data_shapes(groups["data"])
    _register_zero_shot(sub)
    _register_retrieval(groups["evaluate"])
    _register_search(sub)


def _register_pretrain_clip(group) -> None:
    p = group.add_parser("clip", help="contrastive image-text pretraining (CLIP / LiT)",
                         description="Train a CLIP on image-text pairs. --data: COCO captions JSON, "
                         "JSONL {image,text}, CSV/TSV (filepath,title), webdataset .tar shards or a class "
                         "folder; without it the synthetic shapes set is generated under OUT/shapes.")
    add_train_args(p, max_steps=2000, batch_size=128, lr=1e-3, eval_every=100, warmup=50)
    p.add_argument("--val-data", help="held-out pairs (default: a split of --data by image)")
    p.add_argument("--image-root", help="folder that relative image paths in --data are under")
    p.add_argument("--tokenizer", default="word", help="word (trained on the captions) | tokenizer folder/file")
    p.add_argument("--text-tower", help="pretrained text encoder folder (BERT/MiniLM, lingvis or HF): LiT mode")
    p.add_argument("--unlock-text", action="store_true", help="fine-tune the --text-tower instead of locking it")
    p.add_argument("--augment", action="store_true", help="random resized crop + horizontal flip")
    p.add_argument("--val-fraction", type=float, default=0.05, help="share of --data images held out for validation")
    p.add_argument("--shapes-train", type=int, default=5000, help="built-in data: training images")
    p.set_defaults(func=run_pretrain)


def _register_finetune_classify(group) -> None:
    f = group.add_parser("image-classify", help="fine-tune a ViT/CNN image classifier on a class folder",
                         description="--data: a folder with one subfolder of images per class. Start "
                         "from --model (ViT, CNN, CLIP or classifier checkpoint) or a --preset.")
    add_train_args(f, max_steps=1000, batch_size=64, lr=1e-3, eval_every=100, warmup=50)
    f.add_argument("--val-data", help="class folder for validation (default: a split of --data)")
    f.add_argument("--val-fraction", type=float, default=0.1, help="share of --data images held out for validation")
    f.add_argument("--no-augment", action="store_true", help="no random crop/flip")
    f.set_defaults(func=run_finetune)


def _register_data_shapes(group) -> None:
    d = group.add_parser("shapes", help="generate the synthetic shapes scenes (captions, VQA, triples, LLaVA "
                         "instruction conversations)")
    d.add_argument("--out", required=True, help="folder to write the images and JSON files into")
    d.add_argument("--n-train", type=int, default=2000, help="training scenes")
    d.add_argument("--n-val", type=int, default=200, help="validation scenes")
    d.add_argument("--n-test", type=int, default=200, help="test scenes (only pairs seen in training)")
    d.add_argument("--n-test-unseen", type=int,
                   help="test scenes with held-out (colour, shape) pairs (default: --n-test)")
    d.add_argument("--image-size", type=int, default=64, help="image side in pixels")
    d.add_argument("--seed", type=int, default=0, help="random seed of the scene generator")
    d.set_defaults(func=run_shapes)


def _register_zero_shot(sub) -> None:
    z = sub.add_parser("zero-shot", aliases=["zeroshot"], help="zero-shot image classification with a CLIP",
                       description="Prints one JSON object per image: {image, label, scores}. With --summary, "
                       "and images in subfolders named after the labels, also the accuracy.")
    z.add_argument("--model", required=True, help="CLIP checkpoint or run folder")
    z.add_argument("--labels", nargs="+", required=True, help="class names, e.g. 'red circle' 'blue star'")
    z.add_argument("--images", action="append", default=[], help="image file or folder (repeatable)")
    z.add_argument("paths", nargs="*", help="more image files or folders")
    z.add_argument("--template", action="append", help="prompt template with {} (repeatable; default '{}')")
    z.add_argument("--summary", action="store_true", help="print accuracy (class = image's parent folder name)")
    add_device_arg(z)
    z.set_defaults(func=run_zero_shot)


def _register_retrieval(group) -> None:
    ev = group.add_parser("retrieval", help="image->text and text->image recall@1/5/10 of a CLIP")
    ev.add_argument("--model", required=True, help="CLIP checkpoint or run folder")
    ev.add_argument("--data", required=True, help="COCO captions JSON, JSONL, CSV/TSV or .tar shards")
    ev.add_argument("--image-root", help="folder that relative image paths in --data are under")
    ev.add_argument("--max-images", type=int, default=1000, help="score at most this many images (and their captions)")
    ev.add_argument("--first-caption-only", action="store_true", help="one caption (query) per image")
    add_device_arg(ev)
    ev.set_defaults(func=run_retrieval)


def _register_search(sub) -> None:
    s = sub.add_parser("search-images", aliases=["search"], help="rank a folder of images by a text query",
                       description="Prints the top images with cosine scores; writes a PNG grid of the hits.")
    s.add_argument("--model", required=True, help="CLIP checkpoint or run folder")
    s.add_argument("--images", required=True, help="folder of images")
    s.add_argument("--query", action="append", default=[], help="text query (repeatable)")
    s.add_argument("queries", nargs="*", help="more queries")
    s.add_argument("--top-k", type=int, default=10, help="images to show per query")
    s.add_argument("--grid", help="PNG grid path (default: search.png, or search-N.png for several queries)")
    s.add_argument("--index", help="embedding index file (.safetensors): reused if present, else written")
    speed = s.add_mutually_exclusive_group()
    speed.add_argument("--int8", action="store_true", help="encode the images with dynamic int8 linears (faster on CPU)")
    speed.add_argument("--bf16", action="store_true",
                       help="encode the images in bfloat16 (fast on CPUs with AMX or AVX512-BF16)")
    add_device_arg(s)
    s.set_defaults(func=run_search)


def run_pretrain(args) -> int:
    from ..recipes.clip import CLIPPretrainArgs, pretrain_clip

    pargs = CLIPPretrainArgs(out=args.out, data=args.data, val_data=args.val_data, preset=args.preset,
                             model=args.model, tokenizer=args.tokenizer, text_tower=args.text_tower,
                             unlock_text=args.unlock_text, image_root=args.image_root, augment=args.augment,
                             val_fraction=args.val_fraction, shapes_train=args.shapes_train)
    summary = pretrain_clip(pargs, train_config(args), resume=args.resume)
    if args.data is None:
        from .. import api
        from ..recipes.shapes_eval import shapes_zero_shot

        model, tok = api.load(args.out), api.load_tokenizer(args.out)
        summary["shapes_test_zero_shot"] = shapes_zero_shot(model, tok, Path(args.out) / "shapes")
    print_json(summary)
    return 0


def run_finetune(args) -> int:
    from ..recipes.vision import ImageClassifyArgs, finetune_image_classifier

    if not args.data:
        raise ValueError("--data is required: a folder with one subfolder of images per class")
    fargs = ImageClassifyArgs(out=args.out, data=args.data, val_data=args.val_data, preset=args.preset,
                              model=args.model, augment=not args.no_augment, val_fraction=args.val_fraction)
    print_json(finetune_image_classifier(fargs, train_config(args), resume=args.resume))
    return 0


def run_shapes(args) -> int:
    from ..data.shapes import generate_shapes

    paths = generate_shapes(args.out, n_train=args.n_train, n_val=args.n_val, n_test=args.n_test,
                            image_size=args.image_size, seed=args.seed, n_test_unseen=args.n_test_unseen)
    print_json({k: str(v) for k, v in paths.items()})
    return 0


def _load_clip(path: str, device):
    from .. import api

    model = api.load(path, device=device)
    if model.family != "clip":
        raise ValueError(f"{path} holds a {model.family} model; zero-shot and search need a CLIP checkpoint")
    return model, api.load_tokenizer(path)


def _image_paths(items: list[str]) -> list[Path]:
    from ..zeroshot import list_images

    if not items:
        raise ValueError("no images given: pass --images PATH or image paths")
    return [p for item in items for p in list_images(item)]


def run_zero_shot(args) -> int:
    from ..zeroshot import class_embeddings, embed_images, load_images, zero_shot_probs

    model, tok = _load_clip(args.model, device_for(args.device))
    errors: list[str] = []
    images, paths = load_images(_image_paths(args.images + args.paths), errors)
    for e in errors:
        print(f"warning: skipped {e}", file=sys.stderr)
    if not images:
        raise ValueError("none of the images could be read")
    probs = zero_shot_probs(model, embed_images(model, images), class_embeddings(model, tok, args.labels,
                                                                                    args.template or ["{}"]))
    correct = known = 0
    for path, p in zip(paths, probs):
        best = args.labels[int(p.argmax())]
        print(json.dumps({"image": str(path), "label": best,
                          "scores": {lab: round(float(q), 6) for lab, q in zip(args.labels, p)}}))
        truth = path.parent.name.replace("_", " ")
        if truth in args.labels:
            known += 1
            correct += best == truth
    if args.summary:
        acc = correct / known if known else None
        print(json.dumps({"summary": {"images": len(paths), "labelled": known, "accuracy": acc,
                                      "skipped": len(errors)}}))
    return 0


def run_retrieval(args) -> int:
    from ..recipes.clip_data import load_groups
    from ..zeroshot import evaluate_retrieval

    model, tok = _load_clip(args.model, device_for(args.device))
    groups, _ = load_groups(args.data, **({"image_root": args.image_root} if args.image_root else {}))
    print_json(evaluate_retrieval(model, tok, groups[:args.max_images], first_caption_only=args.first_caption_only))
    return 0


def run_search(args) -> int:
    from ..zeroshot import EmbeddingIndex, list_images, save_grid, search_images

    queries = args.query + args.queries
    if not queries:
        raise ValueError("no query given: pass --query TEXT")
    model, tok = _load_clip(args.model, device_for(args.device, cpu_only="--int8" if args.int8 else None))
    if args.index and Path(args.index).is_file():
        index = EmbeddingIndex.load(args.index)
    else:
        errors: list[str] = []
        index = EmbeddingIndex.build(model, list_images(args.images), errors=errors,
                                   precision="int8" if args.int8 else "bf16" if args.bf16 else "fp32")
        for e in errors:
            print(f"warning: skipped {e}", file=sys.stderr)
        if args.index:
            index.save(args.index)
    for n, q in enumerate(queries):
        hits = search_images(model, tok, index, q, args.top_k)
        grid = args.grid or ("search.png" if len(queries) == 1 else f"search-{n + 1}.png")
        if len(queries) > 1 and args.grid:
            grid = str(Path(args.grid).with_name(f"{Path(args.grid).stem}-{n + 1}.png"))
        save_grid(hits, grid, title=q)
        print(json.dumps({"query": q, "grid": grid, "hits": [{"image": str(p), "score": round(s, 4)}
                                                              for p, s in hits]}))
    return 0
