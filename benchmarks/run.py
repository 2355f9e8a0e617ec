"""`make bench`: run every `benchmarks/*.py` module that exposes `run(quick) -> list[dict]`, one after the
other in this process, and write `<out>/bench.md` (Markdown table), `<out>/bench.json` (raw rows) and PNG
plots of throughput against batch size and sequence length (rows carrying `sweep` = "batch" or
"seq_len"). A module that fails or overruns `--module-timeout` is recorded with its error; the others
still run. Learning runs (`*_learning.py`: minutes of training towards an accuracy target, not speed
comparisons) are left out unless `--learning` is given or they are named in `--only`.

    python -m benchmarks.run --out results [--quick] [--only mfu,int8_decode] [--learning]
"""
from __future__ import annotations

import argparse
import datetime
import importlib
import json
import os
import platform
import signal
import sys
import time
import traceback
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
SKIP = {"run", "__init__"}
BASE_KEYS = ("benchmark", "lingvis", "reference", "unit", "ratio")


class ModuleTimeout(Exception):
    pass


def discover(only: list[str] | None = None, learning: bool = False) -> list[str]:
    names = sorted(p.stem for p in HERE.glob("*.py") if not p.stem.startswith("_") and p.stem not in SKIP)
    if only:
        missing = sorted(set(only) - set(names))
        if missing:
            raise SystemExit(f"error: no benchmark module(s) {missing} in {HERE}; have {names}")
        return [n for n in names if n in only]
    return [n for n in names if learning or not n.endswith("_learning")]


def _alarm(signum, frame):
    raise ModuleTimeout("exceeded the per-module time limit")


def run_module(name: str, quick: bool, timeout: int) -> dict:
    """Import and run one module; {"module", "rows", "error", "seconds"}; never raises."""
    start = time.perf_counter()
    result = {"module": name, "rows": [], "error": None}
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(timeout)
    try:
        mod = importlib.import_module(f"benchmarks.{name}")
        fn = getattr(mod, "run", None)
        if not callable(fn):
            result["error"] = "skipped: no run(quick) function"
        else:
            rows = fn(quick)
            bad = [r for r in rows if not all(k in r for k in BASE_KEYS)]
            if bad:
                raise ValueError(f"row(s) without {BASE_KEYS}: {bad[:2]}")
            result["rows"] = [{**r, "module": name} for r in rows]
    except BaseException as e:  # a benchmark failing must not stop the suite (KeyboardInterrupt still does)
        if isinstance(e, KeyboardInterrupt):
            raise
        result["error"] = f"{type(e).__name__}: {e}".strip()[:500]
        traceback.print_exc()
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    result["seconds"] = round(time.perf_counter() - start, 1)
    return result


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "python": platform.python_version(),
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default"),
            "date": datetime.datetime.now().isoformat(timespec="seconds")}


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:,.3f}" if abs(v) < 10 else f"{v:,.1f}"
    return str(v)


def markdown(results: list[dict], info: dict, quick: bool) -> str:
    lines = ["# lingvis benchmarks", "",
             f"{info['date']} · {info['cpu']} · {info['cores']} cores, {info['torch_threads']} torch threads · "
             f"torch {info['torch']} · Python {info['python']} · OMP_WAIT_POLICY {info.get('omp_wait_policy', 'default')} · "
             f"{'quick' if quick else 'full'} run", "",
             "`ratio` = lingvis / reference (throughput: higher is better for lingvis). Each module compares "
             "lingvis with its reference at the same weights in the same run.", "",
             "| module | benchmark | lingvis | reference | unit | ratio | notes |",
             "|---|---|---:|---:|---|---:|---|"]
    for res in results:
        for r in res["rows"]:
            notes = ", ".join(f"{k}={_fmt(v)}" for k, v in r.items()
                              if k not in (*BASE_KEYS, "module", "series", "sweep", "batch", "seq_len"))
            lines.append(f"| {res['module']} | {r['benchmark']} | {_fmt(r['lingvis'])} | {_fmt(r['reference'])} | "
                         f"{r['unit']} | {_fmt(r['ratio'])} | {notes} |")
    lines += ["", "| module | seconds | status |", "|---|---:|---|"]
    for res in results:
        status = res["error"] or f"{len(res['rows'])} rows"
        lines.append(f"| {res['module']} | {res['seconds']} | {status.replace('|', '/')} |")
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], sweep: str, out_png: Path) -> bool:
    """Throughput (lingvis solid, reference dashed) against `sweep` for every series that has it."""
    pts = [r for r in rows if r.get("sweep") == sweep and sweep in r]
    if not pts:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.2), dpi=110)
    for series in sorted({r.get("series", r["module"]) for r in pts}):
        sel = sorted((r for r in pts if r.get("series", r["module"]) == series), key=lambda r: r[sweep])
        xs = [r[sweep] for r in sel]
        line, = ax.plot(xs, [r["lingvis"] for r in sel], "o-", label=f"lingvis: {series}")
        ax.plot(xs, [r["reference"] for r in sel], "s--", color=line.get_color(), label=f"reference: {series}")
    ax.set_xscale("log", base=2)
    ticks = sorted({r[sweep] for r in pts})
    ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.set_xlabel("batch size" if sweep == "batch" else "sequence length")
    ax.set_ylabel(pts[0]["unit"])
    ax.set_title(f"throughput vs {'batch size' if sweep == 'batch' else 'sequence length'}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out_png)
    plt.close(fig)
    return True


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="results", help="results folder")
    ap.add_argument("--quick", action="store_true", help="pass quick=True to every module")
    ap.add_argument("--only", help="comma-separated module names")
    ap.add_argument("--learning", action="store_true", help="also run the *_learning training benchmarks")
    ap.add_argument("--module-timeout", type=int, default=600, help="seconds before a module is abandoned")
    args = ap.parse_args(argv)
    torch.set_num_threads(2)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    names = discover(args.only.split(",") if args.only else None, args.learning)
    info, results, t0 = machine(), [], time.perf_counter()
    for name in names:
        print(f"== {name}", flush=True)
        res = run_module(name, args.quick, args.module_timeout)
        results.append(res)
        for r in res["rows"]:
            print(f"   {r['benchmark']}: {r['lingvis']} vs {r['reference']} {r['unit']} (ratio {r['ratio']})")
        print(f"   {res['error'] or 'ok'} in {res['seconds']}s", flush=True)
    rows = [r for res in results for r in res["rows"]]
    info["total_seconds"] = round(time.perf_counter() - t0, 1)
    (out / "bench.md").write_text(markdown(results, info, args.quick)
                                  + f"\nTotal: {info['total_seconds']} s.\n" + _plot_links(rows, out))
    (out / "bench.json").write_text(json.dumps({"machine": info, "results": results}, indent=2))
    print(f"wrote {out / 'bench.md'} ({len(rows)} rows, {sum(bool(r['error']) for r in results)} module errors, "
          f"{info['total_seconds']} s)")
    return 0


def _plot_links(rows: list[dict], out: Path) -> str:
    links = []
    for sweep, png in (("batch", "throughput_vs_batch.png"), ("seq_len", "throughput_vs_seq_len.png")):
        if plot(rows, sweep, out / png):
            links.append(f"![throughput vs {sweep}]({png})")
    return ("\n" + "\n\n".join(links) + "\n") if links else ""


if __name__ == "__main__":
    sys.exit(main())
