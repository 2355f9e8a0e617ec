"""Native decode kernels: fp32 and int8 matrix-vector products in C, built at first use (see build.py).

`available()` says whether they loaded; `LinearF32` / `LinearInt8` wrap one weight each (kernels.py);
`hugepage_weights(model)` moves a model's linear weights into hugepage-advised memory (hugepages.py).
"""
from .build import load
from .hugepages import hugepage_weights
from .kernels import MAX_ROWS, LinearF32, LinearInt8, available

__all__ = ["MAX_ROWS", "LinearF32", "LinearInt8", "available", "hugepage_weights", "load"]
