"""Speculative decoding vs plain fp32 greedy decoding, same model, same prompts, tokens checked identical.

Random weights neither copy their prompt nor agree with a draft, so this benchmark first trains (once, cached in
`--workdir`) two target/draft pairs on the embedded Shakespeare corpus with one char tokenizer:
- cache-resident: a target GPT of 4 layers x 256 (the gpt-micro shape, context 256; 3.2 M parameters, 12.8 MB of
  fp32 weights, which sit in the 32 MB L3 of the EPYC this was tuned on, so a one-row step is not bound by reading
  them) and a draft GPT of 1 layer x 128, `--steps` steps each;
- weight-bound: a target GPT of 6 layers x 384 (the gpt-mini shape, context 256; 10.8 M parameters, 43 MB: a
  one-row step streams the weights from memory, as every real LLM's does) for `--big-steps` steps (~7 CPU minutes
  at 1 thread), with the same draft (a draft fine-tuned on this target's own greedy continuations kept no more of
  its proposals: docs/decoding.md, 2026-12-07 fourth session).
Then, for each pair, batch 1, `--new` new tokens per prompt, on held-out text:
- repeated spans ("extraction"): a held-out passage, a blank line, then the passage's first 48 characters
  again: continuing means copying. Plain greedy vs prompt lookup, and vs the draft model;
- open text: the first 96 characters of a held-out passage. Plain greedy vs the draft model, and vs prompt
  lookup.
Prints tokens/s, the ratio to plain greedy (end to end, and decode only: the prompt's forward and first token, which
every method shares, timed alone and taken off both), tokens per forward pass of the target, and whether every
continuation is token-identical to plain greedy decoding. The server rows send the same prompts one request at a
time through the batching engine, without and with `Speculation("prompt-lookup")` (serve/speculation.py).

    python -m benchmarks.speculative [--quick] [--workdir runs/bench-speculative] [--steps 300] [--big-steps 200]
"""
from __future__ import annotations

import argparse
import os
import threading
from pathlib import Path

import torch

from ._small_gpt import train_small_gpt
from ._timing import timed

TARGET = dict(preset="gpt-micro", overrides={"dropout": 0.0})
DRAFT = dict(preset="gpt-nano", overrides={"dropout": 0.0, "n_embd": 128, "n_head": 4, "n_layer": 1})
BIG_TARGET = dict(preset="gpt-mini", overrides={"dropout": 0.0})  # 6 x 384: 43 MB of fp32 weights
BLOCK = 256


def models(workdir: Path, steps: int, big_steps: int = 200, only: str | None = None) -> tuple[list[tuple], object]:
    """[(label, target, draft)] for the two pairs, or the `only` one ('small' / 'big'), trained on first use, then
    loaded from `workdir`; and the tokenizer."""
    import lingvis

    train_small_gpt(workdir / "target", steps, "speculative", tokenizer="char", block_size=BLOCK, **TARGET)
    if not (workdir / "tokenizer" / "tokenizer.json").is_file():  # the others train with the target's tokenizer
        lingvis.load_tokenizer(workdir / "target").save(workdir / "tokenizer")
    tok_dir = str(workdir / "tokenizer")
    train_small_gpt(workdir / "draft", steps, "speculative", tokenizer=tok_dir, block_size=BLOCK, **DRAFT)
    if only != "small":
        train_small_gpt(workdir / "target-mini", big_steps, "speculative", tokenizer=tok_dir, block_size=BLOCK,
                        **BIG_TARGET)
    tok = lingvis.load_tokenizer(workdir / "target")
    draft = lingvis.load(workdir / "draft").eval()
    assert lingvis.load_tokenizer(workdir / "draft").get_vocab() == tok.get_vocab()
    pairs = []
    if only != "big":
        pairs.append(("target 4 x 256 (13 MB, in L3)", lingvis.load(workdir / "target").eval(), draft))
    if only != "small":
        pairs.append(("target 6 x 384 (43 MB, weight-bound)", lingvis.load(workdir / "target-mini").eval(), draft))
    return pairs, tok


def prompt_sets(tok, n: int) -> dict[str, list[torch.Tensor]]:
    from lingvis.recipes.gpt import GPTPretrainArgs, load_corpus

    _, val = load_corpus(GPTPretrainArgs(out=""))
    text = "\n".join(val)
    starts = [i * (len(text) // (n + 1)) for i in range(n)]
    passages = [text[s:s + 120] for s in starts]
    rep = [p + "\n\n" + p[:48] for p in passages]
    open_ = [text[s + 500:s + 596] for s in starts]
    enc = lambda ts: [torch.tensor([tok.encode(t)]) for t in ts]  # noqa: E731
    return {"repeated spans": enc(rep), "open text": enc(open_)}


def bench(target, draft, prompts: list[torch.Tensor], new: int, repeats: int) -> list[dict]:
    from lingvis.generate import SamplingConfig
    from lingvis.serve.batching import Engine
    from lingvis.serve.sequences import SeqSpec
    from lingvis.serve.speculation import Speculation
    from lingvis.speculative import DEFAULT_DRAFT_TOKENS, stream_speculative

    cfg = SamplingConfig(max_new_tokens=new)
    outs: dict[str, list] = {}
    stats: dict[str, dict] = {}

    def prefill():  # the prompt's forward and the first token, the part plain and speculative share
        for p in prompts:
            target.generate(p, max_new_tokens=1)

    def plain():
        outs["plain"] = [target.generate(p, max_new_tokens=new)[0, p.shape[1]:].tolist() for p in prompts]

    def spec(name, proposer, k):
        def fn():
            res, total = [], {"steps": 0, "accepted": 0, "proposed": 0}
            for p in prompts:
                st = {}
                res.append([int(t) for t in stream_speculative(target, p, cfg, proposer, k, stats=st)])
                for key in total:
                    total[key] += st[key]
            outs[name], stats[name] = res, total
        return fn

    def served(name, speculation):
        """One request at a time through the server's batching engine (serve/speculation.py)."""
        def fn():
            eng = Engine(target, max_batch=8, speculation=speculation).start()
            try:
                res = []
                for p in prompts:
                    done, toks = threading.Event(), []

                    def sink(events, toks=toks, done=done):
                        toks += [e.token for e in events if e.token is not None]
                        if any(e.finish for e in events):
                            done.set()
                    eng.submit([SeqSpec(p[0].tolist(), cfg)], sink)
                    done.wait()
                    res.append(toks)
                st = eng.stats()
            finally:
                eng.close()
            outs[name] = res
            stats[name] = {"steps": st["steps"], "accepted": st["draft_accepted"], "proposed": st["draft_proposed"]}
        return fn

    kl, kd = DEFAULT_DRAFT_TOKENS["prompt-lookup"], DEFAULT_DRAFT_TOKENS["draft"]  # what a user gets
    fns = {"prefill": prefill, "plain": plain,
           f"prompt lookup (k={kl})": spec(f"prompt lookup (k={kl})", "prompt-lookup", kl),
           f"draft model (k={kd})": spec(f"draft model (k={kd})", draft, kd),
           "server engine, plain": served("server engine, plain", None),
           f"server engine, prompt lookup (k={kl})": served(f"server engine, prompt lookup (k={kl})",
                                                            Speculation("prompt-lookup", kl))}
    t, c = timed(fns, repeats)
    n_tok = sum(len(o) for o in outs["plain"])
    rows = []
    for name in fns:
        if name in ("prefill", "plain", "server engine, plain"):
            continue
        base = "server engine, plain" if name.startswith("server") else "plain"
        s = stats[name]
        rows.append({"method": name, "tokens_per_s": n_tok / t[name], "plain_tokens_per_s": n_tok / t[base],
                     "ratio": t[base] / t[name], "cpu_ratio": c[base] / c[name],
                     # decode only (generate rows): the shared prompt forward, timed alone, taken off both
                     "decode_ratio": None if base != "plain" else (t[base] - t["prefill"]) / (t[name] - t["prefill"]),
                     "cpu_decode_ratio": None if base != "plain"
                     else (c[base] - c["prefill"]) / (c[name] - c["prefill"]),
                     "tokens_per_forward": n_tok / s["steps"],
                     "accepted_pct": 100 * s["accepted"] / max(s["proposed"], 1),
                     "identical": outs[name] == outs["plain"]})
    return rows


def run(quick: bool = False, threads: int = 2) -> list[dict]:
    """`make bench` entry (trains the three models on first use, into runs/bench-speculative; the 6 x 384 target
    alone took 393 CPU s at 1 thread on the EPYC)."""
    torch.set_num_threads(threads)
    pairs, tok = models(Path("runs/bench-speculative"), 300)
    n, repeats = (4, 1) if quick else (8, 3)
    rows, sets = [], prompt_sets(tok, n)
    for label, target, draft in pairs:
        for kind, prompts in sets.items():
            for r in bench(target, draft, prompts, 64, repeats):
                rows.append({"benchmark": f"speculative decoding, {label}, {kind}: {r['method']} vs plain greedy "
                             f"({n} prompts x 64 tokens)", "lingvis": round(r["tokens_per_s"], 1),
                             "reference": round(r["plain_tokens_per_s"], 1), "unit": "tokens/s",
                             "ratio": round(r["ratio"], 3), "cpu_time_ratio": round(r["cpu_ratio"], 3),
                             "decode_only_ratio": r["decode_ratio"] and round(r["decode_ratio"], 3),
                             "decode_only_cpu_ratio": r["cpu_decode_ratio"] and round(r["cpu_decode_ratio"], 3),
                             "tokens_per_forward": round(r["tokens_per_forward"], 2), "identical": r["identical"]})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer prompts and repeats")
    ap.add_argument("--workdir", default="runs/bench-speculative", help="where the trained models are cached")
    ap.add_argument("--steps", type=int, default=300, help="training steps of the small target and draft (first run)")
    ap.add_argument("--big-steps", type=int, default=200, help="training steps of the 6 x 384 target (first run)")
    ap.add_argument("--new", type=int, default=64, help="new tokens per prompt")
    ap.add_argument("--threads", type=int, default=2, help="torch threads")
    ap.add_argument("--only", choices=["small", "big"], help="one pair only (default both)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    pairs, tok = models(Path(args.workdir), args.steps, args.big_steps, args.only)
    n, repeats = (4, 1) if args.quick else (8, 3)
    sets = prompt_sets(tok, n)
    for label, target, draft in pairs:
        print(f"[speculative] {label}: {sum(p.numel() for p in target.parameters()):,} params, draft "
              f"{sum(p.numel() for p in draft.parameters()):,}; batch 1, {args.new} new tokens x {n} prompts; "
              f"load average {os.getloadavg()[0]:.1f}", flush=True)
        for kind, prompts in sets.items():
            for r in bench(target, draft, prompts, args.new, repeats):
                print(f"{kind:>15} | {r['method']:<20} | {r['tokens_per_s']:7.1f} tok/s vs plain "
                      f"{r['plain_tokens_per_s']:7.1f} -> {r['ratio']:.2f}x wall, {r['cpu_ratio']:.2f}x CPU time"
                      + (f", decode only {r['decode_ratio']:.2f}x wall / {r['cpu_decode_ratio']:.2f}x CPU"
                         if r["decode_ratio"] else "") + " | "
                      f"{r['tokens_per_forward']:.2f} tokens/forward"
                      f" | {r['accepted_pct']:.0f}% drafts kept | identical tokens: {r['identical']}", flush=True)
    print(f"[speculative] load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
