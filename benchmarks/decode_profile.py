"""Where the time of one batch-1 decode step goes (GPT-2 124M shape, fp32, random weights, KV cache).

1. The machine: CPU model, BLAS/oneDNN build, and the memory bandwidth a large copy reaches (read + write).
2. The matrix-vector products alone: every weight shape of the step through F.linear (MKL sgemv for one row),
   oneDNN with a packed weight, and int8 (`_weight_int8pack_mm`, fbgemm W8A8): time, bytes read, GB/s.
3. One decode step as `generate.stream_ids` runs it (forward with the KV cache, logits processing, argmax),
   profiled with torch.profiler: self time per op (GEMV = addmm/mm, attention, norms, elementwise, KV-cache
   writes inside `KVCache.update`, sampling), wall time per step, and the step's time not spent in any op
   (Python and dispatch).

    python -m benchmarks.decode_profile [--steps 32] [--threads 2] [--preset gpt2]
"""
from __future__ import annotations

import argparse
import collections
import functools
import os
import platform
import statistics
import time

import torch
import torch.nn.functional as F

from ._probes import best_seconds, copy_bandwidth, env_set, gemv_bandwidth


def cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def gemv_table(model, repeats: int) -> list[tuple]:
    """(shape, kernel, microseconds per call, GB/s) for each weight shape of the model and each kernel. Each
    timing runs over all the model's weights of that shape in turn (as a decode step does), so that they are
    read from memory, not from a cache that one small matrix would fit in."""
    from lingvis.nn.packed_linear import packed_available
    from lingvis.quant import QuantLinear

    groups = collections.defaultdict(list)
    for m in model.modules():
        if isinstance(m, torch.nn.Linear):
            groups[tuple(m.weight.shape)].append(m)
    rows = []
    for (n, k), mods in sorted(groups.items()):
        x = torch.randn(1, k)
        ws = [m.weight.detach() for m in mods]
        kernels = {"F.linear (MKL sgemv)": ([lambda w=w: F.linear(x, w) for w in ws], 4 * n * k)}
        if packed_available():
            packed = [torch.ops.mkldnn._reorder_linear_weight(w, 1) for w in ws]
            kernels["oneDNN packed"] = ([lambda p=p: torch.ops.mkldnn._linear_pointwise(x, p, None, "none", [], "")
                                         for p in packed], 4 * n * k)
        for label, act in (("int8 weight-only", "float"), ("int8 W8A8 (fbgemm)", "int8")):
            qs = [QuantLinear.from_linear(m, activations=act) for m in mods]
            kernels[label] = ([lambda q=q: q(x) for q in qs], n * k + 4 * n)
        with torch.inference_mode():
            for name, (fns, nbytes) in kernels.items():
                for fn in fns:
                    fn()
                ts = []
                for _ in range(repeats):
                    t0 = time.perf_counter()
                    for fn in fns:
                        fn()
                    ts.append((time.perf_counter() - t0) / len(fns))
                t = statistics.median(ts)
                rows.append((f"{n}x{k} (x{len(mods)})", name, t * 1e6, nbytes / t / 1e9))
    return rows


CATEGORIES = [  # (category, op-name predicate), first match wins
    ("GEMV (addmm/mm/linear)", lambda n: n in ("aten::addmm", "aten::mm", "aten::linear", "aten::matmul",
                                               "mkldnn::_linear_pointwise")),
    ("attention (SDPA)", lambda n: "attention" in n or n in ("aten::_softmax", "aten::bmm", "aten::baddbmm")),
    ("norms", lambda n: "norm" in n),
    ("activations and residual adds", lambda n: n in ("aten::gelu", "aten::add", "aten::add_", "aten::mul",
                                                      "aten::silu", "aten::tanh")),
    ("copies, views, indexing", lambda n: n in ("aten::copy_", "aten::slice", "aten::view", "aten::reshape",
                                                "aten::transpose", "aten::split_with_sizes", "aten::split",
                                                "aten::select", "aten::contiguous", "aten::clone",
                                                "aten::index", "aten::embedding", "aten::index_select",
                                                "aten::as_strided", "aten::unsqueeze", "aten::expand",
                                                "aten::_reshape_alias", "aten::t", "aten::narrow",
                                                "aten::empty", "aten::empty_strided", "aten::arange",
                                                "aten::zeros", "aten::fill_", "aten::zero_", "aten::to",
                                                "aten::_to_copy", "aten::detach", "aten::alias",
                                                "aten::_unsafe_view", "aten::lift_fresh", "aten::resolve_conj",
                                                "aten::resolve_neg", "aten::cat")),
]


def profile_steps(model, steps: int, prompt_len: int = 16) -> dict:
    """Profile `steps` decode steps after a prompt, with labelled regions for the KV-cache writes and the
    sampling; returns per-step milliseconds by category."""
    from torch.profiler import ProfilerActivity, profile, record_function

    from lingvis.generate import SamplingConfig, pick, process_logits
    from lingvis.nn.cache import KVCache
    from lingvis.nn.packed_linear import packed_linears

    cfg = SamplingConfig(max_new_tokens=steps)
    ids = torch.randint(0, model.config.vocab_size, (1, prompt_len), generator=torch.Generator().manual_seed(0))
    update = KVCache.update

    def labelled_update(self, *a, **kw):
        with record_function("kv_cache.update"):
            return update(self, *a, **kw)

    def run(n, prof=None):
        cache = model.new_cache(1, prompt_len + n + 1)
        logits = model(ids, cache=cache, last_only=True)[:, -1]
        nxt = logits.argmax(-1)
        walls, cpus = [], []
        for _ in range(n):
            t0, c0 = time.perf_counter(), time.process_time()
            with record_function("forward"):
                logits = model(nxt[:, None], cache=cache, last_only=True)[:, -1]
            with record_function("sampling"):
                nxt = pick(process_logits(logits.float(), None, cfg), cfg, None)
            walls.append(time.perf_counter() - t0)
            cpus.append(time.process_time() - c0)
        return walls, cpus

    with torch.inference_mode(), packed_linears(model):
        run(4)
        walls, cpus = run(steps)  # per step without the profiler
        plain, cpu = statistics.median(walls), statistics.median(cpus)
        KVCache.update = labelled_update
        try:
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                run(steps)
        finally:
            KVCache.update = update
    events = prof.key_averages()
    by_cat = collections.Counter()
    per_op = {}
    labelled = {}
    for e in events:
        if e.key in ("forward", "sampling", "kv_cache.update"):
            labelled[e.key] = e.cpu_time_total / 1e3 / steps  # ms per step, children included
            continue
        if e.key.startswith("ProfilerStep") or not e.key.startswith(("aten::", "mkldnn::", "quantized::")):
            continue
        cat = next((c for c, pred in CATEGORIES if pred(e.key)), "other ops")
        by_cat[cat] += e.self_cpu_time_total / 1e3 / steps
        per_op[e.key] = (e.count / steps, e.self_cpu_time_total / 1e3 / steps)
    return {"wall_ms": plain * 1e3, "cpu_ms": cpu * 1e3, "categories": dict(by_cat), "labelled": labelled,
            "per_op": per_op}


def hugepage_copies(mods) -> list | None:
    """Native kernels over copies of the fp32 weights in one private anonymous mapping advised MADV_HUGEPAGE (THP
    in `madvise` mode), 2 MB-aligned (`native.hugepages.hugepage_empty`; it was a shared `mmap(-1, n)`, which is
    shmem and never got huge pages): fewer TLB misses while streaming the weights. None for int8 layers."""
    import mmap

    from lingvis import native
    from lingvis.native.hugepages import hugepage_empty

    ws = [m.weight.detach() for m in mods if type(m) is torch.nn.Linear]
    total = sum(w.numel() for w in ws) * 4
    if not ws or not hasattr(mmap, "MADV_HUGEPAGE"):
        return None
    flat, out, o = hugepage_empty(total).view(torch.float32), [], 0
    for m in mods:
        if type(m) is not torch.nn.Linear:
            return None
        w = flat[o:o + m.weight.numel()].view_as(m.weight)
        w.copy_(m.weight.detach())
        o += w.numel()
        out.append(native.LinearF32(w, m.bias))
    return out


def with_env(name: str, value: str, fn):
    """`fn` run with the environment variable `name` set to `value` (restored afterwards)."""
    def run():
        with env_set(name, value):
            return fn()
    return run


def linears(mods, xs, steps: int):
    """Every layer of `mods` on its one-row input, `steps` times over (the products of `steps` decode steps)."""
    def run():
        for _ in range(steps):
            for m, x in zip(mods, xs):
                m(x)
    return run


def step_split(model, steps: int, repeats: int, prompt_len: int = 16, compile: bool = True) -> dict:
    """Per-token (wall ms, CPU ms) of the parts of a decode step, medians over `repeats` interleaved rounds of
    `steps` tokens: the model's linear layers alone (one row each, as one step calls them), one step through
    `model.forward` (the general path), the fused step (lingvis/decode_step.py), the compiled static-cache step,
    and whole `model.generate` calls per new token with the general, fused and compiled steps (the loop's
    own share = generate minus its step). Rows marked "torch kernels" run with LINGVIS_NATIVE=0 (MKL's gemv,
    fbgemm, the int8pack kernel), the others with lingvis.native's kernels where they apply: "per op" with
    LINGVIS_NATIVE_STEP=0 (one native call per product), "whole step" as one native call per token (fp32 models
    of plain layers: native.WholeStep)."""
    from lingvis import native
    from lingvis.decode_step import FusedStep, StaticStep, compiled_cache_len
    from lingvis.nn.packed_linear import packed_linears
    from lingvis.quant import QuantLinear

    ids = torch.randint(0, model.config.vocab_size, (1, prompt_len), generator=torch.Generator().manual_seed(0))
    lins = [m for m in model.modules() if isinstance(m, (torch.nn.Linear, QuantLinear))]
    xs = [torch.randn(1, 1, m.in_features) for m in lins]
    cache_len = compiled_cache_len(prompt_len + steps + 1, model.context_length)
    on = native.available()
    fast = [native.LinearF32(m.weight, m.bias) if on and type(m) is torch.nn.Linear else m for m in lins]

    def stepper(kind):
        def run():
            cache = model.new_cache(1, cache_len)
            nxt = model(ids, cache=cache, last_only=True)[:, -1].argmax(-1)  # (1,)
            step = {"forward": None, "fused": FusedStep, "compiled": compiled_step,
                    "fused, torch kernels": lambda m, c: FusedStep(m, c, use_native=False)}[kind]
            step = step(model, cache) if step is not None else None
            t0, c0 = time.perf_counter(), time.process_time()
            for _ in range(steps):
                logits = step(nxt) if step is not None else model(nxt[:, None], cache=cache, last_only=True)[:, -1]
                nxt = logits.argmax(-1)
            return time.perf_counter() - t0, time.process_time() - c0
        return run

    compiled = {}

    def compiled_step(model, cache):
        if "step" not in compiled:
            t0 = time.perf_counter()
            compiled["step"] = StaticStep(model, cache, compile=True, options={"freezing": True})
            compiled["step"](torch.zeros(1, dtype=torch.long))  # compiles (writes one column: the run rebuilds it)
            compiled["seconds"] = time.perf_counter() - t0
        compiled["step"].cache = cache
        return compiled["step"]

    def generate(kind):
        def run():
            os.environ["LINGVIS_FUSED_STEP"] = "0" if kind == "general" else "1"
            try:
                model.generate(ids, max_new_tokens=steps, compile=kind == "compiled")
            finally:
                os.environ.pop("LINGVIS_FUSED_STEP")
        return run

    torch_kernels = functools.partial(with_env, "LINGVIS_NATIVE", "0")
    parts = {"linears alone, torch kernels": torch_kernels(linears(lins, xs, steps)),
             "step: model.forward": torch_kernels(stepper("forward")),
             "step: fused, torch kernels": torch_kernels(stepper("fused, torch kernels")),
             "generate, general step": torch_kernels(generate("general")),
             "generate, fused step, torch kernels": torch_kernels(generate("fused"))}
    if on:
        per_op = functools.partial(with_env, "LINGVIS_NATIVE_STEP", "0")  # native products, one call each
        parts.update({"linears alone, native": linears(fast, xs, steps),
                      "step: fused, native kernels per op": per_op(stepper("fused")),
                      "step: fused, whole step native (one call)": stepper("fused"),
                      "generate, fused step, native kernels per op": per_op(generate("fused")),
                      "generate, fused step, whole step native (the default)": generate("fused")})
        huge = hugepage_copies(lins)
        if huge is not None:
            parts["linears alone, native, hugepage-advised copies"] = linears(huge, xs, steps)
    if compile:
        parts["step: compiled"] = stepper("compiled")
        parts["generate, compiled step"] = generate("compiled")
    with torch.inference_mode(), packed_linears(model):
        res = time_parts(parts, steps, repeats)
    res["compile seconds"] = compiled.get("seconds")
    return res


def time_parts(parts: dict, steps: int, repeats: int) -> dict[str, tuple[float, float]]:
    """Per-token (wall ms, CPU ms) of each part, medians over `repeats` interleaved rounds after one warm-up
    round; a part may return its own (wall s, CPU s) for the `steps` tokens (setup left out of the timing)."""
    timings = {k: [] for k in parts}
    for f in parts.values():
        f()  # warm-up (and compile)
    for _ in range(repeats):
        for k, f in parts.items():
            t0, c0 = time.perf_counter(), time.process_time()
            out = f()
            w, c = out if isinstance(out, tuple) else (time.perf_counter() - t0, time.process_time() - c0)
            timings[k].append((w / steps * 1e3, c / steps * 1e3))
    return {k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v)) for k, v in timings.items()}


def read_probes() -> str:
    """The machine's read limits in this run: a 512 MB copy (read + write), and the weight bytes per second of
    one matrix-vector product over a 512 MB matrix through F.linear (MKL) and through lingvis.native."""
    from lingvis import native

    line = f"copy {copy_bandwidth():.1f} GB/s (read + write), 512 MB GEMV: F.linear {gemv_bandwidth():.1f} GB/s"
    if native.available():
        w, x = torch.randn(65536, 2048), torch.randn(1, 2048)
        k = native.LinearF32(w, None)
        line += f", native {w.numel() * 4 / best_seconds(lambda: k(x)) / 1e9:.1f} GB/s"
    return line


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="gpt2", help="model shape (random weights)")
    ap.add_argument("--steps", type=int, default=32, help="decode steps profiled")
    ap.add_argument("--threads", type=int, default=2, help="torch threads")
    ap.add_argument("--repeats", type=int, default=7, help="timed repeats per GEMV kernel (median)")
    ap.add_argument("--split", action="store_true", help="only the split of the step: linears alone, "
                    "model.forward, the fused and compiled steps and generate's loop (per-token wall and CPU ms)")
    ap.add_argument("--no-compile", action="store_true", help="with --split: leave out the compiled step")
    ap.add_argument("--int8", choices=["weights", "w8a8"], help="with --split: the model quantised to int8 "
                    "(weight-only or W8A8) first")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    import lingvis

    torch.manual_seed(0)
    model = lingvis.build(args.preset).eval()
    if args.split:
        if args.int8:
            from lingvis.quant import quantize_int8_mode, weight_bytes
            quantize_int8_mode(model, args.int8)
        else:
            from lingvis.quant import weight_bytes
        from lingvis import native
        mb = sum(b.numel() * b.element_size() for m in model.modules() if hasattr(m, "in_features")
                 for n, b in [*m.named_parameters(recurse=False), *m.named_buffers(recurse=False)]
                 if n in ("weight", "weight_int8")) / 1e6
        print(f"{args.preset}{f' int8 {args.int8}' if args.int8 else ''}, {args.threads} threads, native kernels "
              f"{'on' if native.available() else 'off'}, linear weights {mb:.1f} MB per token (model "
              f"{weight_bytes(model) / 1e6:.1f} MB), {args.steps} tokens per round, median of {args.repeats} "
              f"rounds; load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
        print(f"read probes: {read_probes()}", flush=True)
        r = step_split(model, args.steps, args.repeats, compile=not (args.no_compile or args.int8))
        secs = r.pop("compile seconds")
        print("| part | ms per token (wall) | ms per token (CPU) | GB/s of linear weights (wall) |")
        print("|---|---:|---:|---:|")
        for k, (w, c) in r.items():
            print(f"| {k} | {w:.2f} | {c:.2f} | {mb / w:.1f} |")
        if secs is not None:
            print(f"compiling the step took {secs:.1f} s (once per model and cache size)")
        print(f"load average after: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
        return
    print(f"CPU: {cpu_name()} ({os.cpu_count()} CPUs), torch {torch.__version__}, {args.threads} threads; "
          f"MKL {torch.backends.mkl.is_available()}, oneDNN {torch.backends.mkldnn.is_available()}; "
          f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    bw = copy_bandwidth()
    print(f"large copy: {bw:.1f} GB/s (read + write)\n")
    print("| weight (count per step) | kernel | us per call | GB/s of weights |\n|---|---|---:|---:|")
    for shape, kernel, us, gbs in gemv_table(model, args.repeats):
        print(f"| {shape} | {kernel} | {us:.0f} | {gbs:.1f} |")
    r = profile_steps(model, args.steps)
    wall = r["wall_ms"]
    ops = sum(r["categories"].values())
    print(f"\none decode step: {wall:.2f} ms wall, {r['cpu_ms']:.2f} ms CPU time (all threads) without the "
          f"profiler ({1e3 / wall:.1f} tokens/s); "
          f"under the profiler the ops' self times add up to {ops:.2f} ms per step\n")
    print("| part of the step | ms per step | share of the ops' time |\n|---|---:|---:|")
    for cat, ms in sorted(r["categories"].items(), key=lambda kv: -kv[1]):
        print(f"| {cat} | {ms:.2f} | {100 * ms / ops:.0f}% |")
    lab = r["labelled"]
    print(f"\nlabelled regions (children included, profiler on): forward {lab.get('forward', 0):.2f} ms, "
          f"KV-cache updates {lab.get('kv_cache.update', 0):.3f} ms, sampling {lab.get('sampling', 0):.3f} ms")
    print("\ntop ops by self time per step:")
    for name, (calls, ms) in sorted(r["per_op"].items(), key=lambda kv: -kv[1][1])[:12]:
        print(f"  {name:<32} {calls:6.1f} calls  {ms:7.3f} ms")
    weight_bytes = sum(m.weight.numel() * 4 for m in model.modules() if isinstance(m, torch.nn.Linear))
    print(f"\nweights read per step {weight_bytes / 1e6:.0f} MB: at the copy bandwidth ({bw:.1f} GB/s, counting "
          f"read + write) a step could take {weight_bytes / (bw / 2 * 1e9) * 1e3:.1f} ms if reading weights at "
          f"half the copy rate, or {weight_bytes / (bw * 1e9) * 1e3:.1f} ms at the full rate; measured "
          f"{wall:.1f} ms ({weight_bytes / (wall / 1e3) / 1e9:.1f} GB/s achieved)")
    print(f"load average after: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
