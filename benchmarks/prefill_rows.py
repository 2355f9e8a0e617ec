"""A short prompt's prefill at batch 1: the model's forward (`model(ids, cache=cache, last_only=True)` inside
`packed_linears`, as `generate` and `stream_speculative` run it) against the native whole step over chunks of up
to `--chunks` positions (`decode_step.FusedStep.rows`: every weight read once per chunk, each row the one-row
step's arithmetic), on the speculative benchmark's target shape (gpt-micro: 4 layers x 256, context 256, a
65-token vocabulary; random weights: the cost does not depend on them). Prints per-thread CPU milliseconds (best of
`--repeats`, the variants interleaved in one process), each variant's ratio to the forward and the largest
|difference| of the last logits.

    python -m benchmarks.prefill_rows [--threads 1] [--lengths 96 170] [--repeats 7]
"""
from __future__ import annotations

import argparse
import os
import time

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--lengths", type=int, nargs="+", default=[96, 170])
    ap.add_argument("--chunks", type=int, nargs="+", default=[16, 32, 64])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--vocab", type=int, default=65, help="65: the speculative benchmark's char vocabulary (the native "
                    "rows compute every row's logits, the forward only the last's)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from lingvis.decode_step import step_for
    from lingvis.models import build
    from lingvis.native import STEP_MAX_ROWS
    from lingvis.nn.packed_linear import packed_linears

    torch.manual_seed(0)
    model = build("gpt-micro", dropout=0.0, block_size=256, vocab_size=args.vocab).eval()
    clock = time.thread_time if args.threads == 1 else time.process_time
    print(f"[prefill_rows] gpt-micro, {sum(p.numel() for p in model.parameters()):,} params, {args.threads} thread(s), "
          f"load average {os.getloadavg()[0]:.1f}; CPU ms, best of {args.repeats}")
    for T in args.lengths:
        ids = torch.randint(0, model.config.vocab_size, (1, T))

        def forward():
            cache = model.new_cache(1, T + 64, ring=False)
            return model(ids, cache=cache, last_only=True)[0, -1]  # (V,)

        def rows(chunk: int):
            def run():
                cache = model.new_cache(1, T + 64, ring=False)
                logits = model(ids[:, :1], cache=cache, last_only=True)[0, -1]  # allocates the cache buffers
                step = step_for(model, cache)
                p = 1
                while p < T:
                    n = min(chunk, T - p)
                    logits = step.rows(ids[0, p:p + n])[-1]  # (V,)
                    p += n
                return logits
            return run

        variants = {"forward": forward, **{f"native rows, chunks of {c}": rows(c) for c in args.chunks
                                           if c <= STEP_MAX_ROWS}}
        with torch.inference_mode(), packed_linears(model):
            ref = forward()
            diff = {k: float((f() - ref).abs().max()) for k, f in variants.items()}
            best = dict.fromkeys(variants, float("inf"))
            for _ in range(args.repeats):
                for k, f in variants.items():
                    t0 = clock()
                    f()
                    best[k] = min(best[k], clock() - t0)
        for k in variants:
            print(f"T = {T:4d}  {k:28s} {best[k] * 1e3:7.2f} ms  x{best['forward'] / best[k]:.2f} vs forward  "
                  f"max |diff| {diff[k]:.1e}")


if __name__ == "__main__":
    main()
