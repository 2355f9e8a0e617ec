"""Video commands: `data videos`, `finetune video-classify`, `classify-video`, `pretrain video-clip`,
`search-videos`, `evaluate video-classify`, `evaluate video-retrieval`."""
from __future__ import annotations

from .common import print_json


def register(sub, groups) -> None:
    _register_data_videos(groups["data"])


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
