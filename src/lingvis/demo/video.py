"""Demo step: video classification where the label is the order of the frames (about 3 minutes on 2 cores).
Synthetic motion clips (12 classes in time-reversed pairs: left/right, appear/disappear, clockwise/counter-
clockwise, speeding up/slowing down, ...), a small ResNet per frame with a temporal Transformer over the
frame embeddings against the same model with mean pooling over frames (blind to order); held-out top-1 and
"order accuracy" (true class above its time reversal) of both. `benchmarks/video_learning.py` trains longer
on more clips for the targets."""
from __future__ import annotations

from pathlib import Path

from .. import api
from ..recipes.video_classify import VideoClassifyArgs, finetune_video_classifier
from ..train.config import TrainConfig
from ..video.motion import REVERSE
from ..video.readers import read_video_csv
from ..video.synthetic import generate_videos
from ..video_predict import classify_videos, evaluate_video_classifier
from . import step

VARIANTS = ("transformer", "mean")


def train_variant(root: Path, temporal: str, steps: int, minutes: float, batch_size: int = 32) -> tuple[Path, dict]:
    run = root / f"classify-{temporal}"
    args = VideoClassifyArgs(out=str(run), data=str(root / "clips" / "train.csv"), preset="video-classifier-tiny",
                             temporal=temporal, cache_frames=True, val_fraction=0.05)
    cfg = TrainConfig(max_steps=steps, max_minutes=minutes, batch_size=batch_size, lr=2e-3, warmup_steps=steps // 10,
                      weight_decay=0.05, eval_every=10_000, eval_batches=1, log_every=50, beta2=0.98,
                      progress=False)
    return run, finetune_video_classifier(args, cfg)


@step("video")
def demo_video(out: Path, steps: int = 400, minutes: float = 1.3, n_train: int = 50, test_groups: int = 5,
               batch_size: int = 32) -> dict:
    """`steps` sets the cosine schedule; it should end within `minutes` per variant on 2 cores."""
    root = out / "video"
    data = root / "clips"
    if not (data / "test.csv").is_file():
        generate_videos(data, n_train=n_train, n_val=0, n_test_groups=test_groups, size=32, num_frames=16, fps=8.0)
    test, _ = read_video_csv(data / "test.csv")
    result = {}
    for temporal in VARIANTS:
        run, summary = train_variant(root, temporal, steps, minutes, batch_size)
        model = api.load(run)
        ev = evaluate_video_classifier(model, test, reverse=REVERSE)
        result[temporal] = {"top1": ev["top1"], "order_accuracy": ev["order_accuracy"], "steps": summary["step"],
                            "seconds": summary["seconds"], "run": str(run)}
    seq, mean = result["transformer"], result["mean"]
    print(f"\n[video] trained on {12 * n_train} clips of 8 sampled frames ({seq['steps']} + {mean['steps']} steps, "
          f"{seq['seconds']:.0f}s + {mean['seconds']:.0f}s); {len(test)} held-out clips, 12 classes (chance 8.3%)")
    print(f"[video] temporal transformer: top-1 {seq['top1']:.1%}, order accuracy {seq['order_accuracy']:.1%}")
    print(f"[video] mean-pooled baseline: top-1 {mean['top1']:.1%}, order accuracy {mean['order_accuracy']:.1%} "
          "(cannot tell a clip from its time reversal: order accuracy stays near 50%)")
    model = api.load(seq["run"])
    for r in classify_videos(model, [t.path for t in test[:3]], top_k=2):
        print(f"[video] {Path(r['file']).name}: {r['label']} ({r['score']:.2f})")
    return {"temporal_top1": seq["top1"], "mean_top1": mean["top1"], "temporal_order_accuracy": seq["order_accuracy"],
            "mean_order_accuracy": mean["order_accuracy"]}
