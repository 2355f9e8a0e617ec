"""int8 quality against llama.cpp's q8_0 on a trained model: held-out perplexity of the same weights in fp32,
lingvis int8 (weight-only and W8A8) and llama.cpp f32 / q8_0 (the GGUF export of the same model).

Random weights have no meaningful perplexity, so this trains (once, cached in `--workdir`) a GPT of the
gpt-micro shape (4 layers x 256, context 256) with a byte-level BPE tokenizer on the embedded Shakespeare
corpus, exports it with `lingvis convert`'s GGUF writer (f32 and q8_0), and scores non-overlapping 256-token
windows of held-out text with every engine (each token predicted from the window's earlier tokens). The
goal of issue 24: lingvis int8 decodes at least as fast as llama.cpp q8_0 (benchmarks/llamacpp_decode.py) at
a held-out perplexity within 1% of q8_0's.

    python -m benchmarks.quant_perplexity [--workdir runs/bench-quant-ppl] [--steps 800] [--windows 24]
"""
from __future__ import annotations

import argparse
import copy
import math
import os
from pathlib import Path

import torch
import torch.nn.functional as F

from ._small_gpt import train_small_gpt

BLOCK = 256


def windows(tok, n: int) -> list[list[int]]:
    from lingvis.recipes.gpt import GPTPretrainArgs, load_corpus

    _, val = load_corpus(GPTPretrainArgs(out=""))
    ids = tok.encode("\n".join(val))
    if len(ids) < n * BLOCK:
        raise ValueError(f"held-out text has {len(ids)} tokens, fewer than {n} windows of {BLOCK}")
    return [ids[i * BLOCK:(i + 1) * BLOCK] for i in range(n)]


@torch.inference_mode()
def lingvis_ppl(model, wins: list[list[int]]) -> float:
    nll, count = 0.0, 0
    for w in wins:
        x = torch.tensor([w])
        logits = model(x)[0, :-1].float()  # (T - 1, V)
        nll += float(F.cross_entropy(logits, x[0, 1:], reduction="sum"))
        count += len(w) - 1
    return math.exp(nll / count)


def llama_cpp_ppl(path: Path, wins: list[list[int]], threads: int) -> float:
    import numpy as np

    from .llamacpp_decode import open_llama

    llm = open_llama(path, threads, BLOCK, logits_all=True)
    nll, count = 0.0, 0
    for w in wins:
        llm.reset()
        llm.eval(w)
        scores = torch.from_numpy(np.array(llm.scores[:len(w) - 1], dtype=np.float32))  # (T - 1, V)
        nll += float(F.cross_entropy(scores, torch.tensor(w[1:]), reduction="sum"))
        count += len(w) - 1
    return math.exp(nll / count)


def main(argv=None) -> None:
    import lingvis
    from lingvis.interop.gguf_export import export_gguf
    from lingvis.quant import quantize_int8

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", default="runs/bench-quant-ppl", help="where the trained model and GGUF files go")
    ap.add_argument("--steps", type=int, default=800, help="training steps of the cached model")
    ap.add_argument("--windows", type=int, default=24, help=f"held-out windows of {BLOCK} tokens")
    ap.add_argument("--threads", type=int, default=2, help="threads of every engine")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    work = Path(args.workdir)
    train_small_gpt(work / "model", args.steps, "quant-ppl", preset="gpt-micro", tokenizer="bpe", vocab_size=2048,
                    block_size=BLOCK, overrides={"dropout": 0.0, "activation": "gelu_tanh"})  # llama.cpp's gpt2 GELU
    model, tok = lingvis.load(work / "model").eval(), lingvis.load_tokenizer(work / "model")
    wins = windows(tok, args.windows)
    ppl = {"lingvis fp32": lingvis_ppl(model, wins),
           "lingvis int8 weight-only": lingvis_ppl(quantize_int8(copy.deepcopy(model)), wins),
           "lingvis int8 W8A8": lingvis_ppl(quantize_int8(copy.deepcopy(model), activations="int8"), wins)}
    for dtype in ("f32", "q8_0"):
        path = work / f"model-{dtype}.gguf"
        if not path.is_file():
            export_gguf(model, path, tokenizer=tok, dtype=dtype)
        ppl[f"llama.cpp {dtype}"] = llama_cpp_ppl(path, wins, args.threads)
    print(f"[quant-ppl] {args.windows} held-out windows of {BLOCK} tokens ({args.windows * (BLOCK - 1)} predictions); "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)
    q8 = ppl["llama.cpp q8_0"]
    for name, p in ppl.items():
        own = ppl["llama.cpp f32" if name.startswith("llama.cpp") else "lingvis fp32"]
        print(f"{name:26s} perplexity {p:8.4f} | vs its fp32 {100 * (p / own - 1):+.2f}% | "
              f"vs llama.cpp q8_0 {100 * (p / q8 - 1):+.2f}%", flush=True)
    print(f"[quant-ppl] fp32 engines agree: lingvis {ppl['lingvis fp32']:.4f} vs llama.cpp {ppl['llama.cpp f32']:.4f}",
          flush=True)


if __name__ == "__main__":
    main()
