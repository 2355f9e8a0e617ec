"""`eval_mode(model)`: the model in evaluation mode while a block runs, restored exactly afterwards.

`model.eval()` ... `model.train(was)` walks every submodule twice per call (for LLaVA's benchmark model, 172
modules: ~1.1-1.7 ms of Python a pair, and generation made two pairs per first token, ~3% of its time) and
restores a uniform mode, losing per-part modes (a frozen tower kept in eval while the rest trains is only
restored by an overridden `train`). This walks the modules once, switches off only those in training mode
(none for a model already in eval: the common inference case) and switches exactly those back on at exit.
"""
from __future__ import annotations

import contextlib
import weakref
from collections.abc import Iterator

from torch import nn

_ACTIVE: "weakref.WeakKeyDictionary[nn.Module, int]" = weakref.WeakKeyDictionary()  # model -> uses in progress


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Every submodule of `model` with `training == False` inside the block; at exit the modules that were in
    training mode are again (nothing else changes). A use nested in another on the same model (a model's
    `generate` calling the generic one) does not walk the modules again: the outer use switched them."""
    if _ACTIVE.get(model, 0) > 0:
        _ACTIVE[model] += 1
        try:
            yield model
        finally:
            _ACTIVE[model] -= 1
        return
    switched = [m for m in model.modules() if m.training]
    for m in switched:
        m.training = False
    _ACTIVE[model] = 1
    try:
        yield model
    finally:
        _ACTIVE[model] -= 1
        for m in switched:
            m.training = True
