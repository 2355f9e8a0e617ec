"""Video commands: `data videos`, `finetune video-classify`, `classify-video`, `pretrain video-clip`,
`search-videos`, `evaluate video-classify`, `evaluate video-retrieval`."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from .common import add_train_args, print_json, train_config


def register(sub, groups) -> None:
    _register_data_videos(groups["data"])
    _register_finetune(groups["finetune"])
    _register_pretrain(groups["pretrain"])
    _register_classify(sub)
    _register_search(sub)
    _register_evaluate(groups["evaluate"])


def _add_sampling_args(p, training: bool = True, eval_clips: bool = True) -> None:
    g = p.add_argument_group("clip sampling")
    if training:
        g.add_argument("--frames", type=int, help="frames per clip (default: the preset's / checkpoint's)")
        g.add_argument("--sampling", choices=["segments", "stride"],
                       help="segments: one frame per equal segment of the video (TSN; random in training, "
                       "centred in evaluation); stride: consecutive samples at --sample-fps")
        g.add_argument("--sample-fps", type=float, help="stride sampling rate in frames per second "
                       "(default: every frame)")
        g.add_argument("--augment", action="store_true",
                       help="one random resized crop per training clip (never flipped: flips swap left and right)")
    if eval_clips:
        g.add_argument("--clips", type=int, default=1, help="clips per video in evaluation (scores averaged)")
    g.add_argument("--short", choices=["error", "repeat"], default="error",
                   help="videos shorter than a clip: error (skipped, counted) or repeat the last frame")
    g.add_argument("--video-root", help="folder that relative video paths in the annotation file are under")
    if training:
        g.add_argument("--cache-frames", action="store_true",
                       help="keep decoded frames in memory (small datasets of short clips: decoding then runs once)")


def _register_data_videos(group) -> None:
    d = group.add_parser("videos", help="generate synthetic motion clips (labels that depend on temporal order)",
                         description="Write mp4 clips of moving shapes whose class depends on the order of the "
                         "frames (moving left/right/up/down, appearing/disappearing, two shapes swapping places, "
                         "circling clockwise/counter-clockwise, speeding up/slowing down): class folders "
                         "OUT/<split>/<class>/, OUT/<split>.csv (path,label), OUT/captions_<split>.json "
                         "(MSR-VTT style, three captions per clip) and OUT/qa_<split>.json, for the splits "
                         "train, val and test (test: colour x shape groups with one clip per class).")
    d.add_argument("--out", required=True, help="output folder")
    d.add_argument("--n-train", type=int, default=100, help="training clips per class")
    d.add_argument("--n-val", type=int, default=20, help="validation clips per class")
    d.add_argument("--n-test-groups", type=int, default=10,
                   help="test groups: one colour x shape pair with one clip of every class each")
    d.add_argument("--size", type=int, default=32, help="frame width and height in pixels (even)")
    d.add_argument("--frames", type=int, default=16, help="frames per clip")
    d.add_argument("--fps", type=float, default=8.0, help="frame rate of the written videos")
    d.add_argument("--format", default=".mp4", choices=[".mp4", ".webm", ".mkv", ".avi"], help="container")
    d.add_argument("--seed", type=int, default=0, help="random seed (splits use derived seeds)")
    d.set_defaults(func=run_data_videos)


def run_data_videos(args) -> int:
    from ..video.synthetic import generate_videos

    paths = generate_videos(args.out, n_train=args.n_train, n_val=args.n_val, n_test_groups=args.n_test_groups,
                            size=args.size, num_frames=args.frames, fps=args.fps, seed=args.seed, ext=args.format)
    print_json({k: str(v) for k, v in paths.items()})
    return 0


def _register_finetune(group) -> None:
    f = group.add_parser("video-classify", help="train a video classifier (frame encoder + temporal head)",
                         description="--data: a folder with one subfolder of videos per class, or a 'path,label' "
                         "CSV. Start from --model (a video classifier, video CLIP, CLIP, ViT or CNN checkpoint: "
                         "image towers become the frame encoder) or a --preset (default video-classifier-tiny).")
    add_train_args(f, max_steps=1000, batch_size=32, lr=1e-3, eval_every=100, warmup=50)
    f.add_argument("--val-data", help="class folder or CSV for validation (default: a split of --data)")
    f.add_argument("--val-fraction", type=float, default=0.1, help="share of --data held out when no --val-data")
    f.add_argument("--temporal", choices=["transformer", "mean"],
                   help="temporal head over frame embeddings: transformer, or mean pooling (the order-blind baseline)")
    _add_sampling_args(f)
    f.set_defaults(func=run_finetune)


def _register_pretrain(group) -> None:
    p = group.add_parser("video-clip", help="contrastive video-text training (CLIP4Clip-style)",
                         description="--data: MSR-VTT-style captions JSON (videos + sentences) or a WebVid-style "
                         "CSV (videoid,name). Start from --clip (a lingvis CLIP run or a Hugging Face CLIP folder), "
                         "--model (a video CLIP run to continue) or a --preset (default video-clip-tiny, trained "
                         "from scratch with a word tokenizer). Defaults: batch 64 at lr 2e-3 (with hard negatives "
                         "8 groups of 8: the recipe of benchmarks/video_learning.py).")
    add_train_args(p, max_steps=1000, batch_size=64, lr=2e-3, eval_every=100, warmup=50)
    p.add_argument("--val-data", help="held-out captioned videos (default: a split of --data by video)")
    p.add_argument("--val-fraction", type=float, default=0.1, help="share of --data held out when no --val-data")
    p.add_argument("--clip", help="CLIP to start from: a lingvis CLIP run/folder or a Hugging Face CLIP folder")
    p.add_argument("--tokenizer", default="word", help="word (trained on the captions) | tokenizer folder/file")
    p.add_argument("--temporal", choices=["transformer", "mean"],
                   help="frame pooling: temporal transformer (seqTransf) or mean pooling (meanP, the baseline)")
    p.add_argument("--temporal-depth", type=int, help="temporal transformer layers")
    p.add_argument("--temporal-heads", type=int, help="temporal transformer heads (must divide projection_dim)")
    p.add_argument("--hard-negatives", type=int,
                   help="videos per batch group sharing --group-field (hard negatives: captions that differ only "
                   "in what the field leaves out, e.g. the motion); 1 turns it off; default: up to 8, at least 8 "
                   "groups per batch, when the videos have the field")
    p.add_argument("--group-field", default="subject",
                   help="field of the captions JSON's videos that groups hard negatives (the synthetic clips' "
                   "'subject', e.g. 'red circle')")
    _add_sampling_args(p, eval_clips=False)
    p.set_defaults(func=run_pretrain)


def _register_classify(sub) -> None:
    c = sub.add_parser("classify-video", help="classify video files with a video classifier",
                       description="Prints one JSON line per video: {file, label, score, top5}. A video that "
                       "cannot be read prints {file, error} (and a warning) and the others continue.")
    c.add_argument("--model", required=True, help="video classifier run or folder")
    c.add_argument("videos", nargs="+", help="video files, frame folders, or folders of videos")
    c.add_argument("--clips", type=int, default=1, help="clips per video (scores averaged)")
    c.add_argument("--top-k", type=int, default=5, help="labels listed per video")
    c.add_argument("--batch-size", type=int, default=8, help="videos per forward pass")
    c.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N")
    c.set_defaults(func=run_classify)


def _register_search(sub) -> None:
    s = sub.add_parser("search-videos", help="rank a folder of videos by a text query with a video CLIP",
                       description="Prints one JSON line per query: {query, hits: [{video, score}]}.")
    s.add_argument("--model", required=True, help="video CLIP run or folder")
    s.add_argument("--videos", required=True, help="folder of videos (searched recursively) or one video")
    s.add_argument("--query", action="append", default=[], help="text query (repeatable)")
    s.add_argument("queries", nargs="*", help="more queries")
    s.add_argument("--top-k", type=int, default=10, help="hits per query")
    s.add_argument("--clips", type=int, default=1, help="clips per video (embeddings averaged)")
    s.add_argument("--index", help="embedding index file (.safetensors): reused if present, else written")
    s.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N")
    s.set_defaults(func=run_search)


def _register_evaluate(group) -> None:
    ev = group.add_parser("video-classify", help="top-1/top-5 accuracy of a video classifier")
    ev.add_argument("--model", required=True, help="video classifier run or folder")
    ev.add_argument("--data", required=True, help="class folder or 'path,label' CSV")
    ev.add_argument("--clips", type=int, default=1, help="clips per video (scores averaged)")
    ev.add_argument("--video-root", help="folder that relative CSV paths are under")
    ev.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N")
    ev.set_defaults(func=run_evaluate_classify)
    r = group.add_parser("video-retrieval", help="text->video and video->text R@1/5/10 and median rank")
    r.add_argument("--model", required=True, help="video CLIP run or folder")
    r.add_argument("--data", required=True, help="MSR-VTT-style captions JSON or WebVid-style CSV")
    r.add_argument("--video-root", help="folder that the videos are under")
    r.add_argument("--max-videos", type=int, default=1000, help="evaluate the first N videos")
    r.add_argument("--first-caption-only", action="store_true", help="one caption (query) per video")
    r.add_argument("--clips", type=int, default=1, help="clips per video (embeddings averaged)")
    r.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N")
    r.set_defaults(func=run_evaluate_retrieval)


def run_finetune(args) -> int:
    from ..recipes.video_classify import VideoClassifyArgs, finetune_video_classifier

    if not args.data:
        raise ValueError("--data is required: a class folder of videos or a 'path,label' CSV")
    fargs = VideoClassifyArgs(out=args.out, data=args.data, val_data=args.val_data, video_root=args.video_root,
                              preset=args.preset, model=args.model, num_frames=args.frames, sampling=args.sampling,
                              sample_fps=args.sample_fps, temporal=args.temporal, augment=args.augment,
                              val_fraction=args.val_fraction, eval_clips=args.clips, short=args.short,
                              cache_frames=args.cache_frames)
    print_json(finetune_video_classifier(fargs, train_config(args), resume=args.resume))
    return 0


def run_pretrain(args) -> int:
    from ..recipes.video_clip import VideoCLIPArgs, pretrain_video_clip

    if not args.data:
        raise ValueError("--data is required: an MSR-VTT-style captions JSON or a WebVid-style CSV")
    pargs = VideoCLIPArgs(out=args.out, data=args.data, val_data=args.val_data, video_root=args.video_root,
                          preset=args.preset, clip=args.clip, model=args.model, tokenizer=args.tokenizer,
                          temporal=args.temporal, temporal_depth=args.temporal_depth,
                          temporal_heads=args.temporal_heads, num_frames=args.frames, sampling=args.sampling,
                          sample_fps=args.sample_fps, augment=args.augment, val_fraction=args.val_fraction,
                          short=args.short, cache_frames=args.cache_frames, hard_negatives=args.hard_negatives,
                          group_field=args.group_field)
    print_json(pretrain_video_clip(pargs, train_config(args), resume=args.resume))
    return 0


def _load(path: str, device: str, families: tuple[str, ...]):
    from .. import api

    model = api.load(path, device=device)
    if model.family not in families:
        raise ValueError(f"{path} holds a {model.family} model; this command needs {' or '.join(families)}")
    return model


def _videos(items: list[str]) -> list[Path]:
    from ..video.readers import list_videos

    return [p for item in items for p in list_videos(item)]


def run_classify(args) -> int:
    from ..video_predict import classify_videos

    model = _load(args.model, args.device, ("video_classifier",))
    paths = _videos(args.videos)
    failed: dict[int, str] = {}
    results = iter(classify_videos(model, paths, args.clips, args.top_k, args.batch_size, failed))
    for i, p in enumerate(paths):
        if i in failed:
            print(f"warning: skipped {failed[i]}", file=sys.stderr)
            print(json.dumps({"file": str(p), "error": failed[i]}))
        else:
            print(json.dumps(next(results)))
    return 0 if len(failed) < len(paths) else 1


def run_search(args) -> int:
    from .. import api
    from ..video_predict import build_video_index, search_videos
    from ..zeroshot import EmbeddingIndex

    queries = args.query + args.queries
    if not queries:
        raise ValueError("no query given: pass --query TEXT or queries after the options")
    model = _load(args.model, args.device, ("video_clip",))
    tok = api.load_tokenizer(args.model)
    if args.index and Path(args.index).is_file():
        index = EmbeddingIndex.load(args.index)
    else:
        errors: list[str] = []
        index = build_video_index(model, _videos([args.videos]), args.clips, errors=errors)
        for e in errors:
            print(f"warning: skipped {e}", file=sys.stderr)
        if args.index:
            index.save(args.index)
    for q in queries:
        hits = search_videos(model, tok, index, q, args.top_k)
        print(json.dumps({"query": q, "hits": [{"video": str(p), "score": round(s, 4)} for p, s in hits]}))
    return 0


def run_evaluate_classify(args) -> int:
    from ..video.readers import read_labelled_videos
    from ..video_predict import evaluate_video_classifier

    model = _load(args.model, args.device, ("video_classifier",))
    records, _ = read_labelled_videos(args.data, args.video_root)
    print_json(evaluate_video_classifier(model, records, args.clips))
    return 0


def run_evaluate_retrieval(args) -> int:
    from .. import api
    from ..video.readers import read_captioned_videos
    from ..video_predict import evaluate_video_retrieval

    model = _load(args.model, args.device, ("video_clip",))
    records = read_captioned_videos(args.data, args.video_root)[:args.max_videos]
    print_json(evaluate_video_retrieval(model, api.load_tokenizer(args.model), records, args.clips,
                                        args.first_caption_only))
    return 0
