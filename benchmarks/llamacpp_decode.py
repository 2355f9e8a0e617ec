"""The CPU decoding race: lingvis vs llama.cpp (through llama-cpp-python) vs transformers, batch-1 greedy decode,
the same weights in every engine.

Shapes (random weights, LM head scaled x4 so that greedy choices are clear): GPT-2 124M (`gpt2` preset) and a
~1B Llama (`tinyllama-1.1b` preset: 22 layers, width 2048, 32 / 4 kv heads). Each model is exported with
lingvis' GGUF writer (`lingvis.interop.gguf_export`) as f32 and q8_0; transformers runs the Hugging Face
export (GPT-2) or a model whose parameters are views of the lingvis weights (the Llama shape, so the 4.4 GB
are held once). Engines:
  lingvis fp32 | llama.cpp f32 | transformers fp32 | lingvis int8 (W8A8 dynamic, `quant.quantize_int8`) |
  lingvis int8 weight-only | llama.cpp q8_0
Checks: the first 16 greedy tokens of lingvis fp32 equal llama.cpp f32's and transformers'; int8 vs q8_0
(different quantisers: per-channel vs blocks of 32) reports how many tokens agree before they diverge.
Speed: `--new` tokens from a 16-token prompt, median of `--repeats` interleaved runs, tokens/s by wall time
and by the process's CPU time (the fair measure when other jobs share the cores: see `timed`), the ratios
to llama.cpp (wall / CPU), and the achieved bandwidth = bytes read per token (every weight matrix once, the
LM head included, plus the KV cache at the mean length) / time per token.

    python -m benchmarks.llamacpp_decode [--shapes gpt2,llama-1b] [--new 48] [--repeats 3] [--threads 2]

Needs `pip install llama-cpp-python` (it compiles llama.cpp: `python -m benchmarks.llamacpp --install`).
"""
from __future__ import annotations

import argparse
import copy
import gc
import os
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

PROMPT_LEN, CHECK = 16, 16
SHAPES = {"gpt2": "gpt2", "llama-1b": "tinyllama-1.1b"}


@dataclass
class Engine:
    name: str
    run: object          # (prompt ids list, n new) -> list of new ids
    bytes_per_token: float
    model: object = None  # lingvis engines: the model (its weights' huge-page share is reported)


# ---- bytes read per decode step ------------------------------------------------------------------------
def kv_bytes(cfg, length: int, elem: int = 4) -> int:
    return 2 * cfg.n_layer * (cfg.n_kv_head or cfg.n_head) * cfg.head_size * length * elem


def lingvis_weight_bytes(model) -> int:
    """Bytes of every matrix a decode step multiplies by (linear layers and the LM head); embedding tables
    are read one row per token and not counted."""
    from lingvis.quant import QuantLinear

    total = 0
    for m in model.modules():
        if isinstance(m, torch.nn.Linear):
            total += m.weight.numel() * m.weight.element_size()
        elif isinstance(m, QuantLinear):
            total += m.weight_int8.numel() + m.scales.numel() * 4
    return total


def gguf_weight_bytes(path: Path) -> int:
    import gguf

    tensors = {t.name: t for t in gguf.GGUFReader(str(path)).tensors}
    skip = {"position_embd.weight"} | ({"token_embd.weight"} if "output.weight" in tensors else set())
    return sum(int(t.n_bytes) for n, t in tensors.items() if n not in skip and len(t.shape) > 1)


# ---- engines -------------------------------------------------------------------------------------------
def lingvis_engine(name: str, model, kv: int, step: str = "fused", native: bool = True, per_op: bool = False
                   ) -> Engine:
    """`step`: "fused" (generate's default: the fused one-token step of lingvis/decode_step.py), "general"
    (every step through `model.forward` with torch's kernels, as before the fused step and the native kernels:
    LINGVIS_FUSED_STEP=0 LINGVIS_NATIVE=0) or "compiled" (`generate(..., compile=True)`; compiled on its first
    call, which prints the compile time). `native=False`: the fused step with torch's kernels for its linears
    (MKL's gemv / fbgemm / the int8pack kernel) instead of lingvis.native's (LINGVIS_NATIVE=0). `per_op`: the
    fused step calling the native kernels once per product instead of the whole step as one native call
    (LINGVIS_NATIVE_STEP=0; the default is one call, native.WholeStep)."""
    env = {"LINGVIS_FUSED_STEP": "0" if step == "general" else "1",
           "LINGVIS_NATIVE": "1" if native and step != "general" else "0",
           "LINGVIS_NATIVE_STEP": "0" if per_op else "1"}

    def run(prompt, n):
        ids = torch.tensor([prompt])
        old = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            t0 = time.perf_counter()
            out = model.generate(ids, max_new_tokens=n, compile=step == "compiled")[0, len(prompt):].tolist()
            if step == "compiled" and not compiled:
                compiled.append(time.perf_counter() - t0)
                print(f"[{name}] compiled the decode step in {compiled[0]:.1f} s (once per model and cache size)",
                      flush=True)
            return out
        finally:
            for k, v in old.items():
                if v is None:
                    del os.environ[k]
                else:
                    os.environ[k] = v
    compiled: list[float] = []
    return Engine(name, run, lingvis_weight_bytes(model) + kv, model)


CORE = False  # --core: only the default lingvis engines, their per-op / torch-kernel variants and llama.cpp
EXTRA_BUFFERS = False  # --extra-buffers: llama.cpp's AMX / repacked weight buffers (see open_llama)


def open_llama(path: Path, threads: int, ctx: int, **kw):
    """A llama_cpp.Llama on `path`. Unless EXTRA_BUFFERS, llama.cpp's extra weight buffer types are off
    (`use_extra_bufts = False`): on the Xeon this was measured on, llama.cpp 0.3.36's AMX int8 kernels
    (which take q8_0 weights when the CPU has AMX) crash with SIGSEGV in ggml_backend_amx_mul_mat. q8_0 then
    runs llama.cpp's AVX-512 VNNI dot products (x86 has no q8_0 repacking), f32 is unaffected."""
    import llama_cpp.llama_cpp as lc
    from llama_cpp import Llama

    default = lc.llama_model_default_params

    def params():
        p = default()
        p.use_extra_bufts = EXTRA_BUFFERS
        return p

    lc.llama_model_default_params = params
    try:
        return Llama(model_path=str(path), n_ctx=ctx, n_batch=ctx, n_threads=threads, n_threads_batch=threads,
                     verbose=False, seed=0, **kw)
    finally:
        lc.llama_model_default_params = default


def llama_cpp_engine(name: str, path: Path, threads: int, ctx: int, kv: int) -> Engine:
    llm = open_llama(path, threads, ctx)

    def run(prompt, n):
        out = []
        llm.reset()  # else generate() keeps the prompt's KV cache from the last run and evaluates 1 token, not 16
        for t in llm.generate(prompt, temp=0.0, top_k=1, repeat_penalty=1.0, reset=True):
            out.append(int(t))
            if len(out) == n:
                break
        return out
    e = Engine(name, run, gguf_weight_bytes(path) + kv)
    e.llm = llm
    return e


def transformers_engine(ours, tmp: Path, kv: int) -> Engine:
    """transformers fp32 with the same weights: GPT-2 from lingvis' HF export; the Llama shape with parameters
    that are views of the lingvis tensors (no second copy)."""
    import transformers

    import lingvis

    cfg = ours.config
    if cfg.position == "learned":
        lingvis.save(ours, tmp / "hf", format="hf")
        hf = transformers.GPT2LMHeadModel.from_pretrained(tmp / "hf", dtype=torch.float32).eval()
    else:
        from lingvis.interop.llama import hf_config, hf_model_type, weight_map

        kind = hf_model_type(cfg)
        hcfg = transformers.AutoConfig.for_model(**hf_config(cfg, kind))
        with torch.device("meta"):
            hf = transformers.AutoModelForCausalLM.from_config(hcfg, dtype=torch.float32)
        own = dict(ours.named_parameters(remove_duplicate=False))
        D, H, KV = cfg.head_size, cfg.n_head, cfg.n_kv_head or cfg.n_head
        for mine, theirs in weight_map(cfg):
            t = own[mine].detach()
            sizes = [t.shape[0]] if len(theirs) == 1 else (
                [H * D, KV * D, KV * D] if "qkv" in mine else [t.shape[0] // 2] * 2)
            for hname, part in zip(theirs, t.split(sizes)):
                mod_name, pname = hname.rsplit(".", 1)
                setattr(hf.get_submodule(mod_name), pname, torch.nn.Parameter(part, requires_grad=False))
        if cfg.tie_embeddings:
            hf.lm_head.weight = hf.model.embed_tokens.weight
        hf.model.rotary_emb = type(hf.model.rotary_emb)(hcfg)  # its frequencies were built on meta
        meta = [n for n, t in [*hf.named_parameters(), *hf.named_buffers()] if t.is_meta]
        assert not meta, f"transformers tensors left on meta: {meta[:3]}"
        hf.eval()

    def run(prompt, n):
        ids = torch.tensor([prompt])
        with torch.inference_mode():
            out = hf.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=n, min_new_tokens=n,
                              do_sample=False, pad_token_id=0)
        return out[0, len(prompt):].tolist()
    return Engine("transformers fp32", run, lingvis_weight_bytes(ours) + kv)


def tokenizer(cache: Path):
    """A byte-level BPE trained on the embedded Shakespeare (cached): llama.cpp gets a real vocabulary (the
    model's embedding is larger; the GGUF pads it with unused tokens). The race itself runs on token ids."""
    import lingvis
    from lingvis.recipes.gpt import GPTPretrainArgs, load_corpus
    from lingvis.tokenizers.train import train_bpe

    folder = cache / "llamacpp-bpe-4096"
    if not (folder / "tokenizer.json").is_file():
        train_texts, _ = load_corpus(GPTPretrainArgs(out=""))
        train_bpe(train_texts, vocab_size=4096).save(folder)
    return lingvis.load_tokenizer(folder)


# ---- the race ------------------------------------------------------------------------------------------
def agree(a: list[int], b: list[int]) -> int:
    """Tokens before the first difference."""
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


def timed(engines: list[Engine], prompt: list[int], new: int, repeats: int) -> dict[str, tuple[float, ...]]:
    """Median (wall seconds, CPU seconds) per new token of each engine, prefill included, and the median (wall, CPU)
    seconds of a run of one new token (the prompt's prefill and the first token); runs interleaved (a, b, c, a, b,
    c...). CPU time is the process's (every thread, llama.cpp's included): on a machine shared with other jobs a
    process waits for a core much of the wall time, and its CPU time per token is what the step costs."""
    for e in engines:
        e.run(prompt, 4)  # warm-up
    times = {e.name: [] for e in engines}
    cpus = {e.name: [] for e in engines}
    firsts = {e.name: [] for e in engines}
    for _ in range(repeats):
        for e in engines:
            t0, c0 = time.perf_counter(), time.process_time()
            e.run(prompt, 1)
            firsts[e.name].append((time.perf_counter() - t0, time.process_time() - c0))
            t0, c0 = time.perf_counter(), time.process_time()
            out = e.run(prompt, new)
            times[e.name].append((time.perf_counter() - t0) / len(out))
            cpus[e.name].append((time.process_time() - c0) / len(out))
    med = statistics.median
    return {k: (med(times[k]), med(cpus[k]), med(w for w, _ in firsts[k]), med(c for _, c in firsts[k]))
            for k in times}


def decode_only(t: tuple[float, ...], new: int) -> tuple[float, float]:
    """(wall, CPU) seconds per token after the first, from `timed`'s run of `new` tokens and its one-token run."""
    return tuple(max(t[i] * new - t[i + 2], 1e-9) / (new - 1) for i in (0, 1))


def report(shape: str, engines: list[Engine], spt: dict[str, tuple[float, ...]], ref: dict[str, str], new: int) -> None:
    """Per engine: tokens/s (wall, CPU) with the 16-token prompt's prefill included and the ratio to the reference;
    then the prefill + first token (ms) and the decode-only rate (the other tokens) with its ratio and GB/s."""
    for e in engines:
        if e.name not in spt:
            continue
        (wall, cpu, w1, c1), vs = spt[e.name], ref.get(e.name)
        dw, dc = decode_only(spt[e.name], new)
        ratio = f" | {spt[vs][0] / wall:.2f}x / {spt[vs][1] / cpu:.2f}x {vs}" if vs else ""
        dratio = ""
        if vs:
            rw, rc = decode_only(spt[vs], new)
            dratio = f" | {rw / dw:.2f}x / {rc / dc:.2f}x"
        print(f"{shape:>9} | {e.name:<26} | {1 / wall:7.1f} tok/s wall | {1 / cpu:7.1f} tok/CPU-s | "
              f"{e.bytes_per_token / 1e6:7.1f} MB/token | {e.bytes_per_token / wall / 1e9:5.1f} GB/s wall, "
              f"{e.bytes_per_token / cpu / 1e9:5.1f} GB/CPU-s{ratio}", flush=True)
        print(f"{'':>9} |   prefill + 1st token {w1 * 1e3:7.1f} ms wall {c1 * 1e3:7.1f} ms CPU | decode only "
              f"{1 / dw:7.1f} tok/s wall {1 / dc:7.1f} tok/CPU-s | {e.bytes_per_token / dw / 1e9:5.1f} GB/s wall"
              f"{dratio}", flush=True)


def huge_pages(e: Engine) -> str:
    """'H of T MB' of the engine's moved weights in huge pages (lingvis.native.huge_page_share), '' for others."""
    if e.model is None:
        return ""
    from lingvis.native import huge_page_share

    huge, total = huge_page_share(e.model)
    return f"{huge / 2**20:.0f} of {total / 2**20:.0f} MB" if total else "not moved"


def read_probe_gbps(mb: int = 1024, repeats: int = 3) -> float:
    """GB/s of a plain read (`torch.sum`, torch's threads) of a `mb` MB fp32 buffer in a huge-page-advised private
    mapping, like the moved weights: the machine's read rate in the same minutes as the engines it precedes (one
    at a time, the 1B engines meet different load; their GB/s compare with the probe of their own round)."""
    import mmap

    from lingvis.native.hugepages import ALIGN

    buf = mmap.mmap(-1, (mb << 20) + ALIGN, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    if hasattr(mmap, "MADV_HUGEPAGE"):
        buf.madvise(mmap.MADV_HUGEPAGE)
    raw = torch.frombuffer(buf, dtype=torch.uint8)
    start = -raw.data_ptr() % ALIGN
    t = raw[start:start + (mb << 20)].view(torch.float32)
    t.fill_(1.0)
    best = min(_seconds(t.sum) for _ in range(repeats + 1))
    del t, raw
    buf.close()
    return (mb << 20) / best / 1e9


def _seconds(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def mem_available_gb() -> float:
    try:
        line = next(x for x in Path("/proc/meminfo").read_text().splitlines() if x.startswith("MemAvailable:"))
        return int(line.split()[1]) / 2**20
    except (OSError, StopIteration):
        return float("nan")


def w8a8_from(q):
    """A W8A8 copy of a weight-only int8 model: the same int8 weights and scales (one int8-sized copy, not an
    fp32 one), activations quantised at run time (fbgemm)."""
    from lingvis.quant import QuantLinear

    twin = copy.deepcopy(q)
    for m in twin.modules():
        if isinstance(m, QuantLinear):
            m.activations, m._fbgemm, m._native = "int8", None, None
    return twin


def hugepage_copy(model):
    """A copy of the model with its linear weights in hugepage-advised memory (lingvis.native.hugepage_weights)."""
    from lingvis.native import hugepage_weights

    twin = copy.deepcopy(model)
    hugepage_weights(twin)
    return twin


# engines in the printed order, and the engine each is compared with (its ratio column)
ORDER = ["lingvis fp32", "lingvis fp32 (native per op)", "lingvis fp32 (hugepages)", "lingvis fp32 (torch kernels)",
         "lingvis fp32 (compiled)", "lingvis fp32 (general)", "llama.cpp f32", "transformers fp32",
         "lingvis int8 (W8A8)", "lingvis int8 (W8A8, native per op)", "lingvis int8 (W8A8, hugepages)",
         "lingvis int8 (W8A8, torch kernels)", "lingvis int8 (W8A8, general)", "lingvis int8 (weight-only)",
         "lingvis int8 (weight-only, torch kernels)", "llama.cpp q8_0"]
VERSUS = {name: "llama.cpp q8_0" if "int8" in name else "llama.cpp f32" for name in ORDER
          if not name.startswith("llama.cpp")}
# greedy agreement printed for these pairs; result rows (JSON) for these
AGREE_PAIRS = (("lingvis fp32", "llama.cpp f32"), ("lingvis fp32", "transformers fp32"),
               ("lingvis fp32", "lingvis fp32 (general)"), ("lingvis fp32", "lingvis fp32 (compiled)"),
               ("lingvis fp32", "lingvis fp32 (torch kernels)"), ("lingvis fp32", "lingvis fp32 (hugepages)"),
               ("lingvis fp32", "lingvis fp32 (native per op)"),
               ("lingvis int8 (W8A8)", "lingvis int8 (W8A8, native per op)"),
               ("lingvis int8 (W8A8)", "lingvis int8 (W8A8, general)"),
               ("lingvis int8 (W8A8)", "lingvis int8 (W8A8, torch kernels)"),
               ("llama.cpp q8_0", "lingvis int8 (W8A8)"), ("llama.cpp q8_0", "lingvis int8 (weight-only)"))
ROW_PAIRS = (("lingvis fp32", "llama.cpp f32"), ("lingvis fp32 (compiled)", "llama.cpp f32"),
             ("lingvis fp32", "transformers fp32"), ("lingvis fp32", "lingvis fp32 (general)"),
             ("lingvis fp32", "lingvis fp32 (torch kernels)"), ("lingvis fp32 (hugepages)", "llama.cpp f32"),
             ("lingvis fp32 (native per op)", "llama.cpp f32"),
             ("lingvis int8 (W8A8, native per op)", "llama.cpp q8_0"),
             ("lingvis int8 (W8A8)", "llama.cpp q8_0"), ("lingvis int8 (W8A8, hugepages)", "llama.cpp q8_0"),
             ("lingvis int8 (W8A8)", "lingvis int8 (W8A8, general)"),
             ("lingvis int8 (W8A8)", "lingvis int8 (W8A8, torch kernels)"),
             ("lingvis int8 (weight-only)", "llama.cpp q8_0"),
             ("lingvis int8 (weight-only)", "lingvis int8 (weight-only, torch kernels)"))


def agreement(shape: str, check: dict[str, list[int]]) -> None:
    """Print how many of the first CHECK greedy tokens each pair of AGREE_PAIRS shares."""
    for a, b in AGREE_PAIRS:
        if a not in check or b not in check:
            continue
        n = agree(check[a], check[b])
        note = " (different quantisers)" if "q8_0" in a else ""
        print(f"[{shape}] greedy {CHECK} tokens, {a} vs {b}{note}: "
              f"{'identical' if n == CHECK else f'first {n} identical'}", flush=True)


def result_rows(shape: str, new: int, threads: int, spt: dict, check: dict, size: dict[str, int],
                huge: dict[str, str]) -> list[dict]:
    """One JSON row per pair of ROW_PAIRS that ran: tokens/s both sides (prefill included), wall and CPU ratios,
    achieved GB/s, the decode-only ratios and the huge-page share of lingvis' weights."""
    rows = []
    for ours, ref in ROW_PAIRS:
        if ours not in spt or ref not in spt:
            continue
        (w, c, *_), (rw, rc, *_) = spt[ours], spt[ref]
        (dw, dc), (drw, drc) = decode_only(spt[ours], new), decode_only(spt[ref], new)
        one = ", 1 thread" if threads == 1 else ""
        label = f"{shape} batch-1 greedy decode, {ours} vs {ref} ({new} new tokens{one})"
        rows.append({"benchmark": label, "lingvis": round(1 / w, 2), "reference": round(1 / rw, 2), "unit": "tokens/s",
                     "ratio": round(rw / w, 3), "cpu_time_ratio": round(rc / c, 3),
                     "decode_only_ratio": round(drw / dw, 3), "decode_only_cpu_time_ratio": round(drc / dc, 3),
                     "greedy_16_identical": agree(check[ours], check[ref]) == CHECK,
                     "lingvis_GBps": round(size[ours] / w / 1e9, 2), "reference_GBps": round(size[ref] / rw / 1e9, 2),
                     "lingvis_huge_pages": huge.get(ours, "")})
    return rows


@dataclass
class Round:
    """What a race collects: the first CHECK greedy tokens, (wall, CPU) seconds per token, the engines timed."""
    shape: str
    prompt: list[int]
    new: int
    repeats: int
    check: dict = field(default_factory=dict)
    spt: dict = field(default_factory=dict)
    done: list = field(default_factory=list)

    huge: dict = field(default_factory=dict)

    probes: list = field(default_factory=list)

    def measure(self, engines: list[Engine]) -> None:
        self.probes.append(read_probe_gbps())
        for e in engines:
            self.check[e.name] = e.run(self.prompt, CHECK)
            if e.model is not None:  # the fused step has moved its weights (LINGVIS_HUGEPAGES) by now
                self.huge[e.name] = huge_pages(e)
        self.spt.update(timed(engines, self.prompt, self.new, self.repeats))
        self.done.extend(Engine(e.name, None, e.bytes_per_token) for e in engines)
        pages = "; ".join(f"{e.name}: {self.huge[e.name]} in huge pages" for e in engines if e.name in self.huge)
        print(f"[{self.shape}] timed {', '.join(e.name for e in engines)}; load average "
              f"{os.getloadavg()[0]:.1f}; a 1 GB read probe before them {self.probes[-1]:.1f} GB/s; "
              f"{mem_available_gb():.1f} GB available{'; ' + pages if pages else ''}", flush=True)


def fp32_round(r: Round, ours, paths: dict, threads: int, ctx: int, kv: int, workdir: Path):
    """Time the fp32 engines; returns lingvis' fp32 model. `ours` None: one engine at a time, llama.cpp's
    first, then lingvis' fp32 model read back from the f32 GGUF (the caller dropped the built one)."""
    import lingvis

    if ours is not None:
        core = [lingvis_engine("lingvis fp32", ours, kv),
                lingvis_engine("lingvis fp32 (native per op)", ours, kv, per_op=True),
                lingvis_engine("lingvis fp32 (torch kernels)", ours, kv, native=False)]
        more = [] if CORE else [lingvis_engine("lingvis fp32 (hugepages)", hugepage_copy(ours), kv),
                                lingvis_engine("lingvis fp32 (compiled)", ours, kv, "compiled"),
                                lingvis_engine("lingvis fp32 (general)", ours, kv, "general")]
        r.measure(core + more + [llama_cpp_engine("llama.cpp f32", paths["f32"], threads, ctx, kv)]
                  + ([] if CORE else [transformers_engine(ours, workdir, kv)]))
        return ours
    for d in ("f32", "q8_0"):
        r.measure([llama_cpp_engine(f"llama.cpp {d}", paths[d], threads, ctx, kv)])
        gc.collect()
    ours = lingvis.load(paths["f32"])  # the same fp32 weights, read back by lingvis' GGUF reader
    r.measure([lingvis_engine("lingvis fp32", ours, kv)])
    r.measure([lingvis_engine("lingvis fp32 (torch kernels)", ours, kv, native=False)])
    if not CORE:
        r.measure([lingvis_engine("lingvis fp32 (general)", ours, kv, "general")])
        r.measure([transformers_engine(ours, workdir, kv)])
    return ours


def int8_round(r: Round, ours, paths: dict, threads: int, ctx: int, kv: int, sequential: bool) -> None:
    """Quantise lingvis' fp32 model in place (weight-only, and a W8A8 twin) and time the int8 engines."""
    from lingvis.quant import quantize_int8

    wonly = quantize_int8(ours, activations="float")  # in place: the fp32 weights go
    del ours
    gc.collect()
    w8a8 = w8a8_from(wonly)
    int8 = [lingvis_engine("lingvis int8 (W8A8)", w8a8, kv),
            lingvis_engine("lingvis int8 (W8A8, native per op)", w8a8, kv, per_op=True),
            lingvis_engine("lingvis int8 (W8A8, torch kernels)", w8a8, kv, native=False)]
    if not CORE:
        int8 += [*([] if sequential else [lingvis_engine("lingvis int8 (W8A8, hugepages)", hugepage_copy(w8a8), kv)]),
                 lingvis_engine("lingvis int8 (W8A8, general)", w8a8, kv, "general"),
                 lingvis_engine("lingvis int8 (weight-only)", wonly, kv),
                 lingvis_engine("lingvis int8 (weight-only, torch kernels)", wonly, kv, native=False)]
    if sequential:
        for e in int8:
            r.measure([e])
    else:
        r.measure(int8 + [llama_cpp_engine("llama.cpp q8_0", paths["q8_0"], threads, ctx, kv)])


def race(shape: str, new: int, repeats: int, threads: int, workdir: Path, cache: Path,
         sequential: bool = False) -> list[dict]:
    """Export the shape to GGUF, check greedy agreement and time every engine. Interleaved by default; with
    `sequential` one model is in memory at a time (llama.cpp's from its files first, then lingvis' own fp32
    model read back from the f32 GGUF, which transformers shares, then its int8 versions), so engines are timed
    one after the other and load changes between them go into the ratios (the CPU-time ratios less so)."""
    import lingvis
    from lingvis.interop.gguf_export import export_gguf

    torch.manual_seed(0)
    t0 = time.time()
    ours = lingvis.build(SHAPES[shape]).eval()
    cfg = ours.config
    with torch.no_grad():  # clear winners among random logits: rounding differences cannot flip greedy choices
        (ours.wte.weight if cfg.tie_embeddings else ours.lm_head.weight).mul_(4.0)
    ctx = PROMPT_LEN + new + 8
    kv = kv_bytes(cfg, PROMPT_LEN + new // 2)
    prompt = torch.randint(0, cfg.vocab_size, (PROMPT_LEN,), generator=torch.Generator().manual_seed(1)).tolist()
    tok = tokenizer(cache)
    paths = {d: export_gguf(ours, workdir / f"{shape}.{d}.gguf", tokenizer=tok, dtype=d) for d in ("f32", "q8_0")}
    print(f"[{shape}] {sum(p.numel() for p in ours.parameters()):,} parameters; built and exported in "
          f"{time.time() - t0:.0f} s; load average {os.getloadavg()[0]:.1f}"
          f"{'; engines one at a time' if sequential else ''}", flush=True)
    r = Round(shape, prompt, new, repeats)
    if sequential:
        ours = None  # one model in memory at a time: llama.cpp's engines run first
        gc.collect()
    ours = fp32_round(r, ours, paths, threads, ctx, kv, workdir)
    gc.collect()
    int8_round(r, ours, paths, threads, ctx, kv, sequential)
    agreement(shape, r.check)
    report(shape, sorted(r.done, key=lambda e: ORDER.index(e.name)), r.spt, VERSUS, new)
    return result_rows(shape, new, threads, r.spt, r.check, {e.name: e.bytes_per_token for e in r.done}, r.huge)


def run(quick: bool = False, threads: int = 2) -> list[dict]:
    """`make bench` entry: GPT-2 (and with the full run the ~1B Llama, engines one at a time) against
    llama.cpp and transformers; needs llama-cpp-python."""
    import llama_cpp  # noqa: F401  (ImportError: the suite records this module as not run)

    torch.set_num_threads(threads)
    rows = []
    shapes = [("gpt2", 16, 1, False)] if quick else [("gpt2", 48, 3, False), ("llama-1b", 16, 1, True)]
    for shape, new, repeats, sequential in shapes:
        with tempfile.TemporaryDirectory() as tmp:
            rows += race(shape, new, repeats, threads, Path(tmp), Path(tempfile.gettempdir()), sequential)
    return rows


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shapes", default="gpt2,llama-1b", help=f"comma-separated: {', '.join(SHAPES)}")
    ap.add_argument("--new", type=int, default=48, help="new tokens per timed run")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per engine (median)")
    ap.add_argument("--threads", type=int, default=2, help="threads of every engine")
    ap.add_argument("--workdir", help="where the GGUF files (temporary) and the cached tokenizer go (default: the "
                    "system temporary folder)")
    ap.add_argument("--sequential", default="llama-1b", help="comma-separated shapes whose engines run one at "
                    "a time instead of interleaved (memory: the ~1B shape's fp32 weights held by two engines at once "
                    "left too little RAM on a 24 GB machine shared with other jobs); '' for none")
    ap.add_argument("--extra-buffers", action="store_true", help="let llama.cpp use its AMX / repacked weight "
                    "buffers (off by default: its AMX q8_0 kernels crashed on the machine this was written on)")
    ap.add_argument("--core", action="store_true", help="only lingvis' default engines (fp32, W8A8), the same with "
                    "the native kernels per op and with torch's kernels, and llama.cpp (no hugepage, compiled, "
                    "general-step, weight-only or transformers rows): a shorter run for a loaded machine")
    args = ap.parse_args(argv)
    global EXTRA_BUFFERS, CORE
    EXTRA_BUFFERS, CORE = args.extra_buffers, args.core
    torch.set_num_threads(args.threads)
    print(f"[llamacpp] torch {torch.__version__}, {args.threads} threads, {os.cpu_count()} CPUs; load average "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}", flush=True)
    if args.workdir:
        Path(args.workdir).mkdir(parents=True, exist_ok=True)
    for shape in args.shapes.split(","):
        with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
            race(shape, args.new, args.repeats, args.threads, Path(tmp), Path(args.workdir or tempfile.gettempdir()),
                 sequential=shape in args.sequential.split(","))
    print(f"[llamacpp] load average after: {' '.join(f'{x:.1f}' for x in os.getloadavg())}", flush=True)


if __name__ == "__main__":
    main()
