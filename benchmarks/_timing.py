"""Timing helpers shared by the benchmarks: warm up, then the median of several timed calls."""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def timed(fns: dict[str, Callable[[], object]], repeats: int, warmup: int = 1) -> tuple[dict, dict]:
    """Median wall and CPU seconds of each callable. Calls are interleaved (a, b, a, b, ...) so that a change
    in machine load during the run hits both sides alike; CPU time (the process's, every thread) is the fair
    measure on cores shared with other jobs, where wall time is mostly waiting for a core."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    wall: dict[str, list[float]] = {name: [] for name in fns}
    cpu: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0, c0 = time.perf_counter(), time.process_time()
            fn()
            wall[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
    return ({k: statistics.median(v) for k, v in wall.items()}, {k: statistics.median(v) for k, v in cpu.items()})


def median_seconds(fns: dict[str, Callable[[], object]], repeats: int, warmup: int = 1) -> dict[str, float]:
    """Median wall time of each callable (calls interleaved, see `timed`)."""
    return timed(fns, repeats, warmup)[0]


def row(benchmark: str, ours: float, ref: float, unit: str) -> dict:
    """A result row; `ratio` is lingvis / reference (higher is better for throughput units)."""
    return {"benchmark": benchmark, "lingvis": round(ours, 2), "reference": round(ref, 2), "unit": unit,
            "ratio": round(ours / ref, 3)}


def print_rows(rows: list[dict]) -> None:
    for r in rows:
        print(f"{r['benchmark']}: lingvis {r['lingvis']} {r['unit']} vs transformers {r['reference']} "
              f"{r['unit']}  ->  ratio {r['ratio']:.2f}x", flush=True)
