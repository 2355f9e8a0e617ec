"""Weights in memory advised for transparent huge pages: fewer TLB misses while a decode step streams them.

`hugepage_weights(model)` moves the 2-D weights of the model's linear layers (fp32 `weight` parameters and
int8 `weight_int8` buffers, tied ones once) into one anonymous mapping, 2 MB-aligned, advised
`MADV_HUGEPAGE` (so it works where THP is in `madvise` mode) and populated at once (`MADV_POPULATE_WRITE`, Linux
5.14+), one weight at a time (the old storage is freed as each is moved, unless something else holds it). Where
the kernel fell back to 4 kB pages for part of it (no free 2 MB blocks), `MADV_COLLAPSE` (Linux 6.1+) asks it to
compact and collapse those ranges now. `huge_page_share(model)` reads back from /proc/self/smaps how much of the
moved weights really sits in huge pages. Values, dtypes, shapes and parameter objects stay the
same; only where the data lives changes. `generate`'s fused step applies it once per model (`LINGVIS_HUGEPAGES=0`
turns that off): on an idle 2-core AMD EPYC, GPT-2 fp32 greedy decode ran 62.2 tok/s with the weights moved vs
55.9 on a plain fresh copy and 55.0 on the original (interleaved, 4 rounds; docs/decoding.md); on a 2-core Xeon
two races disagreed on its sign.
"""
from __future__ import annotations

import mmap
import weakref
from pathlib import Path

import torch

ALIGN = 2 << 20
# Linux madvise values Python 3.11's mmap module does not name; madvise fails harmlessly (EINVAL) on older kernels
MADV_POPULATE_WRITE = getattr(mmap, "MADV_POPULATE_WRITE", 23)
MADV_COLLAPSE = getattr(mmap, "MADV_COLLAPSE", 25)
_DONE: "weakref.WeakKeyDictionary[torch.nn.Module, tuple[int, int]]" = weakref.WeakKeyDictionary()  # (start, bytes)


def _targets(model: torch.nn.Module) -> list[tuple[torch.nn.Module, str, torch.Tensor]]:
    seen, out = set(), []
    for mod in model.modules():
        for name in ("weight", "weight_int8"):
            t = mod._parameters.get(name) if name in mod._parameters else mod._buffers.get(name)
            if (t is None or t.dim() != 2 or t.device.type != "cpu" or not t.is_contiguous()
                    or not hasattr(mod, "in_features")):
                continue
            if id(t) in seen:
                continue
            seen.add(id(t))
            out.append((mod, name, t))
    return out


def hugepage_weights(model: torch.nn.Module) -> int:
    """Move the linear weights into one hugepage-advised mapping (once per model); returns the bytes moved
    (0 when already done, nothing to move, or the platform has no MADV_HUGEPAGE)."""
    if model in _DONE or not hasattr(mmap, "MADV_HUGEPAGE"):
        return 0
    targets = _targets(model)
    sizes = [-(-t.numel() * t.element_size() // 64) * 64 for _, _, t in targets]  # 64-byte aligned slots
    total = sum(sizes)
    if total == 0:
        return 0
    # private: THP covers it (a shared mapping is shmem, which THP does not)
    buf = mmap.mmap(-1, total + ALIGN, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    raw = torch.frombuffer(buf, dtype=torch.uint8)  # the views made from it keep `buf` alive
    offset = -raw.data_ptr() % ALIGN  # the weights start on a 2 MB boundary
    buf.madvise(mmap.MADV_HUGEPAGE)
    _advise(buf, MADV_POPULATE_WRITE, offset, total)  # fault every page now, in the kernel (huge where it can)
    # ordinary tensors even when called under inference mode (generate's): inference tensors would have no
    # version counter, which the layers' kernel caches read
    with torch.inference_mode(False), torch.no_grad():
        _move(targets, sizes, raw, offset)
    start = raw.data_ptr() + offset
    _DONE[model] = (start, total)
    if anon_huge_bytes(start, total) < total - ALIGN:  # some of it on 4 kB pages: compact and collapse it now
        _advise(buf, MADV_COLLAPSE, offset, -(-total // ALIGN) * ALIGN)
    return total


def hugepage_empty(nbytes: int) -> torch.Tensor:
    """An uninitialised (nbytes,) uint8 tensor in its own private mapping, 2 MB-aligned, advised MADV_HUGEPAGE and
    populated (a plain `torch.empty` where the platform has no MADV_HUGEPAGE); the tensor keeps the mapping alive."""
    if not hasattr(mmap, "MADV_HUGEPAGE") or nbytes <= 0:
        return torch.empty(max(nbytes, 0), dtype=torch.uint8)
    buf = mmap.mmap(-1, nbytes + ALIGN, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    raw = torch.frombuffer(buf, dtype=torch.uint8)
    offset = -raw.data_ptr() % ALIGN
    buf.madvise(mmap.MADV_HUGEPAGE)
    _advise(buf, MADV_POPULATE_WRITE, offset, nbytes)
    return raw[offset:offset + nbytes]


def _advise(buf: mmap.mmap, option: int, start: int, length: int) -> bool:
    """madvise(option) over [start, start + length) of `buf` (page-aligned); False where the kernel refuses it."""
    try:
        buf.madvise(option, start, min(length, len(buf) - start))
        return True
    except (OSError, ValueError):
        return False


def anon_huge_bytes(start: int, length: int) -> int:
    """Bytes of anonymous huge pages (`AnonHugePages` in /proc/self/smaps) in the mappings that overlap
    [start, start + length), at most `length`; 0 where /proc is not readable."""
    try:
        lines = Path("/proc/self/smaps").read_text().splitlines()
    except OSError:
        return 0
    total, inside = 0, False
    for line in lines:
        head = line.split(maxsplit=1)[0] if line else ""
        if "-" in head and ":" not in head:  # a mapping's header line: "start-end perms offset ..."
            lo, hi = (int(v, 16) for v in head.split("-"))
            inside = lo < start + length and hi > start
        elif inside and head == "AnonHugePages:":
            total += int(line.split()[1]) * 1024
    return min(total, length)


def huge_page_share(model: torch.nn.Module) -> tuple[int, int]:
    """(bytes of the model's moved weights that sit in huge pages, bytes moved); (0, 0) if not moved."""
    start, total = _DONE.get(model, (0, 0))
    return (anon_huge_bytes(start, total), total) if total else (0, 0)


def _move(targets, sizes, raw: torch.Tensor, offset: int) -> None:
    """Copy each target into its 64-byte-aligned slot of `raw` from `offset` on and point it there."""
    for (mod, name, t), size in zip(targets, sizes):
        dst = raw[offset:offset + t.numel() * t.element_size()].view(t.dtype).view(t.shape)
        dst.copy_(t)
        if name in mod._parameters:
            t.data = dst  # the same Parameter object (tied modules share it), new storage
        else:
            mod._buffers[name] = dst
        offset += size
