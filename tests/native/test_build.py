"""Building and loading the native kernels (lingvis/native/build.py): cached by source/compiler/CPU, written
atomically, one log line and the torch path when no compiler works, torch's own OpenMP runtime."""
import logging
import sys

import pytest

from lingvis.native import build


def test_builds_once_into_the_cache(tmp_path, monkeypatch):
    if build.compiler() is None:
        pytest.skip("no C compiler")
    monkeypatch.setenv("LINGVIS_NATIVE_CACHE", str(tmp_path))
    lib = build.load.__wrapped__()
    assert lib is not None and lib.lv_features() >= 0
    files = sorted(p.name for p in tmp_path.iterdir())
    assert len(files) == 1 and files[0].startswith("lingvis_native-") and files[0].endswith(".so")  # no temp left
    stamp = (tmp_path / files[0]).stat().st_mtime_ns
    assert build.load.__wrapped__() is not None
    assert (tmp_path / files[0]).stat().st_mtime_ns == stamp  # reused, not rebuilt
    cc = build.compiler()
    assert build.library_path(cc, ["-O3"]) != build.library_path(cc, ["-O2"])


def test_every_source_and_header_is_in_the_cache_key():
    """An edit to any .c or .h of the library must rebuild it: dot_int8.h was once left out of the key, so edits to
    it were served the stale cached library."""
    folder = build.SOURCES[0].parent
    assert set(build.SOURCES) | set(build.HEADERS) == set(folder.glob("*.c")) | set(folder.glob("*.h"))


def test_a_failing_compiler_falls_back_with_one_log_line(tmp_path, monkeypatch, caplog):
    broken = tmp_path / "cc"
    broken.write_text("#!/bin/sh\necho 'cc: error: no such compiler' >&2\nexit 1\n")
    broken.chmod(0o755)
    monkeypatch.setenv("LINGVIS_NATIVE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("CC", str(broken))
    with caplog.at_level(logging.WARNING, logger="lingvis.native.build"):
        assert build.load.__wrapped__() is None
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "torch kernels" in lines[0] and "no such compiler" in lines[0]
    assert not any((tmp_path / "cache").glob("*.so*"))


def test_no_compiler_falls_back(monkeypatch, caplog):
    monkeypatch.setattr(build, "compiler", lambda: None)
    with caplog.at_level(logging.WARNING, logger="lingvis.native.build"):
        assert build.load.__wrapped__() is None
    assert "no C compiler" in caplog.text


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/maps")
def test_one_openmp_runtime():
    """The library links libgomp.so.1 by name: the copy torch already loaded, not a second runtime."""
    if build.load() is None:
        pytest.skip("native kernels did not build")
    with open("/proc/self/maps") as fh:
        gomp = {line.split()[-1] for line in fh if "libgomp" in line}
    # wheels bundle their own renamed copies (scikit-learn, sentencepiece: loaded by other tests); the
    # system runtime, which a library linking libgomp.so.1 on its own would bring in, must not be among them
    assert not [p for p in gomp if not any(d in p for d in ("site-packages", "dist-packages"))], gomp


def test_an_unwritable_cache_falls_back(tmp_path, monkeypatch, caplog):
    if build.compiler() is None:
        pytest.skip("no C compiler")
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("LINGVIS_NATIVE_CACHE", str(blocker / "native"))  # mkdir under a file fails
    with caplog.at_level(logging.WARNING, logger="lingvis.native.build"):
        assert build.load.__wrapped__() is None
    assert "torch kernels" in caplog.text
