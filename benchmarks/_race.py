"""Pieces the BERT and CLIP races share: a pausable clock (CPU or wall seconds), the step horizon that fits a
budget, the reference recipes' learning-rate schedules, running a lingvis CLI command in this process, and
the plot of both sides' curves against time."""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path


def load() -> str:
    """'1-, 5-, 15-minute load averages' of the machine."""
    return ", ".join(f"{x:.1f}" for x in os.getloadavg())


class Clock:
    """Seconds on the race's clock (`cpu`: this process's CPU time, all threads; `wall`), minus paused spans
    (the reference's periodic evaluations, which the original recipes do not run while training)."""

    def __init__(self, kind: str = "wall"):
        self.tick = time.process_time if kind == "cpu" else time.perf_counter
        self.start, self.paused, self.wall0, self.cpu0 = self.tick(), 0.0, time.perf_counter(), time.process_time()

    def __call__(self) -> float:
        return self.tick() - self.start - self.paused

    @contextlib.contextmanager
    def pause(self):
        t = self.tick()
        try:
            yield
        finally:
            self.paused += self.tick() - t

    def wall(self) -> float:
        return time.perf_counter() - self.wall0

    def cpu(self) -> float:
        return time.process_time() - self.cpu0


def horizon(budget_s: float, step_fn, probe_steps: int, clock: str) -> tuple[int, float]:
    """(steps that fit in `budget_s`, seconds per step) from `probe_steps` calls of `step_fn` after one
    warm-up call. The caller runs the probe on a throwaway copy of model and optimizer, outside the budget."""
    c = Clock(clock)
    step_fn()
    t0 = c()
    for _ in range(probe_steps):
        step_fn()
    per_step = (c() - t0) / probe_steps
    return max(10, int(budget_s / per_step)), per_step


def endless(loader):
    """The loader's batches, epoch after epoch (each a fresh pass, so a shuffling loader reshuffles)."""
    while True:
        yield from loader


def wait_for(path: Path, minutes: float = 30) -> Path:
    """`path` once it exists (the JSON of a race still running beside this one), waiting up to `minutes`."""
    end = time.monotonic() + minutes * 60
    while not path.is_file():
        if time.monotonic() > end:
            raise SystemExit(f"{path} did not appear within {minutes:g} minutes")
        time.sleep(10)
    return path


def bert_lr(step: int, total: int, peak: float, warmup_share: float = 0.01) -> float:
    """The original BERT schedule scaled to `total` steps: linear warmup over `warmup_share` of them (10k of
    1M steps), then linear decay to 0 at `total`."""
    warm = max(1, round(warmup_share * total))
    if step < warm:
        return peak * (step + 1) / warm
    return peak * max(0.0, (total - step) / max(1, total - warm))


def open_clip_lr(step: int, total: int, peak: float, warmup_share: float) -> float:
    """open_clip's `cosine_lr`: linear warmup `peak * (step + 1) / warmup`, then cosine from peak to 0 at
    `total`, the warmup scaled to `warmup_share` of the run."""
    warm = max(1, round(warmup_share * total))
    if step < warm:
        return peak * (step + 1) / warm
    return 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm))) * peak


@dataclass
class Side:
    """One side of a race: scores after the run, the timed run's seconds and its curve."""
    name: str
    scores: dict = field(default_factory=dict)
    seconds: float = math.nan             # the timed run, on the race's clock
    wall: float = math.nan
    cpu: float = math.nan
    steps: int = 0
    curve: list[tuple[float, float]] = field(default_factory=list)  # (seconds, validation metric)
    load_before: str = ""
    load_after: str = ""
    detail: dict = field(default_factory=dict)

    def report(self) -> str:
        scores = ", ".join(f"{k} {v:.4f}" for k, v in self.scores.items())
        return (f"{self.name}: {scores}; {self.steps} steps in {self.seconds:.1f} s on the race clock "
                f"({self.wall:.1f} s wall, {self.cpu:.1f} CPU s; load {self.load_before} -> {self.load_after}) "
                f"{json.dumps(self.detail)}")


def run_cli(argv: list[str]) -> tuple[dict, float, float]:
    """Run `lingvis ARGV` in this process; (its printed JSON summary, wall s, CPU s)."""
    from lingvis.cli import main

    printed = io.StringIO()
    wall0, cpu0 = time.perf_counter(), time.process_time()
    with contextlib.redirect_stdout(printed):
        rc = main(argv)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    if rc:
        raise SystemExit(f"lingvis {' '.join(argv)} exited with {rc}:\n{printed.getvalue()[-2000:]}")
    text = printed.getvalue()
    return json.loads(text[text.index("{"):text.rindex("}") + 1]), wall, cpu


def lingvis_side(command: str, options: list[str], minutes: float, out: Path, clock: str, extra: list[str],
                 max_steps: int | None, metric: str) -> tuple[Side, dict]:
    """Run `lingvis COMMAND OPTIONS` for `minutes` on `clock` into `out` as the race's lingvis side; (the side
    with its `metric` curve, the run's JSON summary)."""
    argv = [*command.split(), *options, "--max-minutes", f"{minutes:g}", "--budget-clock", clock, "--out", str(out),
            "--no-progress", *extra]
    if max_steps:
        argv += ["--max-steps", str(max_steps)]
    paths = {i + 1 for i, o in enumerate(options) if o in ("--data", "--val-data")}
    shown = " ".join(o for i, o in enumerate(options) if i not in paths and i + 1 not in paths)  # no data paths
    side = Side(f"lingvis {command} {shown} --max-minutes {minutes:g}" + (f" {' '.join(extra)}" if extra else ""),
                load_before=load())
    summary, side.wall, side.cpu = run_cli(argv)
    side.seconds = side.cpu if clock == "cpu" else side.wall
    side.load_after, side.steps = load(), summary["step"]
    side.curve = val_curve(out, metric)
    side.detail = {k: summary.get(k) for k in ("seconds", "train_seconds", "eval_seconds", "final_eval_seconds",
                                               "horizon", "stopped_by", "parameters")}
    side.detail["argv"] = " ".join(argv)
    return side, summary


def val_curve(run: Path, metric: str) -> list[tuple[float, float]]:
    """(time, metric) of the validation rows of a lingvis run's metrics.jsonl."""
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return [(r["time"], r[metric]) for r in rows if r.get("split") == "val" and "time" in r and metric in r]


def plot(sides: list[Side], path: Path, ylabel: str, title: str, clock: str) -> None:
    """Each side's validation curve against time: lingvis solid, the reference dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=100)
    for i, s in enumerate(sides):
        if s.curve:
            t, v = zip(*s.curve)
            ax.plot(t, v, "o-" if s.name.startswith("lingvis") else "s--", ms=3, color=f"C{i}", label=s.name)
    ax.set_xlabel("CPU seconds (all threads)" if clock == "cpu" else "wall clock (s)")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def race_args(doc: str, name: str, command: str, default_minutes: float, minutes_help: str) -> tuple:
    """Parse the flags both races take, set threads and HF offline mode, make --out; (args, out folder)."""
    import torch

    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=default_minutes,
                    help=f"budget of each side{minutes_help} (default {default_minutes:g}: the demo's share)")
    ap.add_argument("--out", default=f"runs/{name}", help=f"folder for the runs, {name}.json and {name}.png")
    ap.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                    help="what budgets, curves and the ratio measure: wall clock or CPU seconds of this process")
    ap.add_argument("--threads", type=int, help="torch threads for both sides (default: torch's)")
    ap.add_argument("--lingvis-args", default="", help=f"extra flags for `lingvis {command}`")
    ap.add_argument("--smoke", action="store_true", help="a few steps per side (checks the script, scores nothing)")
    ap.add_argument("--reference-from", metavar=f"{name.upper()}_JSON",
                    help=f"reuse the reference side of an earlier race's {name}.json (same budget and clock)")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, load {load()}", flush=True)
    return args, out


def earlier_reference(race_json: str) -> Side:
    """The reference side of an earlier race's JSON (same data, tokenizer and budget)."""
    return Side(**json.loads(wait_for(Path(race_json)).read_text())[1])


def finish(ours: Side, ref: Side, keys: tuple[str, ...], out: Path, name: str, ylabel: str, title: str,
           clock: str) -> None:
    """Print the time ratio and the scores side by side; write NAME.json and the plot NAME.png."""
    unit = "CPU s" if clock == "cpu" else "wall s"
    print(f"\ntime ({unit}) lingvis/reference {ours.seconds / ref.seconds:.3f} (whole command vs training loop; "
          f"lingvis's training alone {ours.detail['seconds'] / ref.seconds:.3f})")
    for k in keys:
        print(f"  {k:<15} lingvis {ours.scores[k]:.4f}  reference {ref.scores[k]:.4f}")
    (out / f"{name}.json").write_text(json.dumps([s.__dict__ for s in (ours, ref)], indent=2))
    plot([ours, ref], out / f"{name}.png", ylabel, title, clock)
    print(f"wrote {out / f'{name}.json'} and {out / f'{name}.png'}")
