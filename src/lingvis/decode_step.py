"""A decode step with no waste: one token per row through a GPT-family model over its preallocated KV cache.

`model.forward` serves every use (training, padding, packed documents, rings, cross-attention, token
shift) and pays for that generality on each of the several hundred small ops of a one-token step: a
`BlockInputs` per call, mask decisions, per-branch `getattr`, views of views. `FusedStep` runs the same
arithmetic for the common case directly: the `KVCache` buffers are already preallocated (B, KV, max_len, D)
per layer, so each layer writes its new key/value in place at the cache's column and attends over the
written prefix (one SDPA call without a mask: the newest query sees every cached key). Norms, projections
and activations are the model's own modules, so quantized (`quant.QuantLinear`) and packed linears run
unchanged, and the result equals `model.forward` to float rounding. For one row the linears (fp32
`nn.Linear` and int8 `QuantLinear`) run as `lingvis.native`'s C matrix-vector kernels when they built
(`LINGVIS_NATIVE=0`: torch's), which read the weights faster than MKL's gemv / fbgemm on this CPU
(docs/decoding.md); they sum in another order, so logits differ from `model.forward` by float rounding only.
For one row of an fp32 model made of plain `nn.Linear` / `nn.LayerNorm` / `RMSNorm` layers (GPT-2, Llama,
Qwen), the whole step (every layer, attention over the cache, final norm, LM head) runs as ONE native call
(`native.WholeStep`, one OpenMP parallel region per token; `LINGVIS_NATIVE_STEP=0` keeps the per-op path).

`torch.compile` over the step (`compiled=True`) is offered for experiments; measured on a 2-core Intel
VM it does not beat the eager fused step (docs/decoding.md), so generation uses the eager one.
`supports(model, cache)` says whether a model/cache pair can take the fused path; callers fall back to
`model.forward` otherwise (and always with `LINGVIS_FUSED_STEP=0`).
"""
from __future__ import annotations

import os
import warnings
import weakref

import torch
import torch.nn.functional as F

from . import native
from .nn.cache import KVCache
from .nn.mlp import ACTIVATIONS, GATED
from .nn.position import apply_rotary
from .quant import QuantLinear


def supports(model, cache: KVCache | None) -> bool:
    """True for a GPT-family model (the layout of models.gpt.GPT: `wte`, optional `wpe`/`sin`/`rope`,
    blocks of `ln_1`, `attn.qkv`, `ln_2`, `mlp`, then `ln_f`, `lm_head`) without cross-attention or token
    shift, in eval mode, over a plain cache (no sliding-window ring) with one slot per block."""
    c = getattr(model, "config", None)
    if cache is None or cache.has_ring or c is None or model.training:
        return False
    if not all(hasattr(model, a) for a in ("wte", "wpe", "sin", "rope", "blocks", "ln_f", "lm_head")):
        return False
    if getattr(c, "cross_attention", True) or getattr(c, "token_shift", 1):
        return False
    if c.rope_scaling and c.rope_scaling.get("rope_type") == "dynamic":
        return False  # dynamic NTK recomputes frequencies per length: keep it on the general path
    for blk in model.blocks:
        if getattr(blk, "branches", None) != [("ln_1", "attn", None), ("ln_2", "mlp", None)] or not blk.prenorm:
            return False
        if not hasattr(blk.attn, "qkv") or blk.attn.window is not None and blk.attn.window < cache.max_len:
            return False  # the step attends over every cached column
    return len(cache.k) == len(model.blocks)


class FusedStep:
    """`step(ids (B,)) -> logits (B, V)` for the next position of every row, advancing `cache` by one.
    The cache must already hold the prompt (prefilled by `model.forward`), with no padding."""

    def __init__(self, model, cache: KVCache, use_native: bool = True):
        if not supports(model, cache):
            raise ValueError(f"FusedStep: {type(model).__name__} with this cache is not supported "
                             "(a GPT without cross-attention, token shift or sliding-window ring)")
        self.model, self.cache = model, cache
        c = model.config
        if use_native and os.environ.get("LINGVIS_HUGEPAGES", "1") != "0" and native.available():
            native.hugepage_weights(model)  # once per model; LINGVIS_HUGEPAGES=0 keeps them (docs/decoding.md)
        prep = _prepared(model, use_native)
        self.layers, self.direct, self.head = prep.layers, prep.direct, prep.head
        a0 = model.blocks[0].attn
        self.H, self.KV, self.D = a0.n_heads, a0.n_kv_heads, a0.head_dim
        self.gqa = self.H != self.KV
        self.block_size = c.block_size
        self.rope_cache: dict[int, tuple] = {}  # position -> rotary (cos, sin) (see `_rope`)
        self.whole = None  # batch 1, fp32: the whole step as one native call (native/step.c), when it fits
        if use_native and prep.whole_ok and os.environ.get("LINGVIS_NATIVE_STEP", "1") != "0" \
                and native.available() and cache.k[0] is not None and cache.k[0].shape[0] == 1:
            if prep.whole is None:
                if native.whole_step_reason(model, cache) is None:
                    self.whole = prep.whole = native.WholeStep(model, cache)
            elif native.cache_reason(cache, len(model.blocks), self.KV, self.D) is None:
                self.whole = prep.whole.for_cache(cache)  # the weight descriptions built once per model

    def _positions(self, x: torch.Tensor, p: int) -> tuple[torch.Tensor, tuple | None]:
        m = self.model
        if m.wpe is not None:
            return x + m.wpe.weight[p], None  # (B, 1, C)
        if m.sin is not None:
            return x + m.sin.table[p], None
        if m.rope is not None:
            return x, self._rope(p)  # (1, 1, 1, D) each
        return x, None

    def _rope(self, p: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The rotary (cos, sin) of position p, each (1, 1, 1, D): computed for that one position (as `model.forward`
        would for a one-token step) and kept, so that `rows` and `__call__` rotate by the very same values."""
        cs = self.rope_cache.get(p)
        if cs is None:
            cs = self.rope_cache[p] = self.model.rope(torch.full((1, 1), p, dtype=torch.long,
                                                                 device=self.model.wte.weight.device))
        return cs

    def rows(self, ids: torch.Tensor) -> torch.Tensor | None:
        """(M,) ids of ONE sequence at its next M positions -> (M, V) logits, advancing the cache by M: the batch-1
        native whole step over M rows at once (`native.WholeStep.rows`: each weight read once for all of them; each
        row's logits and cache column bit for bit those of M one-token steps). None (nothing done) when this step
        has no native whole step (callers then run `model.forward` over the M tokens)."""
        M = ids.shape[0]
        cache = self.cache
        p = cache.length
        if self.whole is None or not self.whole.usable() or M > native.STEP_MAX_ROWS:
            return None
        if p + M > min(cache.max_len, self.block_size):
            raise ValueError(f"KV cache overflow: {p} cached + {M} > max_len {min(cache.max_len, self.block_size)}")
        m = self.model
        x = m.wte(ids)  # (M, C); a new tensor, which the native step overwrites
        cos = sin = None
        if m.wpe is not None:
            x = x + m.wpe.weight[p:p + M]
        elif m.sin is not None:
            x = x + m.sin.table[p:p + M]
        elif m.rope is not None:
            tabs = [self._rope(p + i) for i in range(M)]
            cos = torch.cat([c.reshape(1, -1) for c, _ in tabs])  # (M, D)
            sin = torch.cat([s.reshape(1, -1) for _, s in tabs])
        logits = self.whole.rows(x.float().contiguous(), p, cos, sin)  # (M, V); columns p..p+M-1 written
        cache.advance(M)
        return logits

    def token(self, t: int) -> torch.Tensor:
        """One token id (an int) of a batch-1 sequence -> its (V,) logits, advancing the cache by one: `__call__`'s
        native whole step (the same values bit for bit) with less Python around it, for draft models that step
        one token at a time (~50 -> ~30 us per call for a 1 x 128 GPT)."""
        m, cache, whole = self.model, self.cache, self.whole
        if whole is None or type(m.wte) is not torch.nn.Embedding or not whole.usable():
            return self(torch.tensor([t], device=m.wte.weight.device))[0]
        p = cache.length
        if p >= cache.max_len or p >= self.block_size:
            raise ValueError(f"KV cache overflow: {p} cached + 1 > max_len {min(cache.max_len, self.block_size)}")
        x = m.wte.weight[t]  # (C,) view: what the embedding looks up
        cos = sin = None
        if m.wpe is not None:
            x = x + m.wpe.weight[p]  # a new tensor, which the native step overwrites
        elif m.sin is not None:
            x = x + m.sin.table[p]
        else:
            x = x.clone()
            if m.rope is not None:
                cos, sin = (r.reshape(-1) for r in self._rope(p))  # (D,) each
        logits = whole(x, p, cos, sin)  # (V,); the cache's column p written
        cache.advance(1)
        return logits

    def __call__(self, ids: torch.Tensor) -> torch.Tensor:  # (B,) -> (B, V)
        m, cache = self.model, self.cache
        p = cache.length
        if p >= cache.max_len or p >= self.block_size:
            raise ValueError(f"KV cache overflow: {p} cached + 1 > max_len {min(cache.max_len, self.block_size)}")
        B = ids.shape[0]
        H, KV, D = self.H, self.KV, self.D
        x, rope = self._positions(m.wte(ids[:, None]), p)  # (B, 1, C)
        if B == 1 and self.whole is not None and self.whole.usable():
            cos, sin = (None, None) if rope is None else (rope[0].reshape(-1), rope[1].reshape(-1))  # (D,) each
            logits = self.whole(x.reshape(-1).clone(), p, cos, sin)  # (V,); the cache's column p written
            cache.advance(1)
            return logits[None]  # (1, V)
        layers = self.direct if B == 1 else self.layers  # 2+ rows: the modules (oneDNN packed linears)
        for i, (ln1, qkv, q_norm, k_norm, proj, ln2, fc, fc_proj, mlp) in enumerate(layers):
            q, k, v = qkv(ln1(x)).view(B, H + 2 * KV, D).split([H, KV, KV], dim=1)  # (B, H|KV, D)
            q, k, v = q[:, :, None], k[:, :, None], v[:, :, None]  # (B, H|KV, 1, D)
            if q_norm is not None:
                q, k = q_norm(q), k_norm(k)
            if rope is not None:
                q, k = apply_rotary(q, *rope), apply_rotary(k, *rope)
            ck, cv = cache.k[i], cache.v[i]  # (B, KV, max_len, D)
            ck.narrow(2, p, 1).copy_(k)
            cv.narrow(2, p, 1).copy_(v)
            y = F.scaled_dot_product_attention(q, ck.narrow(2, 0, p + 1), cv.narrow(2, 0, p + 1),
                                               enable_gqa=self.gqa)  # (B, H, 1, D)
            x = x + proj(y.view(B, 1, H * D))  # a new tensor: the residual stream is ours to update in place
            h = fc(ln2(x))  # (B, 1, hidden) or (B, 1, 2*hidden)
            if mlp.gated:
                gate, up = h.chunk(2, dim=-1)
                h = GATED[mlp.activation](gate).mul_(up)
            else:
                h = ACTIVATIONS[mlp.activation](h)
            x.add_(fc_proj(h))
        cache.advance(1)
        ln_f, head = self.head if B == 1 else (m.ln_f, m.lm_head)
        return head(ln_f(x))[:, 0]  # (B, V)


class _Prepared:
    """What a `FusedStep` builds from the model's weights alone: per layer the modules and their one-row direct
    calls, the head's, and the native whole step (built with the first cache it fits; other caches copy it)."""

    def __init__(self, model, use_native: bool):
        self.layers, self.direct = [], []  # modules; and for one row, native kernels or direct functions
        for blk in model.blocks:
            a = blk.attn
            mods = (blk.ln_1, a.qkv, a.q_norm, a.k_norm, a.proj, blk.ln_2, blk.mlp.fc, blk.mlp.proj)
            self.layers.append((*mods, blk.mlp))
            self.direct.append((*(_direct(m, use_native) for m in mods), blk.mlp))
        self.head = (_direct(model.ln_f, use_native), _direct(model.lm_head, use_native))  # one row: ln_f, lm_head
        self.whole = None
        # whether the model (weights, layout) takes the whole step; caches are checked per step
        self.whole_ok = use_native and native.available() and _whole_model_ok(model)


def _whole_model_ok(model) -> bool:
    """`native.whole_step_reason` without the cache: a stand-in cache of the right layout."""
    a0 = model.blocks[0].attn
    cache = KVCache(len(model.blocks), 1)
    cache.k = cache.v = [torch.empty(1, a0.n_kv_heads, 1, a0.head_dim)] * len(model.blocks)
    return native.whole_step_reason(model, cache) is None


_PREPARED: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()  # model -> {switches: (signature, _Prepared)}


def _signature(model) -> tuple:
    """Changes when a parameter or buffer is replaced, updated in place or its `requires_grad` flips: a step's
    prepared parts point into the weights (the native descriptions hold raw pointers), so they are rebuilt then."""
    return tuple((t.data_ptr(), _version(t), t.requires_grad) for t in (*model.parameters(), *model.buffers()))


def _version(t: torch.Tensor) -> int:
    """`t`'s version counter; -1 for tensors made under inference mode, which have none (nor can autograd-visible
    code update them in place)."""
    try:
        return t._version
    except RuntimeError:
        return -1


def _prepared(model, use_native: bool) -> _Prepared:
    """The model's `_Prepared` parts, built once and reused while `_signature` holds (~1.3 of ~1.5 ms per
    request of the 4 x 256 benchmark GPT at 1 thread)."""
    # the switches the parts read when built: native kernels on/off (LINGVIS_NATIVE), W8A8 tiles
    switches = (use_native, native.available(), os.environ.get("LINGVIS_INT8_TILED", "1") == "0")
    sig = _signature(model)
    per_model = _PREPARED.setdefault(model, {})
    hit = per_model.get(switches)
    if hit is not None and hit[0] == sig:
        return hit[1]
    prep = _Prepared(model, use_native)
    per_model[switches] = (sig, prep)
    return prep


def _direct(mod, use_native: bool = True):
    """For one row: a plain fp32 `nn.Linear` or a `QuantLinear` as the native kernel (`lingvis.native`: C
    matrix-vector products, when they built); otherwise a plain `nn.Linear` / `nn.LayerNorm` as a direct call
    of its functional form (no module dispatch, no packed-linear check: one row takes MKL's gemv either way);
    any other module as itself."""
    fn = _native(mod) if use_native else None
    if fn is not None:
        return fn
    if type(mod) is torch.nn.Linear:
        w, b = mod.weight, mod.bias
        return lambda x: F.linear(x, w, b)
    if type(mod) is torch.nn.LayerNorm:
        shape, w, b, eps = mod.normalized_shape, mod.weight, mod.bias, mod.eps
        return lambda x: F.layer_norm(x, shape, w, b, eps)
    return mod


def _native(mod):
    """`mod` as a native kernel for one row, or None (turned off, not built, or a layer it does not take)."""
    if type(mod) is torch.nn.Linear:
        w, b = mod.weight, mod.bias
        if (w.dtype != torch.float32 or w.device.type != "cpu" or not w.is_contiguous() or b is not None
                and not b.is_contiguous() or not native.available()):
            return None
        kernel = native.LinearF32(w, b)
        return lambda x: kernel(x) if kernel.accepts(x) else F.linear(x, w, b)
    if type(mod) is QuantLinear:
        kernel = mod.native_kernel()
        return None if kernel is None else lambda x: kernel(x) if kernel.accepts(x) else mod(x)
    return None


class StaticStep(FusedStep):
    """The fused step with the write position as a tensor and attention over the whole preallocated cache
    under a mask (gpt-fast's static cache), so one graph serves every position: what `torch.compile` with
    `dynamic=False` needs. `compile=True` compiles it (inductor; paid once per model, batch and cache size)."""

    def __init__(self, model, cache: KVCache, compile: bool = False, **compile_kw):
        super().__init__(model, cache, use_native=not compile)  # Dynamo cannot trace the ctypes kernels
        if any(t is None for t in cache.k):
            raise ValueError("StaticStep needs a prefilled cache")
        self.compiled = compile
        self.fn = torch.compile(self._step, fullgraph=True, dynamic=False, **compile_kw) if compile else self._step

    def _step(self, ids: torch.Tensor, pos: torch.Tensor, ks: list, vs: list) -> torch.Tensor:
        m = self.model
        B = ids.shape[0]
        H, KV, D = self.H, self.KV, self.D
        S = ks[0].shape[2]
        x = m.wte(ids[:, None])  # (B, 1, C)
        rope = None
        if m.wpe is not None:
            x = x + m.wpe.weight[pos]  # (1, C)
        elif m.sin is not None:
            x = x + m.sin.table[pos]
        elif m.rope is not None:
            rope = m.rope(pos[None])  # (1, 1, 1, D) each
        mask = (torch.arange(S, device=ids.device) <= pos)[None, None, None]  # (1, 1, 1, S)
        layers = self.direct if B == 1 else self.layers  # 2+ rows: the modules (oneDNN packed linears)
        for i, (ln1, qkv, q_norm, k_norm, proj, ln2, fc, fc_proj, mlp) in enumerate(layers):
            q, k, v = qkv(ln1(x)).view(B, H + 2 * KV, D).split([H, KV, KV], dim=1)
            q, k, v = q[:, :, None], k[:, :, None], v[:, :, None]  # (B, H|KV, 1, D)
            if q_norm is not None:
                q, k = q_norm(q), k_norm(k)
            if rope is not None:
                q, k = apply_rotary(q, *rope), apply_rotary(k, *rope)
            ks[i].index_copy_(2, pos, k)
            vs[i].index_copy_(2, pos, v)
            y = F.scaled_dot_product_attention(q, ks[i], vs[i], attn_mask=mask, enable_gqa=self.gqa)
            x = x + proj(y.view(B, 1, H * D))
            h = fc(ln2(x))
            if mlp.gated:
                gate, up = h.chunk(2, dim=-1)
                h = GATED[mlp.activation](gate) * up
            else:
                h = ACTIVATIONS[mlp.activation](h)
            x = x + fc_proj(h)
        return m.lm_head(m.ln_f(x))[:, 0]  # (B, V)

    def __call__(self, ids: torch.Tensor) -> torch.Tensor:  # (B,) -> (B, V)
        cache = self.cache
        p = cache.length
        if p >= cache.max_len or p >= self.block_size:
            raise ValueError(f"KV cache overflow: {p} cached + 1 > max_len {min(cache.max_len, self.block_size)}")
        if self.fn is None:  # compiling failed: the eager fused step
            return super().__call__(ids)
        pos = torch.tensor([p], device=ids.device)
        try:
            out = self.fn(ids, pos, cache.k, cache.v)
        except torch._dynamo.exc.Unsupported as e:  # raised while tracing, before the cache is touched
            if not self.compiled:
                raise
            warnings.warn(f"torch.compile cannot trace this model's decode step ({type(e).__name__}: "
                          f"{str(e).splitlines()[0]}); decoding with the eager fused step", stacklevel=2)
            self.fn = None
            return super().__call__(ids)
        cache.advance(1)
        return out


COMPILE_OPTIONS = {"freezing": True}  # weights as constants: inductor prepacks them for its CPU kernels
_COMPILED: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()  # model -> {shape key: StaticStep}


def _weights_key(model) -> tuple:
    """Changes when any weight is replaced or updated in place (compiled steps freeze the weights)."""
    return tuple((t.data_ptr(), t._version) for t in model.state_dict(keep_vars=True).values())


def step_for(model, cache: KVCache, compile: bool = False):
    """The step generation should use over `cache` (prefilled): a `FusedStep`, a compiled `StaticStep`
    (`compile=True`; compiled once per model, batch size, cache length and weights, then reused), or None
    when the model does not take the fused path (it then runs `model.forward`)."""
    if not supports(model, cache) or os.environ.get("LINGVIS_FUSED_STEP", "1") == "0":
        return None
    if not compile:
        return FusedStep(model, cache)
    ref = cache.k[0]
    key = (tuple(ref.shape), ref.dtype, ref.device, _weights_key(model))
    steps = _COMPILED.setdefault(model, {})
    step = steps.get(key)
    if step is None:
        steps.clear()  # a new shape or new weights: the old compiled steps are stale
        step = steps[key] = StaticStep(model, cache, compile=True, options=COMPILE_OPTIONS)
    step.cache = cache
    return step


def compiled_cache_len(needed: int, context: int, bucket: int = 256) -> int:
    """Cache length for compiled steps: `needed` rounded up to a multiple of `bucket` (at most the context),
    so prompts of different lengths share one compiled graph."""
    return min(context, -(-needed // bucket) * bucket)
