"""Timing helpers shared by the GPT benchmarks: warm up, then the median of several timed calls."""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def median_seconds(fns: dict[str, Callable[[], object]], repeats: int, warmup: int = 1) -> dict[str, float]:
    """Median wall time of each callable. Calls are interleaved (a, b, a, b, ...) so that a change in
    machine load during the run hits both sides alike."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(ts) for name, ts in times.items()}


def row(benchmark: str, ours: float, ref: float, unit: str) -> dict:
    """A result row; `ratio` is lingvis / reference (higher is better for throughput units)."""
    return {"benchmark": benchmark, "lingvis": round(ours, 2), "reference": round(ref, 2), "unit": unit,
            "ratio": round(ours / ref, 3)}


def print_rows(rows: list[dict]) -> None:
    for r in rows:
        print(f"{r['benchmark']}: lingvis {r['lingvis']} {r['unit']} vs transformers {r['reference']} "
              f"{r['unit']}  ->  ratio {r['ratio']:.2f}x", flush=True)
