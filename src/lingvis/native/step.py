"""The whole batch-1 decode step (fp32 activations; fp32 or int8 weights) of a GPT-family model as one native
call (`step.c`'s `lv_step_f32`).

`WholeStep(model, cache)` describes the model's weights and the cache's (1, KV, max_len, D) buffers to the C
side once (ctypes structures holding pointers: the tensors stay the model's own, nothing is copied);
`step(x, pos, cos, sin)` runs every layer, the final norm and the LM head in one OpenMP parallel region on
`torch.get_num_threads()` threads and returns the (V,) logits, having written the new key/value at column
`pos` of every layer; `rows(x (M, C), pos, cos, sin)` runs M consecutive positions in one call (each weight read
once for all M rows; each row's logits bit for bit the one-row step's). `whole_step_reason(model, cache)` says why a model cannot take this path (None when it can):
anything other than fp32 `nn.Linear` or int8 `QuantLinear` layers (weight-only or W8A8, through the same
integer arithmetic as `native.LinearInt8`), `nn.LayerNorm` (with weight) / `RMSNorm`, the activations of
`lingvis.nn.mlp` or a batch of one; callers then keep `decode_step.FusedStep`'s per-op path. W8A8 matrices whose K is
a multiple of 64 are read from `LinearInt8.tiled()` (8-row tiles interleaved into one stream each: ~13% less CPU for
a ~1B Llama step on Zen 4, docs/decoding.md; `LINGVIS_INT8_TILED=0` keeps the row-major weights).
"""
from __future__ import annotations

import copy
import ctypes

import torch

from ..nn.norm import RMSNorm
from .build import load

NORMS = {torch.nn.LayerNorm: 0, RMSNorm: 1}  # step.c's LV_LAYERNORM / LV_RMSNORM
ACTS = {"gelu": 0, "gelu_tanh": 1, "quick_gelu": 2, "relu": 3, "relu2": 4, "silu": 5}  # step.c's LV_*
GATE_ACTS = {"swiglu": ACTS["silu"], "geglu": ACTS["gelu"]}
STEP_MAX_ROWS = 64  # step.c's LV_MAX_ROWS: positions one `WholeStep.rows` call takes


class _Norm(ctypes.Structure):
    _fields_ = [("w", ctypes.c_void_p), ("b", ctypes.c_void_p)]


class _Mat(ctypes.Structure):
    _fields_ = [("kind", ctypes.c_int)] + [(n, ctypes.c_void_p) for n in ("w", "b", "scale", "wsum")]


class _Layer(ctypes.Structure):
    _fields_ = [(n, _Norm) for n in ("ln1", "ln2", "q_norm", "k_norm")] + [
        (n, _Mat) for n in ("qkv", "proj", "fc", "fc2")] + [(n, ctypes.c_void_p) for n in ("k_cache", "v_cache")]


class _Model(ctypes.Structure):
    _fields_ = [(n, ctypes.c_int) for n in ("n_layer", "C", "H", "KV", "D", "F", "V", "max_len", "norm", "qk_norm",
                                            "act", "gated")] + [
        ("eps", ctypes.c_float), ("qk_eps", ctypes.c_float), ("ln_f", _Norm), ("head", _Mat),
        ("layers", ctypes.POINTER(_Layer))]


def _ptr(t: torch.Tensor | None) -> int | None:
    return None if t is None else t.data_ptr()


def _int8(mod) -> bool:
    """An int8 layer the step can read: one with `native_kernel()` (lingvis.quant.QuantLinear, which imports this
    package, so it is recognised by that method rather than imported)."""
    return callable(getattr(type(mod), "native_kernel", None))


def _linear_ok(mod, n: int, k: int) -> bool:
    if _int8(mod):
        return (mod.out_features, mod.in_features) == (n, k) and mod.native_kernel() is not None
    if type(mod) is not torch.nn.Linear or tuple(mod.weight.shape) != (n, k):
        return False
    return all(t is None or t.dtype == torch.float32 and t.device.type == "cpu" and t.is_contiguous()
               for t in (mod.weight, mod.bias))


def _mat(mod, keep: list) -> _Mat:
    """step.c's description of a linear layer's weights; `keep` holds the tensors it points into."""
    if _int8(mod):
        k = mod.native_kernel()  # native.LinearInt8: int8 weights, scales, fp32 bias, W8A8 row sums
        keep.append(k)
        tiled = k.tiled()  # W8A8 with K % 64 == 0: its tiles interleaved (one stream each), step.c's LV_W8A8_TILED
        kind = 2 if k.activations != "int8" else 1 if tiled is None else 3
        return _Mat(kind=kind, w=_ptr(k.wq if tiled is None else tiled), b=_ptr(k.bias), scale=_ptr(k.scales),
                    wsum=_ptr(k.wsum))
    keep.append(mod)
    return _Mat(kind=0, w=_ptr(mod.weight), b=_ptr(mod.bias))


def _norm_ok(mod, dim: int) -> bool:
    if type(mod) not in NORMS or mod.weight is None or tuple(mod.weight.shape) != (dim,):
        return False
    b = getattr(mod, "bias", None)
    return all(t is None or t.dtype == torch.float32 and t.is_contiguous() for t in (mod.weight, b))


def whole_step_reason(model, cache) -> str | None:
    """Why `model` over `cache` cannot run as one native step (None: it can). Assumes
    `decode_step.supports(model, cache)` (the GPT layout) already holds."""
    if load() is None:
        return "the native library did not build"
    blocks = model.blocks
    linears = [m for blk in blocks for m in (blk.attn.qkv, blk.attn.proj, blk.mlp.fc, blk.mlp.proj)]
    if any(type(m) is not torch.nn.Linear and not _int8(m) for m in [*linears, model.lm_head]):
        return "layers other than nn.Linear / QuantLinear"
    a0, mlp0 = blocks[0].attn, blocks[0].mlp
    H, KV, D, C = a0.n_heads, a0.n_kv_heads, a0.head_dim, model.wte.weight.shape[1]
    if H % KV:
        return f"{H} heads over {KV} kv heads"
    if model.wte.weight.dtype != torch.float32:
        return f"{model.wte.weight.dtype} embeddings (the step's activations are fp32)"
    act = mlp0.activation
    if act not in (GATE_ACTS if mlp0.gated else ACTS):
        return f"activation {act!r}"
    F = mlp0.proj.in_features
    norm_kind = type(blocks[0].ln_1)
    eps = {blk.ln_1.eps for blk in blocks} | {blk.ln_2.eps for blk in blocks} | {model.ln_f.eps}
    if len(eps) != 1:
        return "norms with different eps"
    qk = [(blk.attn.q_norm, blk.attn.k_norm) for blk in blocks]
    if any((q is None) != (qk[0][0] is None) for q, _ in qk):
        return "q/k norms in some layers only"
    for i, blk in enumerate(blocks):
        a, mlp = blk.attn, blk.mlp
        if (a.n_heads, a.n_kv_heads, a.head_dim) != (H, KV, D) or mlp.activation != act:
            return f"layer {i} differs from layer 0"
        norms = [(blk.ln_1, C), (blk.ln_2, C)] + [(n, D) for n in (a.q_norm, a.k_norm) if n is not None]
        if any(not _norm_ok(n, d) or type(n) is not norm_kind for n, d in norms[:2]) or \
                any(not _norm_ok(n, d) or type(n) is not type(qk[0][0]) for n, d in norms[2:]):
            return f"layer {i}: norms other than fp32 LayerNorm / RMSNorm"
        if len({n.eps for n, _ in norms[2:]} | ({qk[0][0].eps} if qk[0][0] is not None else set())) > 1:
            return "q/k norms with different eps"
        shapes = ((a.qkv, (H + 2 * KV) * D, C), (a.proj, C, H * D), (mlp.fc, F * (2 if mlp.gated else 1), C),
                  (mlp.proj, C, F))
        if not all(_linear_ok(mod, n, k) for mod, n, k in shapes):
            return f"layer {i}: linears other than contiguous fp32 nn.Linear / QuantLinear with native kernels"
    why = cache_reason(cache, len(blocks), KV, D)
    if why is not None:
        return why
    if not _norm_ok(model.ln_f, C) or type(model.ln_f) is not norm_kind:
        return "final norm"
    if not _linear_ok(model.lm_head, model.lm_head.out_features, C):
        return "LM head"
    return None


def cache_reason(cache, n_layer: int, KV: int, D: int) -> str | None:
    """Why `cache` cannot be the whole step's (None: it can): one (1, KV, max_len, D) contiguous fp32 CPU buffer
    per layer for keys and for values."""
    if len(cache.k) != n_layer:
        return f"the KV cache has {len(cache.k)} layers, the model {n_layer}"
    for t in (*cache.k, *cache.v):
        if t is None or t.dtype != torch.float32 or t.device.type != "cpu" or not t.is_contiguous() \
                or tuple(t.shape) != (1, KV, cache.max_len, D):
            return "the KV cache is not one row of contiguous fp32 CPU buffers"
    return None


class WholeStep:
    """One batch-1 decode step of `model` over `cache` in one native call (see the module docstring)."""

    def __init__(self, model, cache):
        why = whole_step_reason(model, cache)
        if why is not None:
            raise ValueError(f"WholeStep: {why}")
        lib = load()
        blocks = model.blocks
        a0, mlp0 = blocks[0].attn, blocks[0].mlp
        self.model, self.cache = model, cache
        self.H, self.KV, self.D = a0.n_heads, a0.n_kv_heads, a0.head_dim
        self.C, self.F, self.V = model.wte.weight.shape[1], mlp0.proj.in_features, model.lm_head.out_features
        self.grad = any(p.requires_grad for p in model.parameters())
        self.keep = []  # the layers / int8 kernels whose tensors the descriptions point into
        qn = a0.q_norm
        self.layers = (_Layer * len(blocks))()
        for i, blk in enumerate(blocks):
            a, mlp = blk.attn, blk.mlp
            L = self.layers[i]
            for name, mod in (("ln1", blk.ln_1), ("ln2", blk.ln_2), ("q_norm", a.q_norm), ("k_norm", a.k_norm)):
                if mod is not None:
                    setattr(L, name, _Norm(_ptr(mod.weight), _ptr(getattr(mod, "bias", None))))
            for name, mod in (("qkv", a.qkv), ("proj", a.proj), ("fc", mlp.fc), ("fc2", mlp.proj)):
                setattr(L, name, _mat(mod, self.keep))
        self.kv_ptrs = None
        self._bind_cache()
        ln_f = model.ln_f
        self.desc = _Model(
            n_layer=len(blocks), C=self.C, H=self.H, KV=self.KV, D=self.D, F=self.F, V=self.V,
            max_len=cache.max_len, norm=NORMS[type(blocks[0].ln_1)], qk_norm=NORMS[type(qn)] if qn is not None else 0,
            act=GATE_ACTS[mlp0.activation] if mlp0.gated else ACTS[mlp0.activation], gated=int(mlp0.gated),
            eps=blocks[0].ln_1.eps, qk_eps=qn.eps if qn is not None else 0.0,
            ln_f=_Norm(_ptr(ln_f.weight), _ptr(getattr(ln_f, "bias", None))), head=_mat(model.lm_head, self.keep),
            layers=self.layers)
        # (H + 2 KV) D qkv + H D attention + 3 F MLP (gated: 2 F fc output and F activations)
        self.scratch = torch.empty((self.H + 2 * self.KV) * self.D + self.H * self.D + 3 * self.F)
        self.fn, self.rows_fn = lib.lv_step_f32, lib.lv_step_rows_f32
        self.rows_scratch = torch.empty(0)  # grown to M rows' scratch on first use of `rows`
        if lib.lv_step_struct_sizes() != ctypes.sizeof(_Layer) * 1000 + ctypes.sizeof(_Model):
            raise RuntimeError("lingvis.native: step.c's structs and step.py's ctypes mirror differ in size")

    def for_cache(self, cache) -> "WholeStep":
        """The same model's step over another cache (its own cache pointers and scratch; the weight descriptions
        copied, not rebuilt: ~1/20 of the constructor's CPU time). The weights must be the very tensors this
        step was built on (`decode_step` keys its cached steps on their pointers and versions)."""
        why = cache_reason(cache, len(self.layers), self.KV, self.D)
        if why is not None:
            raise ValueError(f"WholeStep: {why}")
        new = copy.copy(self)
        new.cache, new.kv_ptrs = cache, None
        new.layers = type(self.layers).from_buffer_copy(self.layers)  # the k_cache / v_cache pointers are per step
        new.desc = _Model.from_buffer_copy(self.desc)
        new.desc.max_len, new.desc.layers = cache.max_len, new.layers
        new.scratch, new.rows_scratch = torch.empty_like(self.scratch), torch.empty(0)
        new._bind_cache()
        return new

    def _bind_cache(self) -> None:
        ptrs = tuple(t.data_ptr() for t in self.cache.k) + tuple(t.data_ptr() for t in self.cache.v)
        if ptrs != self.kv_ptrs:  # first call, or the cache's buffers were replaced
            n = len(self.layers)
            for i in range(n):
                self.layers[i].k_cache, self.layers[i].v_cache = ptrs[i], ptrs[n + i]
            self.kv_ptrs = ptrs

    def usable(self) -> bool:
        """False while autograd would have to see the step (grad mode on and weights that need gradients)."""
        return not (self.grad and torch.is_grad_enabled())

    def __call__(self, x: torch.Tensor, pos: int, cos: torch.Tensor | None, sin: torch.Tensor | None
                 ) -> torch.Tensor:  # x (C,) fp32, overwritten; cos/sin (D,) or None -> (V,) logits
        if not 0 <= pos < self.cache.max_len:
            raise ValueError(f"WholeStep: position {pos} outside the cache's {self.cache.max_len} columns")
        if x.dtype != torch.float32 or x.shape != (self.C,):
            raise ValueError(f"WholeStep: x must be ({self.C},) fp32, got {x.dtype} {tuple(x.shape)}")
        self._bind_cache()
        x = x.contiguous()
        if cos is not None:
            cos, sin = cos.float().contiguous(), sin.float().contiguous()
        logits = torch.empty(self.V)
        if self.fn(ctypes.addressof(self.desc), x.data_ptr(), pos, _ptr(cos), _ptr(sin), logits.data_ptr(),
                   self.scratch.data_ptr(), torch.get_num_threads()) != 0:
            raise MemoryError("lv_step_f32: no per-thread scratch memory")
        return logits

    def rows(self, x: torch.Tensor, pos: int, cos: torch.Tensor | None, sin: torch.Tensor | None
             ) -> torch.Tensor:  # x (M, C) fp32, overwritten; cos/sin (M, D) or None -> (M, V) logits
        """M consecutive positions pos..pos+M-1 of the sequence in one call (`step.c`'s `lv_step_rows_f32`;
        1 <= M <= STEP_MAX_ROWS): every weight read once for all M rows, the M keys/values written at columns
        pos..pos+M-1, row i attending over columns 0..pos+i. Each row's logits and cache column are bit for bit
        those of `__call__` at its position (speculative decoding verifies its drafts this way)."""
        M = x.shape[0] if x.dim() == 2 else 0
        if x.dtype != torch.float32 or x.dim() != 2 or x.shape[1] != self.C or not 1 <= M <= STEP_MAX_ROWS:
            raise ValueError(f"WholeStep.rows: x must be (M, {self.C}) fp32 with 1 <= M <= {STEP_MAX_ROWS}, got "
                             f"{x.dtype} {tuple(x.shape)}")
        if not 0 <= pos or pos + M > self.cache.max_len:
            raise ValueError(f"WholeStep.rows: positions {pos}..{pos + M - 1} outside the cache's "
                             f"{self.cache.max_len} columns")
        if cos is not None and (cos.shape != (M, self.D) or sin.shape != (M, self.D)):
            raise ValueError(f"WholeStep.rows: cos/sin must be ({M}, {self.D}), got {tuple(cos.shape)}, "
                             f"{tuple(sin.shape)}")
        self._bind_cache()
        x = x.contiguous()
        if cos is not None:
            cos, sin = cos.float().contiguous(), sin.float().contiguous()
        need = M * ((self.H + 2 * self.KV) * self.D + self.H * self.D + 3 * self.F)
        if self.rows_scratch.numel() < need:
            self.rows_scratch = torch.empty(need)
        logits = torch.empty(M, self.V)
        rc = self.rows_fn(ctypes.addressof(self.desc), x.data_ptr(), M, pos, _ptr(cos), _ptr(sin), logits.data_ptr(),
                          self.rows_scratch.data_ptr(), torch.get_num_threads())
        if rc != 0:
            raise MemoryError("lv_step_rows_f32: no per-thread scratch memory")
        return logits
