"""Torch-facing native linears for a few rows (decode steps): `x (..., K) -> (..., N)`.

Each wraps one weight (row-major, contiguous, on the CPU) and calls the C kernel through ctypes on
`torch.get_num_threads()` threads. `accepts(x)` says whether an input fits (fp32 on the CPU, at most
`max_rows` rows, no autograd); callers keep their torch path for the rest. The wrappers hold tensors and
plain values only (the ctypes functions are looked up per call), so models holding them deep-copy.
"""
from __future__ import annotations

import os

import torch

from .build import load

MAX_ROWS = 16  # the kernels read the weights once per call and re-read each tile from cache per extra row


def available() -> bool:
    """True when the kernels are on (`LINGVIS_NATIVE` is not "0") and built."""
    return os.environ.get("LINGVIS_NATIVE", "1") != "0" and load() is not None


def _accepts(x: torch.Tensor, K: int, max_rows: int, weight_grad: bool = False) -> bool:
    return (x.dtype == torch.float32 and x.device.type == "cpu" and x.shape[-1] == K
            and 0 < x.numel() <= max_rows * K and not (torch.is_grad_enabled() and (x.requires_grad or weight_grad)))


def _weight_ok(w: torch.Tensor, dtype: torch.dtype) -> bool:
    return w.dim() == 2 and w.dtype == dtype and w.device.type == "cpu" and w.is_contiguous() and w.numel() > 0


class LinearF32:
    """y = x W^T + b in fp32 (the same function as `F.linear`, summed in another order)."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None):
        if not _weight_ok(weight, torch.float32) or bias is not None and (bias.dtype != torch.float32
                                                                          or not bias.is_contiguous()):
            raise ValueError(f"LinearF32 needs a contiguous fp32 CPU weight, got {weight.dtype} "
                             f"{tuple(weight.shape)} on {weight.device}")
        self.weight, self.bias = weight.detach(), None if bias is None else bias.detach()
        self.grad = weight.requires_grad or bias is not None and bias.requires_grad  # autograd: torch's path
        self.N, self.K = weight.shape

    def accepts(self, x: torch.Tensor, max_rows: int = MAX_ROWS) -> bool:
        return _accepts(x, self.K, max_rows, self.grad)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:  # (..., K) -> (..., N); x as `accepts` takes
        x = x.contiguous()
        y = torch.empty(*x.shape[:-1], self.N)
        load().lv_linear_f32(x.data_ptr(), self.weight.data_ptr(), None if self.bias is None else self.bias.data_ptr(),
                y.data_ptr(), x.numel() // self.K, self.N, self.K, torch.get_num_threads())
        return y


class LinearInt8:
    """Per-output-channel int8 weights `wq` (N, K) with fp32 `scales` (N,).

    `activations="int8"` (W8A8): every row of x is quantised on its own uint8 grid, the one fbgemm's dynamic
    linear picks for a single row (range widened to hold 0, 255 steps), multiplied in int32 and rescaled as
    fbgemm does: y = (sx * sw) * (q(x).wq - zp * sum(wq)) + b. `activations="float"` (weight-only): fp32
    activations times the int8 weights converted to fp32, y = (x.wq) * sw + b."""

    def __init__(self, wq: torch.Tensor, scales: torch.Tensor, bias: torch.Tensor | None, activations: str):
        if not _weight_ok(wq, torch.int8) or scales.dtype != torch.float32 or scales.shape != wq.shape[:1]:
            raise ValueError(f"LinearInt8 needs contiguous int8 CPU weights and (N,) fp32 scales, got {wq.dtype} "
                             f"{tuple(wq.shape)} / {scales.dtype} {tuple(scales.shape)}")
        if activations not in ("float", "int8"):
            raise ValueError(f"activations must be 'float' or 'int8', got {activations!r}")
        self.wq, self.scales = wq, scales.contiguous()
        self.bias = None if bias is None else bias.detach().float().contiguous()
        self.N, self.K = wq.shape
        self.activations = activations
        self.wsum = wq.sum(dim=1, dtype=torch.int32) if activations == "int8" else None  # (N,)

    def accepts(self, x: torch.Tensor, max_rows: int = MAX_ROWS) -> bool:
        return _accepts(x, self.K, max_rows)

    def tiled(self) -> torch.Tensor | None:
        """The W8A8 weights with every full tile of 8 rows stored interleaved, for step.c's LV_W8A8_TILED: for each
        64-byte column block the 8 rows' bytes one after another (one sequential stream per tile instead of eight
        strided ones), the last partial tile row-major at the same offset; (N * K,) int8 in huge-page-advised
        memory, built once per kernel (a second copy of the int8 weights). None for weight-only kernels, K not a
        multiple of 64, fewer than 8 rows, or `LINGVIS_INT8_TILED=0`."""
        if (self.activations != "int8" or self.K % 64 or self.N < 8
                or os.environ.get("LINGVIS_INT8_TILED", "1") == "0"):
            return None
        if getattr(self, "_tiled", None) is None:
            from .hugepages import hugepage_empty

            N, K, full = self.N, self.K, self.N // 8 * 8
            out = hugepage_empty(N * K).view(torch.int8)
            tiles = self.wq[:full].view(N // 8, 8, K // 64, 64).transpose(1, 2)  # (tile, block, row, 64 bytes)
            out[:full * K].view(N // 8, K // 64, 8, 64).copy_(tiles)
            out[full * K:].copy_(self.wq[full:].reshape(-1))
            self._tiled = out
        return self._tiled

    def __call__(self, x: torch.Tensor) -> torch.Tensor:  # (..., K) -> (..., N); x as `accepts` takes
        x = x.contiguous()
        M = x.numel() // self.K
        y = torch.empty(*x.shape[:-1], self.N)
        b = None if self.bias is None else self.bias.data_ptr()
        if self.activations == "int8":
            if load().lv_linear_w8a8(x.data_ptr(), self.wq.data_ptr(), self.wsum.data_ptr(), self.scales.data_ptr(),
                                     b, y.data_ptr(), M, self.N, self.K, torch.get_num_threads()) != 0:
                raise MemoryError(f"lv_linear_w8a8: no scratch memory for {M} x {self.K} quantised activations")
        else:
            load().lv_linear_w8f32(x.data_ptr(), self.wq.data_ptr(), self.scales.data_ptr(), b, y.data_ptr(), M,
                                   self.N, self.K, torch.get_num_threads())
        return y
