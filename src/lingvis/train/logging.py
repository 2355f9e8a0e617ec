"""Metrics log (JSONL), loss-curve plot, console lines."""
from __future__ import annotations

import json
from pathlib import Path


class MetricsLog:
    """Append-only JSONL of train/eval rows. On resume, rows after the checkpoint step are dropped so
    the log reads as if the run had never stopped."""

    def __init__(self, path: str | Path, resume_step: int | None = None):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if resume_step is None:
            self.path.write_text("")
        elif self.path.exists():
            rows = [r for r in self.rows() if r["step"] <= resume_step]
            self.path.write_text("".join(json.dumps(r) + "\n" for r in rows))

    def write(self, row: dict) -> None:
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(row) + "\n")

    def rows(self) -> list[dict]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]


def _curves(rows: list[dict], x: str) -> tuple[list, list]:
    train = [(r[x], r["loss"]) for r in rows if r.get("split") == "train" and "loss" in r and x in r]
    val = [(r[x], r["loss"]) for r in rows if r.get("split") == "val" and "loss" in r and x in r]
    return train, val


def plot_losses(rows: list[dict], out_png: str | Path, title: str = "loss") -> None:
    """Train and eval loss against step, and (when the rows carry run time) against wall-clock time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    axes_x = [("step", "step")] + ([("time", "wall clock (s)")] if any("time" in r for r in rows) else [])
    fig, axes = plt.subplots(1, len(axes_x), figsize=(6 * len(axes_x), 4), dpi=100, squeeze=False)
    for ax, (x, label) in zip(axes[0], axes_x):
        train, val = _curves(rows, x)
        if train:
            ax.plot(*zip(*train), label="train", alpha=0.7)
        if val:
            ax.plot(*zip(*val), "o-", label="val")
        ax.set_xlabel(label)
        ax.set_ylabel("loss")
        ax.set_title(f"{title} against {x}")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(out_png)
    plt.close(fig)


def format_curve(rows: list[dict], key: str = "loss") -> str:
    """The val `key` against run time as one line: "loss vs time: 0:12 2.410 | 0:25 2.101 | ..."."""
    points = [(r["time"], r[key]) for r in rows if r.get("split") == "val" and key in r and "time" in r]
    if not points:
        return ""
    return f"{key} vs time: " + " | ".join(f"{int(t // 60)}:{int(t % 60):02d} {v:.3f}" for t, v in points)
