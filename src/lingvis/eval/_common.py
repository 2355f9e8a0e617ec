"""Small shared helpers for the metric modules (input coercion and safe division)."""
from __future__ import annotations

from typing import Any


def to_list(values: Any, name: str) -> list:
    """Return `values` (list, tuple, numpy array or torch tensor) as a flat python list."""
    if hasattr(values, "tolist"):  # numpy arrays and torch tensors
        values = values.tolist()
    if not isinstance(values, (list, tuple)):
        raise TypeError(f"{name}: expected a sequence, array or tensor, got {type(values).__name__}")
    values = list(values)
    for i, v in enumerate(values):
        if isinstance(v, (list, tuple)):
            raise ValueError(f"{name}: expected a 1-D sequence, element {i} is a {type(v).__name__}")
    return values


def safe_div(num: float, den: float) -> float:
    """`num / den`, or 0.0 when `den` is zero (sklearn's zero_division=0 convention)."""
    return float(num) / den if den else 0.0


def f_beta(precision: float, recall: float, beta: float = 1.0) -> float:
    """Weighted harmonic mean of precision and recall; 0.0 when both are zero."""
    b2 = beta * beta
    den = b2 * precision + recall
    return (1 + b2) * precision * recall / den if den else 0.0
