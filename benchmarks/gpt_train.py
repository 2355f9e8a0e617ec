"""Training-step tokens/s, lingvis `Trainer` step vs a transformers `GPT2LMHeadModel` step, same weights.

Model: the `gpt-mini` preset (6 layers, width 384, 6 heads, context 256, GPT-2 vocabulary 50257), fp32,
batch 8 x 256 tokens, dropout 0. One step = forward, next-token cross-entropy, backward, gradient clipping
at 1.0, AdamW step (the same torch AdamW settings on both sides: weight-decay groups, betas (0.9, 0.95);
fused, which is also the transformers Trainer default on torch >= 2.8), zero_grad. The lingvis side runs
the real `Trainer._train_step` (data loading, learning-rate schedule and the NaN guard included); the
transformers side computes the loss with its own `labels=` path.

    python -m benchmarks.gpt_train [--quick]
"""
from __future__ import annotations

import argparse
import tempfile

import torch

from ._timing import median_seconds, print_rows, row

BATCH, CONTEXT = 8, 256


def build_pair(tmp: str, vocab_size: int):
    import transformers

    import lingvis

    torch.manual_seed(0)
    ours = lingvis.build("gpt-mini", vocab_size=vocab_size)
    lingvis.save(ours, tmp)  # GPT-2 files through the production exporter
    ref = transformers.GPT2LMHeadModel.from_pretrained(tmp, dtype=torch.float32)
    return ours.train(), ref.train()


def our_step(model, tmp: str):
    """A lingvis Trainer on random tokens; returns a callable running one real training step."""
    from lingvis.data.packing import PackedLMDataset
    from lingvis.tasks.lm import CausalLMTask
    from lingvis.train.config import TrainConfig
    from lingvis.train.trainer import Trainer

    ids = torch.randint(0, model.config.vocab_size, (BATCH * CONTEXT * 8 + 1,),
                        generator=torch.Generator().manual_seed(1))
    cfg = TrainConfig(max_steps=10_000, batch_size=BATCH, lr=1e-4, warmup_steps=10, progress=False, device="cpu")
    trainer = Trainer(model, CausalLMTask(), PackedLMDataset(ids, CONTEXT), None, cfg, tmp)
    batches = trainer._train_batches()
    return lambda: trainer._train_step(batches)


def ref_step(model):
    """The same step written the way a transformers user trains GPT-2."""
    from lingvis.train.optim import param_groups

    opt = torch.optim.AdamW(param_groups(model, 0.1), lr=1e-4, betas=(0.9, 0.95), fused=True)
    g = torch.Generator().manual_seed(1)
    data = [torch.randint(0, model.config.vocab_size, (BATCH, CONTEXT), generator=g) for _ in range(8)]
    state = {"i": 0}

    def step():
        x = data[state["i"] % len(data)]
        state["i"] += 1
        loss = model(input_ids=x, labels=x).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return float(loss.detach())

    return step


def bench(vocab_size: int, repeats: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        ours, ref = build_pair(tmp, vocab_size)
        fns = {"ours": our_step(ours, tmp), "ref": ref_step(ref)}
        t = median_seconds(fns, repeats=repeats, warmup=1)
    n = BATCH * CONTEXT
    name = f"gpt-mini train step (6x384, ctx 256, batch 8, vocab {vocab_size}, fp32, AdamW)"
    return row(name, n / t["ours"], n / t["ref"], "tokens/s")


def run(quick: bool = False, vocab_size: int | None = None, threads: int = 2) -> list[dict]:
    """The GPT-2 vocabulary (the target row); in a full run also a character vocabulary (65), where the
    LM head is negligible and the transformer blocks and optimizer dominate."""
    torch.set_num_threads(threads)
    vocabs = [vocab_size] if vocab_size else ([50257] if quick else [50257, 65])
    return [bench(v, repeats=2 if quick else 5) for v in vocabs]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="two timed steps instead of five")
    ap.add_argument("--vocab-size", type=int, help="only this vocabulary size")
    ap.add_argument("--threads", type=int, default=2, help="torch intra-op threads (both sides)")
    args = ap.parse_args()
    print_rows(run(args.quick, args.vocab_size, args.threads))


if __name__ == "__main__":
    main()
