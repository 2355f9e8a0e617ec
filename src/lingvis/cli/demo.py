"""`lingvis demo [STEP ...]`: train and show every family on built-in data."""
from __future__ import annotations

import json
import time
from pathlib import Path


def register(sub, groups) -> None:
    p = sub.add_parser("demo", help="run the end-to-end demo on built-in data",
                       description="Runs each family's demo step (all by default) and leaves run folders "
                       "with logs, checkpoints and loss plots under --out.")
    p.add_argument("steps", nargs="*", help="steps to run (default: all)")
    p.add_argument("--out", default="runs/demo", help="folder for the run folders and summary.json")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..demo import load_steps

    steps = load_steps()
    chosen = args.steps or list(steps)
    unknown = [s for s in chosen if s not in steps]
    if unknown:
        raise ValueError(f"unknown demo step(s) {unknown}; available: {list(steps)}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results, t0 = {}, time.perf_counter()
    for name in chosen:
        print(f"\n===== demo step: {name} =====", flush=True)
        s = time.perf_counter()
        results[name] = {**steps[name](out), "seconds": round(time.perf_counter() - s, 1)}
    (out / "summary.json").write_text(json.dumps(results, indent=2))
    print(f"\ndemo finished in {time.perf_counter() - t0:.0f}s; summary: {out / 'summary.json'}")
    return 0
