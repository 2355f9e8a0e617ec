"""The recipe race: `lingvis pretrain gpt --max-minutes M` (CLI defaults) against nanoGPT's CPU quick-start
recipe, on the built-in Shakespeare plays, one after the other in this process.

Data: the nine bundled plays split as `lingvis pretrain gpt` splits them without --data (eight train plays,
one held-out play, richard_ii); one character tokenizer trained on the train plays serves both sides.

Reference: nanoGPT's README quick-start for a CPU (`config/train_shakespeare_char.py` with `--block_size=64
--batch_size=12 --n_layer=4 --n_head=4 --n_embd=128 --max_iters=2000 --lr_decay_iters=2000 --dropout=0.0
--eval_iters=20`): lr 1e-3, 100 warmup iterations, cosine to 1e-4 at 2,000, AdamW betas (0.9, 0.99), weight
decay 0.1 on matrices, gradient clipping at 1.0, random 64-character windows, an evaluation of 20 batches on
both splits every 250 iterations. The model is transformers' `GPT2LMHeadModel` (erf GELU as in nanoGPT,
SDPA attention), trained by a plain PyTorch loop.

Both final models are scored the same way outside their timed runs: mean next-character cross-entropy
(nats per character) over the whole held-out play cut into non-overlapping windows of each model's
context. Timings sit next to the load average, since the machine may be shared. Run as a script, the
race sets OMP_WAIT_POLICY=PASSIVE unless the environment sets it (before torch starts its threads): on an
oversubscribed machine, OpenMP threads that spin while waiting slow both sides down many times over.
`--budgets 1.8,5,15` races each budget in turn: lingvis with `--max-minutes M`, the reference for
2,000 x M / 1.8 iterations (its warmup stays at 100, its cosine spans the longer run), so the reference gets
as many more iterations as lingvis gets minutes; the two validation curves of each budget are printed side
by side at the reference's evaluation times.
`--half-of-reference` runs the reference first and gives lingvis half of its time as the budget.
`--clock cpu` measures both sides in CPU seconds of this process (`time.process_time`, all threads): lingvis
runs with `--budget-clock cpu`, and the curves, times and ratio are CPU seconds. On a machine shared with
other jobs that is the compute each side received, where the wall clock mostly measures the neighbours;
wall times are printed beside them either way. `--threads N` sets torch's threads for both sides.

    python -m benchmarks.recipe_race [--budgets 1.8,5,15] [--out DIR] [--half-of-reference]
                                     [--clock cpu] [--threads 1]
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # noqa: E402  (read when torch starts OpenMP)

import argparse
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

NANOGPT = dict(n_layer=4, n_head=4, n_embd=128, block_size=64, batch_size=12, lr=1e-3, min_lr=1e-4,
               warmup=100, iters=2000, beta2=0.99, weight_decay=0.1, grad_clip=1.0, eval_interval=250,
               eval_iters=20)
GOAL, AIM = 1.86, 1.75
BASE_MINUTES = 1.8  # the budget the reference's 2,000 iterations are raced against


def reference_recipe(minutes: float) -> dict:
    """nanoGPT's recipe for a race at `minutes`: 2,000 iterations at 1.8 minutes, proportionally more (cosine
    to the last one) for longer budgets."""
    iters = max(NANOGPT["iters"], round(NANOGPT["iters"] * minutes / BASE_MINUTES))
    return {**NANOGPT, "iters": iters}


def load() -> str:
    """'1-, 5-, 15-minute load averages' of the machine."""
    return ", ".join(f"{x:.1f}" for x in os.getloadavg())


@dataclass
class Result:
    name: str
    budget: float = math.nan              # the race's budget in minutes (lingvis's --max-minutes)
    heldout: float = math.nan             # nats per character on the held-out play
    seconds: float = math.nan             # the timed run, on the race's clock (wall or CPU seconds)
    wall: float = math.nan                # wall clock of the timed run
    cpu: float = math.nan                 # CPU seconds of the timed run (this process, all threads)
    curve: list[tuple[float, float]] = field(default_factory=list)  # (seconds, val loss) during the run
    load_before: str = ""
    load_after: str = ""
    detail: dict = field(default_factory=dict)


def race_data():
    """(tokenizer, train ids (N,), held-out ids (M,)) from the split `lingvis pretrain gpt` uses."""
    from lingvis.data.packing import encode_documents
    from lingvis.recipes.gpt import GPTPretrainArgs, load_corpus
    from lingvis.tokenizers import train_char

    train_texts, val_texts = load_corpus(GPTPretrainArgs(out=""))
    tok = train_char(train_texts)
    heldout = torch.tensor([i for t in val_texts for i in tok.encode(t)], dtype=torch.long)
    return tok, encode_documents(tok, train_texts), heldout


@torch.no_grad()
def heldout_loss(logits_fn, ids: torch.Tensor, T: int, batch: int = 32) -> float:
    """Mean next-token cross-entropy over `ids` cut into non-overlapping windows of T + 1 tokens."""
    n = (ids.numel() - 1) // T
    x = ids[: n * T].view(n, T)  # (n, T)
    y = ids[1: n * T + 1].view(n, T)
    total = 0.0
    for i in range(0, n, batch):
        logits = logits_fn(x[i:i + batch])  # (b, T, V)
        total += F.cross_entropy(logits.flatten(0, 1), y[i:i + batch].flatten(), reduction="sum").item()
    return total / (n * T)


# ---- the reference: nanoGPT's quick-start recipe on transformers' GPT-2 ---------------------------------
def nanogpt_lr(it: int, h: dict) -> float:
    """nanoGPT's `get_lr`: linear warmup, cosine to min_lr at lr_decay_iters."""
    if it < h["warmup"]:
        return h["lr"] * (it + 1) / (h["warmup"] + 1)
    ratio = (it - h["warmup"]) / (h["iters"] - h["warmup"])
    return h["min_lr"] + 0.5 * (1.0 + math.cos(math.pi * min(1.0, ratio))) * (h["lr"] - h["min_lr"])


def run_reference(vocab: int, train_ids: torch.Tensor, heldout: torch.Tensor, h: dict = NANOGPT,
                  seed: int = 1337, clock: str = "wall") -> Result:
    import transformers

    torch.manual_seed(seed)
    cfg = transformers.GPT2Config(vocab_size=vocab, n_positions=h["block_size"], n_embd=h["n_embd"],
                                  n_layer=h["n_layer"], n_head=h["n_head"], activation_function="gelu",
                                  resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                                  bos_token_id=None, eos_token_id=None)
    cfg._attn_implementation = "sdpa"
    model = transformers.GPT2LMHeadModel(cfg).train()
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": h["weight_decay"]},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=h["lr"], betas=(0.9, h["beta2"]))  # nanoGPT: fused on CUDA only
    T, B = h["block_size"], h["batch_size"]
    data = {"train": train_ids, "val": heldout}  # nanoGPT's estimate_loss reads both splits

    def get_batch(name: str):
        d = data[name]
        ix = torch.randint(len(d) - T, (B,))
        return torch.stack([d[i:i + T] for i in ix]), torch.stack([d[i + 1:i + 1 + T] for i in ix])

    @torch.no_grad()
    def estimate_loss() -> dict:
        model.eval()
        out = {}
        for name in ("train", "val"):
            total = 0.0
            for _ in range(h["eval_iters"]):
                x, y = get_batch(name)
                logits = model(x).logits
                total += F.cross_entropy(logits.flatten(0, 1), y.flatten()).item()
            out[name] = total / h["eval_iters"]
        model.train()
        return out

    res = Result(f"nanoGPT recipe, {h['iters']} iterations (transformers GPT2LMHeadModel)", load_before=load())
    tick = time.process_time if clock == "cpu" else time.perf_counter
    start, wall0, cpu0 = tick(), time.perf_counter(), time.process_time()
    for it in range(h["iters"] + 1):
        lr = nanogpt_lr(it, h)
        for g in opt.param_groups:
            g["lr"] = lr
        if it % h["eval_interval"] == 0:
            res.curve.append((tick() - start, estimate_loss()["val"]))
        if it == h["iters"]:
            break
        x, y = get_batch("train")
        logits = model(x).logits
        loss = F.cross_entropy(logits.flatten(0, 1), y.flatten())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), h["grad_clip"])
        opt.step()
        opt.zero_grad(set_to_none=True)
    res.seconds, res.wall, res.cpu = tick() - start, time.perf_counter() - wall0, time.process_time() - cpu0
    res.load_after = load()
    model.eval()
    res.heldout = heldout_loss(lambda x: model(x).logits, heldout, T)
    res.detail = {"iters": h["iters"], "tokens_per_s": round(h["iters"] * B * T / res.seconds, 1),
                  "parameters": sum(p.numel() for p in model.parameters())}
    return res


# ---- lingvis: the CLI with its defaults --------------------------------------------------------------
def run_lingvis(minutes: float, out: Path, heldout: torch.Tensor, extra: list[str] = (), clock: str = "wall") -> Result:
    import contextlib
    import io

    import lingvis
    from lingvis.cli import main

    argv = ["pretrain", "gpt", "--max-minutes", str(minutes), "--out", str(out), "--samples", "0",
            "--no-progress", "--budget-clock", clock, *extra]
    res = Result(f"lingvis pretrain gpt --max-minutes {minutes}", budget=minutes, load_before=load())
    printed = io.StringIO()
    wall0, cpu0 = time.perf_counter(), time.process_time()
    with contextlib.redirect_stdout(printed):
        rc = main(argv)
    res.wall, res.cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    res.seconds = res.cpu if clock == "cpu" else res.wall
    res.load_after = load()
    if rc:
        raise SystemExit(f"lingvis {' '.join(argv)} exited with {rc}")
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    res.curve = [(r["time"], r["loss"]) for r in rows if r.get("split") == "val" and "time" in r]
    model = lingvis.load(out).eval()
    res.heldout = heldout_loss(lambda x: model(x), heldout, model.config.block_size)
    text = printed.getvalue()
    summary = json.loads(text[text.index("{"):text.rindex("}") + 1])
    res.detail = {k: summary.get(k) for k in ("step", "seconds", "train_seconds", "eval_seconds",
                                               "final_eval_seconds", "eval_share", "tokens_per_s", "parameters",
                                               "horizon", "stopped_by")}
    res.detail["argv"] = " ".join(argv)
    return res


def plot(results: list[Result], path: Path, clock: str = "wall") -> None:
    """Every run's validation curve against time: one colour per budget, lingvis solid, the reference dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    budgets = sorted({r.budget for r in results if not math.isnan(r.budget)})
    colours = {b: f"C{i}" for i, b in enumerate(budgets)}
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=100)
    for r in results:
        if r.curve:
            t, v = zip(*r.curve)
            ref = r.name.startswith("nanoGPT")
            ax.plot(t, v, "s--" if ref else "o-", ms=3, color=colours.get(r.budget, "k"),
                    label=f"{r.name}: held-out {r.heldout:.3f}")
    ax.axhline(GOAL, color="grey", ls="--", lw=0.8, label=f"goal {GOAL}")
    ax.set_xlabel("CPU seconds (all threads)" if clock == "cpu" else "wall clock (s)")
    ax.set_ylabel("validation loss (nats/char)")
    ax.set_ylim(top=3.5)
    if len(budgets) > 1:
        ax.set_xscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title("Shakespeare char-level: loss against time")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def report(r: Result) -> str:
    return (f"{r.name}: held-out {r.heldout:.4f} nats/char in {r.wall:.1f} s wall, {r.cpu:.1f} CPU s "
            f"(load {r.load_before} -> {r.load_after}) {json.dumps(r.detail)}")


def compare(ours: Result, ref: Result, clock: str) -> str:
    met = ours.heldout <= min(GOAL, ref.heldout) and ours.seconds <= ref.seconds / 2
    return (f"{clock} time ratio lingvis/reference {ours.seconds / ref.seconds:.3f} (whole command vs training "
            f"loop; lingvis's training alone {ours.detail['seconds'] / ref.seconds:.3f}; wall {ours.wall / ref.wall:.3f}, "
            f"CPU {ours.cpu / ref.cpu:.3f}); held-out nats/char lingvis {ours.heldout:.4f} vs reference "
            f"{ref.heldout:.4f} (goal <= {GOAL}, aim <= {AIM}): {'GOAL MET' if met else 'goal not met'}")


def at(curve: list[tuple[float, float]], t: float) -> float:
    """The curve's loss at time t, linearly interpolated (NaN outside the curve)."""
    for (t0, v0), (t1, v1) in zip(curve, curve[1:]):
        if t0 <= t <= t1:
            return v0 if t1 == t0 else v0 + (v1 - v0) * (t - t0) / (t1 - t0)
    return math.nan


def curves_side_by_side(ours: Result, ref: Result, clock: str) -> str:
    """The two validation curves of one budget at the reference's evaluation times (lingvis interpolated;
    '-' where its run had ended or not evaluated yet), then lingvis's own points."""
    unit = "CPU s" if clock == "cpu" else "s"
    rows = [f"  val loss vs time, budget {ours.budget:g} min ({unit}: lingvis | reference)"]
    for t, v in ref.curve:
        mine = at(ours.curve, t)
        rows.append(f"    {t:8.1f}  {'-' if math.isnan(mine) else f'{mine:.3f}':>6} | {v:.3f}")
    rows.append("  lingvis's own points: " + " | ".join(f"{t:.0f} {v:.3f}" for t, v in ours.curve))
    return "\n".join(rows)


def summary(results: list[Result], clock: str) -> None:
    """Per budget: each lingvis run against the reference of the same budget, and the curves side by side."""
    for b in sorted({r.budget for r in results}):
        runs = [r for r in results if r.budget == b]
        ref = next((r for r in runs if r.name.startswith("nanoGPT")), None)
        print(f"== budget {b:g} min")
        for r in runs:
            print(report(r))
        for r in runs:
            if ref is not None and r is not ref:
                print("  " + compare(r, ref, clock))
                print(curves_side_by_side(r, ref, clock))


def combine(files: list[Path], out: Path, clock: str) -> None:
    results = [Result(**r) for f in files for r in json.loads(f.read_text())]
    out.mkdir(parents=True, exist_ok=True)
    for r in results:  # race files written before budgets were recorded: the 2,000-iteration race at 1.8 minutes
        if math.isnan(r.budget):
            r.budget = BASE_MINUTES
    summary(results, clock)
    plot(results, out / "race.png", clock)
    (out / "race.json").write_text(json.dumps([r.__dict__ for r in results], indent=2))
    print(f"wrote {out / 'race.png'} and {out / 'race.json'}")


def race(minutes: float, args, tok, train_ids, heldout, out: Path) -> list[Result]:
    """One budget: lingvis (unless --reference-only) and the reference of that budget (unless --skip-reference)."""
    h = reference_recipe(minutes)
    extra = args.lingvis_args.split()
    ref = ours = None
    if args.reference_only or args.half_of_reference:
        ref = run_reference(tok.vocab_size, train_ids, heldout, h, clock=args.clock)
        ref.budget = minutes
        print(report(ref), flush=True)
    if not args.reference_only:
        lingvis_minutes = round(ref.seconds / 2 / 60, 3) if args.half_of_reference else minutes
        ours = run_lingvis(lingvis_minutes, out / f"lingvis-{lingvis_minutes}m", heldout, extra, args.clock)
        ours.budget = minutes
        print(report(ours), flush=True)
    if ref is None and not args.skip_reference:
        ref = run_reference(tok.vocab_size, train_ids, heldout, h, clock=args.clock)
        ref.budget = minutes
        print(report(ref), flush=True)
    if ours is not None and ref is not None:
        print(compare(ours, ref, args.clock), flush=True)
    return [r for r in (ours, ref) if r is not None]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--budgets", default=str(BASE_MINUTES),
                    help="comma-separated lingvis budgets in minutes (--max-minutes), e.g. 1.8,5,15; each is raced "
                    f"against the reference at 2,000 x M / {BASE_MINUTES} iterations")
    ap.add_argument("--minutes", type=float, help="a single budget (the same as --budgets M)")
    ap.add_argument("--out", default="race_out", help="folder for the runs, race.json and race.png")
    ap.add_argument("--skip-reference", action="store_true", help="only the lingvis runs")
    ap.add_argument("--reference-only", action="store_true",
                    help="only the reference runs (to run both sides in parallel processes on a CPU clock)")
    ap.add_argument("--lingvis-args", default="", help="extra CLI flags for the lingvis runs (a sweep point)")
    ap.add_argument("--half-of-reference", action="store_true",
                    help="run each reference first; lingvis's budget is half of its time (instead of the budget)")
    ap.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                    help="what budgets, curves and the ratio measure: wall clock or CPU seconds of this process")
    ap.add_argument("--threads", type=int, help="torch threads for both sides (default: torch's)")
    ap.add_argument("--combine", nargs="+", metavar="RACE_JSON",
                    help="only plot and compare the race.json files of earlier runs (e.g. the two sides run as "
                    "parallel processes) into --out")
    args = ap.parse_args()
    if args.combine:
        combine([Path(f) for f in args.combine], Path(args.out), args.clock)
        return
    budgets = [args.minutes] if args.minutes else [float(x) for x in args.budgets.split(",") if x]
    if not budgets or min(budgets) <= 0:
        ap.error(f"--budgets needs positive minutes, got {args.budgets!r}")
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, OMP_WAIT_POLICY="
          f"{os.environ.get('OMP_WAIT_POLICY')}, load {load()}", flush=True)
    tok, train_ids, heldout = race_data()
    results: list[Result] = []
    for minutes in budgets:
        results += race(minutes, args, tok, train_ids, heldout, out)
        (out / "race.json").write_text(json.dumps([r.__dict__ for r in results], indent=2))  # kept if interrupted
        plot(results, out / "race.png", args.clock)
    summary(results, args.clock)
    print(f"wrote {out / 'race.png'} and {out / 'race.json'}")


if __name__ == "__main__":
    main()
