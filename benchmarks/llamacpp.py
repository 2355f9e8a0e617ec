"""lingvis GGUF export checked against llama.cpp itself, and decode speed side by side.

1. `--install`: build `llama-cpp-python` (pip compiles llama.cpp from source; several minutes on 2 cores; done
   once, into the running Python's environment), with the CPU's own instruction set (GGML_NATIVE) and without
   llama.cpp's tools and examples.
2. A GGUF round trip through llama.cpp on small random models of every exported architecture (gpt2, llama with
   GQA and a head width of its own, qwen2 with q/k/v biases, qwen3 with q/k norms, llama3 rope scaling):
   llama.cpp's greedy tokens for 16 steps must equal lingvis', and llama.cpp's tokenizer must encode a text
   exactly as the lingvis tokenizer that was exported with it (byte-level BPE).
3. `benchmarks.llamacpp_decode` (the race): GPT-2 124M and ~1B Llama shapes, lingvis fp32 vs llama.cpp f32,
   lingvis int8 vs llama.cpp q8_0, plus transformers, tokens/s and achieved bandwidth.

    python -m benchmarks.llamacpp [--install] [--skip-race] [--shapes gpt2,llama-1b] [--new 48]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

LLAMA = dict(norm="rmsnorm", activation="swiglu", position="rotary", bias=False)
CASES = {  # small random models of each architecture; widths that are multiples of 32 keep q8_0 on every matrix
    "gpt2": dict(n_layer=2, n_head=4, n_embd=128, block_size=128),
    "llama (GQA, head_dim 48)": dict(LLAMA, n_layer=2, n_head=6, n_kv_head=2, head_dim=48, n_embd=256,
                                     mlp_hidden=320, block_size=128, tie_embeddings=False),
    "llama3 rope scaling": dict(LLAMA, n_layer=2, n_head=4, n_kv_head=1, n_embd=256, mlp_hidden=320, block_size=128,
                                rope_theta=500000.0, rope_scaling={"rope_type": "llama3", "factor": 8.0,
                                "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                "original_max_position_embeddings": 32}),
    "qwen2 (q/k/v bias)": dict(LLAMA, n_layer=2, n_head=4, n_kv_head=2, n_embd=256, mlp_hidden=320, block_size=128,
                               qkv_bias=True, rope_theta=1e6),
    "qwen3 (q/k norm)": dict(LLAMA, n_layer=2, n_head=4, n_kv_head=2, head_dim=64, n_embd=256, mlp_hidden=320,
                             block_size=128, qk_norm=True),
}
TEXT = "It is a truth universally acknowledged, that a single man in possession of a good fortune... 1234 ok?"


def install() -> None:
    env = dict(os.environ, CMAKE_BUILD_PARALLEL_LEVEL=str(os.cpu_count() or 2),
               CMAKE_ARGS="-DGGML_NATIVE=ON -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF "
                          "-DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF")
    subprocess.run([sys.executable, "-m", "pip", "install", "llama-cpp-python"], env=env, check=True)


def sharpen(model, factor: float) -> None:
    """Scale the LM head so random logits have clear winners: float rounding differences between engines
    then cannot flip a greedy choice between near-equal logits."""
    with torch.no_grad():
        if model.config.tie_embeddings:
            model.wte.weight.mul_(factor)
        else:
            model.lm_head.weight.mul_(factor)


def roundtrip(tok, threads: int) -> bool:
    from lingvis.interop.gguf_export import export_gguf
    from lingvis.models.gpt import GPT, GPTConfig

    from .llamacpp_decode import open_llama

    ok = True
    ours_ids = tok.encode(TEXT)
    for name, cfg in CASES.items():
        torch.manual_seed(0)
        model = GPT(GPTConfig(vocab_size=tok.vocab_size + 13, **cfg)).eval()
        sharpen(model, 8.0)
        prompt = torch.randint(0, tok.vocab_size, (12,), generator=torch.Generator().manual_seed(2)).tolist()
        want = model.generate(torch.tensor([prompt]), max_new_tokens=16)[0, 12:].tolist()
        with tempfile.TemporaryDirectory() as tmp:
            for dtype in ("f32", "f16", "q8_0"):
                path = export_gguf(model, Path(tmp) / f"m.{dtype}.gguf", tokenizer=tok, dtype=dtype)
                llm = open_llama(path, threads, 64)
                got = []
                for t in llm.generate(prompt, temp=0.0, top_k=1, repeat_penalty=1.0):
                    got.append(int(t))
                    if len(got) == 16:
                        break
                same = next((i for i, (a, b) in enumerate(zip(want, got)) if a != b), 16)
                tokenized = llm.tokenize(TEXT.encode(), add_bos=False, special=False)
                ok &= same == 16 or dtype != "f32"
                ok &= tokenized == ours_ids
                print(f"{name:<26} {dtype:>5}: greedy tokens identical to lingvis fp32 for {same}/16 steps; "
                      f"llama.cpp tokenizer {'matches' if tokenized == ours_ids else 'DIFFERS'}", flush=True)
                del llm
    return ok


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--install", action="store_true", help="pip install llama-cpp-python (compiles llama.cpp)")
    ap.add_argument("--skip-race", action="store_true", help="only the round trip, not the speed race")
    ap.add_argument("--shapes", default="gpt2,llama-1b", help="shapes of the race")
    ap.add_argument("--new", type=int, default=48, help="new tokens per timed run in the race")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per engine in the race")
    ap.add_argument("--threads", type=int, default=2, help="threads of every engine")
    ap.add_argument("--workdir", help="folder for GGUF files and the cached tokenizer")
    args = ap.parse_args()
    if args.install:
        install()
    try:
        import llama_cpp
    except ImportError:
        sys.exit("llama-cpp-python is not installed: run `python -m benchmarks.llamacpp --install` "
                 "(or pip install llama-cpp-python)")
    from . import llamacpp_decode

    torch.set_num_threads(args.threads)
    print(f"[llamacpp] llama-cpp-python {llama_cpp.__version__}; load average "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}", flush=True)
    tok = llamacpp_decode.tokenizer(Path(args.workdir or tempfile.gettempdir()))
    ok = roundtrip(tok, args.threads)
    print(f"[llamacpp] round trip {'OK' if ok else 'FAILED'}", flush=True)
    if not args.skip_race:
        llamacpp_decode.main([f"--shapes={args.shapes}", f"--new={args.new}", f"--repeats={args.repeats}",
                              f"--threads={args.threads}"] + ([f"--workdir={args.workdir}"] if args.workdir else []))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
