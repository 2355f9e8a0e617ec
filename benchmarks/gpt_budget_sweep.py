"""The sweep behind the defaults of `lingvis pretrain gpt --max-minutes M`: model shape, context, batch size
and learning rate of character-level GPTs on the built-in Shakespeare plays, for a time budget.

Each point trains with the real `Trainer` (budgeted schedule, periodic evaluation, checkpoints) on the eight
train plays and is scored on the whole held-out play (nats per character, as in benchmarks/recipe_race.py).
The machine this ran on is shared, so the budget is measured in CPU seconds of a one-thread process
(`--clock cpu`, the default): on a busy machine that is the compute a run received, not the time it
waited. `--clock wall` uses the wall clock instead. Points run in subprocesses, `--parallel` at a time.

    python -m benchmarks.gpt_budget_sweep --minutes 2 --grid shapes --out sweep.jsonl
    python -m benchmarks.gpt_budget_sweep --table sweep.jsonl     # the results as a Markdown table
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BASE = dict(n_layer=4, n_head=4, n_embd=128, block_size=128, batch_size=16, lr=2e-3, warmup_steps=50,
            min_lr=None, schedule="cosine", activation="gelu", weight_decay=0.1, beta2=0.99, stride=None,
            beta1=0.9, decay_fraction=0.2, optimizer="adamw", model={})  # model: further GPTConfig fields (position, bias, ...)

# named grids: each a list of overrides of BASE
GRIDS = {
    "shapes": [dict(), dict(n_embd=192, n_head=6), dict(n_layer=6, n_embd=192, n_head=6),
               dict(n_embd=256), dict(n_layer=3, n_embd=96, n_head=4), dict(n_layer=6, n_embd=128)],
    "context": [dict(block_size=64), dict(block_size=256, batch_size=8), dict(block_size=64, batch_size=32)],
    "batch": [dict(batch_size=8), dict(batch_size=32), dict(batch_size=8, lr=1.5e-3)],
    "lr": [dict(lr=1e-3), dict(lr=4e-3), dict(lr=6e-3)],
    "schedule": [dict(schedule="wsd"), dict(schedule="linear"), dict(min_lr=2e-5), dict(warmup_steps=20)],
    "nanogpt": [dict(block_size=64, batch_size=12, lr=1e-3, warmup_steps=100, min_lr=1e-4)],
}


def run_point(point: dict, minutes: float, clock: str) -> dict:
    """Train one configuration for `minutes` and score it on the held-out play."""
    import torch

    torch.set_num_threads(1)
    from lingvis.data.packing import PackedLMDataset, encode_documents
    from lingvis.models import registry
    from lingvis.recipes.gpt import GPTPretrainArgs, load_corpus
    from lingvis.tasks.lm import CausalLMTask
    from lingvis.tokenizers import train_char
    from lingvis.train.config import TrainConfig
    from lingvis.train.trainer import Trainer

    from .recipe_race import heldout_loss

    p = {**BASE, **point}
    torch.manual_seed(1337)
    train_texts, val_texts = load_corpus(GPTPretrainArgs(out=""))
    tok = train_char(train_texts)
    _, mcfg = registry.preset_config("gpt-micro", vocab_size=tok.vocab_size, n_layer=p["n_layer"],
                                     n_head=p["n_head"], n_embd=p["n_embd"], block_size=p["block_size"],
                                     activation=p["activation"], dropout=0.0, **p["model"])
    model = registry.family("gpt").model_cls(mcfg)
    T = p["block_size"]
    train_set = PackedLMDataset(encode_documents(tok, train_texts), T)
    if p["stride"]:  # windows starting every `stride` tokens instead of non-overlapping blocks
        from lingvis.data.windows import WindowLMDataset

        train_set = WindowLMDataset(encode_documents(tok, train_texts), T, stride=p["stride"])
    val_set = PackedLMDataset(encode_documents(tok, val_texts), T)
    cfg = TrainConfig(max_steps=10 ** 7, max_minutes=minutes, batch_size=p["batch_size"], lr=p["lr"],
                      min_lr=p["min_lr"], warmup_steps=p["warmup_steps"], schedule=p["schedule"],
                      weight_decay=p["weight_decay"], beta1=p["beta1"], beta2=p["beta2"],
                      decay_fraction=p["decay_fraction"], optimizer=p["optimizer"], progress=False, device="cpu", keep_last=1,
                      log_every=50)
    tick = time.process_time if clock == "cpu" else time.perf_counter
    wall0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        summary = Trainer(model, CausalLMTask(), train_set, val_set, cfg, out, clock=tick).fit()
        rows = [json.loads(line) for line in (Path(out) / "metrics.jsonl").read_text().splitlines()]
    model.eval()
    heldout_ids = torch.tensor([i for t in val_texts for i in tok.encode(t)], dtype=torch.long)
    return {"point": p, "minutes": minutes, "clock": clock, "heldout": round(heldout_loss(model, heldout_ids, T), 4),
            "steps": summary["step"], "tokens_per_s": summary.get("tokens_per_s"),
            "eval_share": summary["eval_share"], "wall_s": round(time.perf_counter() - wall0, 1),
            "load": os.getloadavg()[0], "parameters": sum(q.numel() for q in model.parameters()),
            "curve": [(r["time"], round(r["loss"], 4)) for r in rows if r.get("split") == "val"]}


def sweep(points: list[dict], minutes: float, clock: str, parallel: int, out: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    queue = list(points)
    running: list[subprocess.Popen] = []
    root = Path(__file__).resolve().parent.parent
    while queue or running:
        while queue and len(running) < parallel:
            cmd = [sys.executable, "-m", "benchmarks.gpt_budget_sweep", "--worker", json.dumps(queue.pop(0)),
                   "--minutes", str(minutes), "--clock", clock]
            running.append(subprocess.Popen(cmd, cwd=root, env=env, stdout=subprocess.PIPE, text=True))
        time.sleep(2)
        for proc in [p for p in running if p.poll() is not None]:
            running.remove(proc)
            lines = [line for line in proc.stdout.read().splitlines() if line.startswith("{")]
            if proc.returncode or not lines:
                print(f"point failed (exit {proc.returncode}): {proc.args[4]}", flush=True)
                continue
            with open(out, "a", encoding="utf-8") as fh:
                fh.write(lines[-1] + "\n")
            r = json.loads(lines[-1])
            print(f"{r['heldout']:.4f} nats/char  {r['steps']} steps  {label(r['point'])}  (load {r['load']:.1f})",
                  flush=True)


def label(p: dict) -> str:
    diff = {k: v for k, v in p.items() if BASE.get(k) != v}
    return f"L{p['n_layer']} C{p['n_embd']} T{p['block_size']} B{p['batch_size']} lr{p['lr']:g} " + \
        " ".join(f"{k}={v}" for k, v in diff.items() if k not in ("n_layer", "n_embd", "block_size", "batch_size",
                                                                 "lr", "n_head"))


def table(path: Path) -> str:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    rows.sort(key=lambda r: (r["minutes"], r["heldout"]))
    out = ["| budget | held-out nats/char | steps | params | tokens/s | eval share | configuration |",
           "|---|---|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| {r['minutes']:g} min ({r['clock']}) | {r['heldout']:.4f} | {r['steps']} | "
                   f"{r['parameters']:,} | {r['tokens_per_s'] or 0:,.0f} | {r['eval_share']:.1%} | {label(r['point'])} |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=2.0, help="budget per point")
    ap.add_argument("--clock", choices=["cpu", "wall"], default="cpu", help="what the budget measures")
    ap.add_argument("--grid", default="shapes", help=f"comma-separated grids: {', '.join(GRIDS)}")
    ap.add_argument("--points", help="JSON list of overrides of the base point (instead of --grid)")
    ap.add_argument("--base", help="JSON overrides of the base point every grid point starts from")
    ap.add_argument("--parallel", type=int, default=2, help="points trained at once (one thread each)")
    ap.add_argument("--out", default="gpt_budget_sweep.jsonl", help="JSONL results, appended")
    ap.add_argument("--table", help="print the Markdown table of a results file and exit")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.table:
        print(table(Path(args.table)))
        return
    if args.worker:
        print(json.dumps(run_point(json.loads(args.worker), args.minutes, args.clock)), flush=True)
        return
    base = json.loads(args.base) if args.base else {}
    points = json.loads(args.points) if args.points else [p for g in args.grid.split(",") for p in GRIDS[g]]
    sweep([{**base, **p} for p in points], args.minutes, args.clock, args.parallel, Path(args.out))


if __name__ == "__main__":
    main()
