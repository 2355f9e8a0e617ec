"""Native decode kernels: fp32 and int8 matrix-vector products in C, built at first use (see build.py).

`available()` says whether they loaded; `LinearF32` / `LinearInt8` wrap one weight each (kernels.py);
`WholeStep(model, cache)` runs a batch-1 fp32 decode step of a GPT-family model as one call (step.py, step.c), and
`WholeStep.rows` up to STEP_MAX_ROWS consecutive positions of one sequence in one call (speculative verification);
`hugepage_weights(model)` moves a model's linear weights into hugepage-advised memory, `huge_page_share(model)`
says how much of them the kernel backed with huge pages (hugepages.py); `attention.native_attention(q, k, v)` is an
fp32 flash-style attention (attention.c), which `lingvis.nn.fast_attention` runs where it measures faster than SDPA;
`group_norm.group_norm_nhwc` is a channels-last GroupNorm (+ add, + SiLU) in one pass (group_norm.c), used by the
UNet's inference path.
"""
from .build import load
from .hugepages import huge_page_share, hugepage_weights
from .kernels import MAX_ROWS, LinearF32, LinearInt8, available
from .step import STEP_MAX_ROWS, WholeStep, cache_reason, whole_step_reason

__all__ = ["MAX_ROWS", "STEP_MAX_ROWS", "LinearF32", "LinearInt8", "WholeStep", "available", "cache_reason",
           "huge_page_share", "hugepage_weights", "load", "whole_step_reason"]
