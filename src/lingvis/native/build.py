"""Compile the native kernels (gemv.c, step.c, attention.c, group_norm.c, row_norm.c, rotary.c) once per source,
compiler and CPU; load them (ctypes).

The shared library is built with the system C compiler (`$CC`, else `cc`, else `gcc`) as
`-O3 -march=native -fopenmp -shared -fPIC` (retried without `-march=native`, then without OpenMP), cached under
`~/.cache/lingvis/native/` (`LINGVIS_NATIVE_CACHE` overrides) in a file named by the hash of the source, the
compiler's version line, the flags and the CPU's feature flags, written atomically (temp file + rename) so
concurrent processes never load a half-written library. No compiler or a failed build: `load()` returns None,
with one log line, and callers keep the torch path. `LINGVIS_NATIVE=0` turns the kernels off.
"""
from __future__ import annotations

import ctypes
import functools
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

import torch  # noqa: F401  (loads torch's libgomp first: the library below links the same runtime)

log = logging.getLogger(__name__)

# one library
SOURCES = [Path(__file__).with_name(n) for n in ("gemv.c", "step.c", "attention.c", "group_norm.c", "row_norm.c",
                                                 "rotary.c")]
HEADERS = [Path(__file__).with_name(n) for n in ("dot_f32.h", "dot_int8.h")]  # in the cache key: an edit rebuilds
FLAG_SETS = (["-O3", "-march=native", "-fopenmp"], ["-O3", "-fopenmp"], ["-O3"])
_P, _I, _F = ctypes.c_void_p, ctypes.c_int, ctypes.c_float
SIGNATURES = {  # function -> (argument types, return type)
    "lv_linear_f32": ([_P, _P, _P, _P, _I, _I, _I, _I], None),
    "lv_linear_w8f32": ([_P, _P, _P, _P, _P, _I, _I, _I, _I], None),
    "lv_linear_w8a8": ([_P, _P, _P, _P, _P, _P, _I, _I, _I, _I], _I),
    "lv_step_f32": ([_P, _P, _I, _P, _P, _P, _P, _I], _I),
    "lv_step_rows_f32": ([_P, _P, _I, _I, _P, _P, _P, _P, _I], _I),
    "lv_step_struct_sizes": ([], _I),
    "lv_attention_f32": ([_P, _P, _P, _P, _I, _I, _I, _I, _I, _I, _P, _F, _I, _I], _I),
    "lv_group_norm_nhwc_f32": ([_P, _P, _P, _P, _P, _I, _I, _I, _I, _F, _I, _I], _I),
    "lv_add_norm_f32": ([_P, _P, _P, _P, _P, _P, _I, _I, _F, _I, _I], _I),
    "lv_rotary_f32": ([_P, _P, _P, _P, _I, _I, _I, _I, _P, _P, _I], _I),
}


def cache_dir() -> Path:
    return Path(os.environ.get("LINGVIS_NATIVE_CACHE") or Path.home() / ".cache" / "lingvis" / "native")


def compiler() -> str | None:
    for name in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def _cpu_flags() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(cc: str) -> str:
    try:
        out = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=30, check=False).stdout
        return out.split("\n")[0]
    except (OSError, subprocess.SubprocessError):
        return "?"


def library_path(cc: str, flags: list[str]) -> Path:
    h = hashlib.sha256()
    parts = [f.read_bytes() for f in SOURCES + HEADERS]
    for part in (*parts, _version(cc).encode(), " ".join(flags).encode(), _cpu_flags().encode(),
                 platform.machine().encode()):
        h.update(part)
        h.update(b"\0")
    return cache_dir() / f"lingvis_native-{h.hexdigest()[:20]}.so"


def _compile(cc: str, flags: list[str], out: Path) -> str | None:
    """Build into `out` atomically; None on success, else the compiler's complaint (or the OS error)."""
    tmp = None
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".so", dir=out.parent)
        os.close(fd)
        r = subprocess.run([cc, *flags, "-shared", "-fPIC", "-o", tmp, *map(str, SOURCES), "-lm"],
                           capture_output=True, text=True, timeout=300, check=False)
        if r.returncode != 0:
            lines = (r.stderr or r.stdout).strip().splitlines()
            return lines[-1] if lines else f"exit status {r.returncode}"
        os.replace(tmp, out)
        return None
    except (OSError, subprocess.SubprocessError) as e:
        return str(e)
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


def _open(path: Path) -> ctypes.CDLL:
    lib = ctypes.CDLL(str(path))
    lib.lv_features.restype = ctypes.c_int
    for name, (args, ret) in SIGNATURES.items():
        fn = getattr(lib, name)
        fn.argtypes, fn.restype = args, ret
    return lib


@functools.cache
def load() -> ctypes.CDLL | None:
    """The loaded kernel library, built on first use; None when it cannot be built."""
    cc = compiler()
    if cc is None:
        log.warning("lingvis.native: no C compiler (cc/gcc) found; decoding uses the torch kernels")
        return None
    errors = []
    for flags in FLAG_SETS:
        path = library_path(cc, flags)
        if not path.exists():
            err = _compile(cc, flags, path)
            if err is not None:
                errors.append(f"{' '.join(flags)}: {err}")
                continue
        try:
            return _open(path)
        except (OSError, AttributeError) as e:
            errors.append(f"{path}: {e}")
    log.warning("lingvis.native: building %s failed (%s); decoding uses the torch kernels",
                " + ".join(f.name for f in SOURCES),
                "; ".join(errors))
    return None
