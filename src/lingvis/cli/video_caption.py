"""Video captioning and video QA commands: `finetune video-caption`, `caption-video` (captions, or answers with
--question), `evaluate video-caption` (CIDEr-D, BLEU-4) and `evaluate video-qa` (accuracy)."""
from __future__ import annotations

import json
import sys

from .common import add_train_args, print_json, train_config
from .video import _add_sampling_args, _load, _videos


def register(sub, groups) -> None:
    f = groups["finetune"].add_parser(
        "video-caption", help="train a video captioner (or, with --qa, a video question answerer)",
        description="--data: MSR-VTT-style captions JSON or WebVid-style CSV; with --qa a video QA JSON "
        "(list of {video_id, path, question, answer}). Video tokens (frame encoder + temporal transformer, or a "
        "space-time Transformer preset) feed a GPT decoder through cross-attention. Start from a --preset "
        "(default video-captioner-tiny, BPE tokenizer trained on the texts) or --model (a video captioner run).")
    add_train_args(f, max_steps=1000, batch_size=32, lr=1e-3, eval_every=200, warmup=50)
    f.add_argument("--val-data", help="held-out file of the same kind (default: a split of --data by video)")
    f.add_argument("--val-fraction", type=float, default=0.05, help="share of --data held out when no --val-data")
    f.add_argument("--qa", action="store_true", help="--data is video QA JSON: learn to answer the questions (the loss is on "
                   "the answers; a batch counts videos, each with all of its questions, encoded once)")
    f.add_argument("--vocab-size", type=int, default=400, help="BPE vocabulary size for a new tokenizer")
    f.add_argument("--label-smoothing", type=float, default=0.1, help="label smoothing of the caption loss")
    f.add_argument("--question-weight", type=float, default=0.3,
                   help="--qa: weight of the question tokens' loss beside the answer's (they name what the video "
                   "shows; 0: answers only)")
    _add_sampling_args(f, eval_clips=False)
    f.set_defaults(func=run_finetune)

    c = sub.add_parser("caption-video", help="caption video files, or answer a question about them",
                       description="Prints one JSON line per video: {file, caption} (or {file, question, answer} "
                       "with --question). A video that cannot be read prints {file, error} and the others continue.")
    c.add_argument("--model", required=True, help="video captioner run or folder")
    c.add_argument("videos", nargs="+", help="video files, frame folders, or folders of videos")
    c.add_argument("--question", help="ask this question about every video instead of captioning")
    c.add_argument("--beams", type=int, default=3, help="beam width for captions (1 = greedy)")
    c.add_argument("--max-new-tokens", type=int, default=32, help="longest caption or answer in tokens")
    c.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N")
    c.set_defaults(func=run_caption)

    e = groups["evaluate"].add_parser("video-caption", help="CIDEr-D and BLEU-4 of a video captioner")
    e.add_argument("--model", required=True, help="video captioner run or folder")
    e.add_argument("--data", required=True, help="MSR-VTT-style captions JSON or WebVid-style CSV")
    e.add_argument("--video-root", help="folder that the videos are under")
    e.add_argument("--beams", type=int, default=3, help="beam width (1 = greedy)")
    e.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N")
    e.set_defaults(func=run_evaluate_caption)
    q = groups["evaluate"].add_parser("video-qa", help="answer accuracy of a video QA model (exact match)")
    q.add_argument("--model", required=True, help="video captioner run trained with --qa, or an image-chat (llava) "
                   "run that sees --frames frames of each video as images")
    q.add_argument("--frames", type=int, default=4, help="frames shown to an image-chat model")
    q.add_argument("--data", required=True, help="video QA JSON (list of {video_id, path, question, answer})")
    q.add_argument("--video-root", help="folder that the videos are under")
    q.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N")
    q.set_defaults(func=run_evaluate_qa)


def run_finetune(args) -> int:
    from ..recipes.video_caption import VideoCaptionArgs, train_video_captioner

    if not args.data:
        raise ValueError("--data is required: captions JSON / CSV, or video QA JSON with --qa")
    fargs = VideoCaptionArgs(out=args.out, data=args.data, val_data=args.val_data, video_root=args.video_root,
                             qa=args.qa, preset=args.preset, model=args.model, vocab_size=args.vocab_size,
                             label_smoothing=args.label_smoothing, question_weight=args.question_weight,
                             val_fraction=args.val_fraction,
                             num_frames=args.frames, sampling=args.sampling, sample_fps=args.sample_fps,
                             short=args.short, augment=args.augment, cache_frames=args.cache_frames)
    print_json(train_video_captioner(fargs, train_config(args), resume=args.resume))
    return 0


def run_caption(args) -> int:
    from .. import api
    from ..recipes.video_caption import answer_questions, caption_videos

    model = _load(args.model, args.device, ("video_captioner",))
    tok = api.load_tokenizer(args.model)
    paths = _videos(args.videos)
    failed: dict[int, str] = {}
    if args.question:
        out = answer_questions(model, tok, [(p, args.question) for p in paths], args.max_new_tokens, failed)
        rows = {i: {"question": args.question, "answer": a} for i, a in out.items()}
    else:
        out = caption_videos(model, tok, paths, args.beams, args.max_new_tokens, errors=failed)
        rows = {i: {"caption": c} for i, c in out.items()}
    for i, p in enumerate(paths):
        if i in failed:
            print(f"warning: skipped {failed[i]}", file=sys.stderr)
            print(json.dumps({"file": str(p), "error": failed[i]}))
        else:
            print(json.dumps({"file": str(p), **rows[i]}))
    return 0 if len(failed) < len(paths) else 1


def run_evaluate_caption(args) -> int:
    from .. import api
    from ..recipes.video_caption import evaluate_video_captions
    from ..video.readers import read_captioned_videos

    model = _load(args.model, args.device, ("video_captioner",))
    records = read_captioned_videos(args.data, args.video_root)
    print_json(evaluate_video_captions(model, api.load_tokenizer(args.model), records, args.beams))
    return 0


def run_evaluate_qa(args) -> int:
    from .. import api
    from ..recipes.video_caption import evaluate_video_qa
    from ..video.readers import read_video_qa

    model = _load(args.model, args.device, ("video_captioner", "llava"))
    questions = read_video_qa(args.data, args.video_root)
    print_json(evaluate_video_qa(model, api.load_tokenizer(args.model), questions, args.frames))
    return 0
