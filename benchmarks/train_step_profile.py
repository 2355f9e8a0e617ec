"""Where a training step of the default presets spends its time, and its model FLOPs utilisation (MFU)
against the fp32 matmul peak measured in the same run.

Presets: gpt-micro with the character vocabulary of `lingvis pretrain gpt` (erf GELU, as that command
builds it), gpt-mini (GPT-2 vocabulary), bert-mini (masked LM on 15% of the positions). One step = forward,
loss, backward, gradient clipping, fused AdamW, zero_grad, the way `Trainer._train_step` runs it.
The machine this runs on is shared, so every time here is CPU time of a one-thread process
(`time.process_time`, torch.set_num_threads(1)): the work a step costs, not how long it waited for a core.
The peak is the best sgemm rate in the same units. FLOPs per token follow benchmarks/mfu.py (6 x matmul
weights + 12 x layers x context x width). Side-by-side rows: erf vs tanh GELU, fused vs foreach AdamW,
SDPA's flash vs math kernel (forward + backward of causal attention).

    python -m benchmarks.train_step_profile [--quick]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F


def cpu_ms(fn, repeats: int, warmup: int = 2) -> float:
    """Median CPU milliseconds of `fn()` (interleave calls of competing variants yourself)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.process_time()
        fn()
        times.append(time.process_time() - t0)
    return statistics.median(times) * 1000


def peak_gflops(quick: bool) -> float:
    best = 0.0
    for n in ((512, 1024) if quick else (512, 1024, 2048)):
        a, b = torch.randn(n, n), torch.randn(n, n)
        best = max(best, 2 * n ** 3 / cpu_ms(lambda: torch.mm(a, b), 5 if quick else 10) / 1e6)
    return best


def flops_per_token(model, T: int) -> float:
    c = model.config
    n = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))
    return 6 * n + 12 * c.n_layer * T * c.n_embd


def gpt_step(preset: str, vocab: int, B: int, T: int, activation: str | None = None, fused: bool = True):
    import lingvis
    from lingvis.train.optim import param_groups

    torch.manual_seed(0)
    kw = {"activation": activation} if activation else {}
    model = lingvis.build(preset, vocab_size=vocab, block_size=T, **kw).train()
    opt = torch.optim.AdamW(param_groups(model, 0.1), lr=1e-4, fused=fused, foreach=None if fused else True)
    x, y = torch.randint(0, vocab, (B, T)), torch.randint(0, vocab, (B, T))

    def step():
        model(x, labels=y).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    return model, step, B * T


VOCAB_BERT = 8000  # the WordPiece size `lingvis pretrain bert` trains by default


def bert_step(B: int = 32, T: int = 128):
    import lingvis
    from lingvis.train.optim import param_groups

    torch.manual_seed(0)
    model = lingvis.build("bert-mini", vocab_size=VOCAB_BERT, head="mlm").train()
    V = model.config.vocab_size
    opt = torch.optim.AdamW(param_groups(model, 0.01), lr=1e-4, fused=True)
    x = torch.randint(5, V, (B, T))  # (B, T)
    chosen = torch.rand(B, T) < 0.15
    target = x[chosen]

    def step():
        out = model(x, attention_mask=torch.ones(B, T, dtype=torch.long), token_type_ids=torch.zeros_like(x),
                    mlm_positions=chosen)
        F.cross_entropy(out.logits, target).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    return model, step, B * T


def top_ops(step, n: int = 6) -> str:
    """The `n` operators with the most self CPU time in two profiled steps, with their shares."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step()
        step()
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events)
    return ", ".join(f"{e.key} {e.self_cpu_time_total / total:.0%}" for e in events[:n])


def run(quick: bool = False, profile_ops: bool = True) -> list[dict]:
    torch.set_num_threads(1)
    reps = 3 if quick else 8
    peak = peak_gflops(quick)
    rows = [{"benchmark": "fp32 sgemm peak (1 thread, CPU time)", "lingvis": round(peak, 1), "reference": round(peak, 1),
             "unit": "GFLOP/CPU-s", "ratio": 1.0}]
    cases = [("gpt-micro (char vocab 82, erf GELU), batch 16 x 128", 128,
              lambda: gpt_step("gpt-micro", 82, 16, 128, "gelu")),
             ("gpt-mini (GPT-2 vocab), batch 8 x 256", 256, lambda: gpt_step("gpt-mini", 50257, 4 if quick else 8, 256)),
             ("bert-mini MLM, batch 32 x 128", 128, lambda: bert_step(8 if quick else 32))]
    for name, T, make in cases:
        model, step, tokens = make()
        ms = cpu_ms(step, reps)
        achieved = flops_per_token(model, T) * tokens / (ms / 1000) / 1e9
        row = {"benchmark": f"{name}: step MFU", "lingvis": round(achieved, 1), "reference": round(peak, 1),
               "unit": "GFLOP/CPU-s", "ratio": round(achieved / peak, 3), "step_ms": round(ms, 1)}
        if profile_ops:
            row["top_ops"] = top_ops(step)
        rows.append(row)
        del model, step
    # erf vs tanh GELU in a whole gpt-micro step (interleaved)
    _, erf, _ = gpt_step("gpt-micro", 82, 16, 128, "gelu")
    _, tanh, _ = gpt_step("gpt-micro", 82, 16, 128, "gelu_tanh")
    t_erf, t_tanh = statistics.median([cpu_ms(erf, 2) for _ in range(reps // 2 + 1)]), \
        statistics.median([cpu_ms(tanh, 2) for _ in range(reps // 2 + 1)])
    rows.append({"benchmark": "gpt-micro step: erf GELU vs tanh GELU", "lingvis": round(t_erf, 1),
                 "reference": round(t_tanh, 1), "unit": "CPU ms", "ratio": round(t_tanh / t_erf, 3)})
    # fused vs foreach AdamW on gpt-mini's parameters
    import lingvis
    from lingvis.train.optim import param_groups

    model = lingvis.build("gpt-mini", vocab_size=50257)
    for p in model.parameters():
        p.grad = torch.randn_like(p) * 1e-3
    fused = torch.optim.AdamW(param_groups(model, 0.1), lr=1e-4, fused=True)
    foreach = torch.optim.AdamW(param_groups(model, 0.1), lr=1e-4, foreach=True)
    rows.append({"benchmark": "AdamW step on gpt-mini (30M params): fused vs foreach", "lingvis":
                 round(cpu_ms(fused.step, reps), 1), "reference": round(cpu_ms(foreach.step, reps), 1), "unit": "CPU ms"})
    rows[-1]["ratio"] = round(rows[-1]["reference"] / rows[-1]["lingvis"], 3)
    # SDPA kernels, causal, gpt-micro's attention shape
    from torch.nn.attention import SDPBackend, sdpa_kernel

    q, k, v = (torch.randn(16, 4, 128, 64, requires_grad=True) for _ in range(3))
    go = torch.randn(16, 4, 128, 64)

    def attn(backend):
        def fn():
            with sdpa_kernel(backend):
                F.scaled_dot_product_attention(q, k, v, is_causal=True).backward(go)
        return fn

    rows.append({"benchmark": "causal attention fwd+bwd (16x4x128x64): SDPA flash vs math kernel",
                 "lingvis": round(cpu_ms(attn(SDPBackend.FLASH_ATTENTION), reps * 2), 2),
                 "reference": round(cpu_ms(attn(SDPBackend.MATH), reps * 2), 2), "unit": "CPU ms"})
    rows[-1]["ratio"] = round(rows[-1]["reference"] / rows[-1]["lingvis"], 3)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats, smaller batches")
    for r in run(ap.parse_args().quick):
        if "top_ops" in r:
            print(f"{r['benchmark']}: {r['lingvis']} of peak {r['reference']} {r['unit']} -> MFU {r['ratio']:.1%} "
                  f"({r['step_ms']} CPU ms/step); top ops: {r['top_ops']}", flush=True)
        else:
            print(f"{r['benchmark']}: {r['lingvis']} vs {r['reference']} {r['unit']} -> {r['ratio']:.2f}x", flush=True)


if __name__ == "__main__":
    main()
