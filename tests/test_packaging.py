"""The wheel: built from the source tree, installed into a fresh venv (no system site-packages), it holds
the package files (py.typed, the web page, the corpus), the MIT licence and the right metadata, and the
installed copy imports and answers `lingvis --version`.

The fresh venv gets torch and the other dependencies by a .pth line pointing at the site-packages that
holds this interpreter's torch (installing them would need the network); lingvis itself comes from the
wheel only (a .pth-added folder's own .pth files, such as an editable install's finder, are not run)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

import lingvis

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow  # builds a wheel and a venv (about 20 s on 2 cores)


def _run(*cmd, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=300, **kw)
    assert proc.returncode == 0, f"{cmd}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    return proc


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """`pip wheel --no-deps` of a copy of the source tree (the build leaves no files in the checkout)."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src-copy"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "src", src / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    env = {**os.environ, "PIP_NO_INDEX": "1"}  # the build uses this interpreter's setuptools, no downloads
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", tmp / "dist",
         src, env=env)
    (whl,) = (tmp / "dist").glob("lingvis-*.whl")
    return whl


def test_wheel_holds_package_data_licence_and_metadata(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert wheel.name.startswith(f"lingvis-{lingvis.__version__}-")
    assert "lingvis/py.typed" in names
    assert {"lingvis/native/gemv.c", "lingvis/native/attention.c"} <= names  # compiled at first use
    assert {f"lingvis/serve/static/{f}" for f in ("index.html", "app.js", "style.css")} <= names
    assert sum(n.startswith("lingvis/data/corpus/shakespeare/") for n in names) >= 5
    info = f"lingvis-{lingvis.__version__}.dist-info"
    assert f"{info}/licenses/LICENSE" in names
    meta = zipfile.ZipFile(wheel).read(f"{info}/METADATA").decode()
    assert "License-Expression: MIT" in meta and f"Version: {lingvis.__version__}" in meta
    assert "Provides-Extra: track" in meta
    core = [line for line in meta.splitlines() if line.startswith("Requires-Dist:") and "extra ==" not in line]
    assert not any(pkg in " ".join(core) for pkg in ("scikit-learn", "pycocoevalcap", "sacrebleu", "transformers"))
    entry = zipfile.ZipFile(wheel).read(f"{info}/entry_points.txt").decode()
    assert "lingvis = lingvis.cli:main" in entry
    source = {str(p.relative_to(ROOT / "src")) for p in (ROOT / "src" / "lingvis").rglob("*.py")}
    assert source <= names, f"modules missing from the wheel: {sorted(source - names)[:5]}"


def test_wheel_installs_into_a_fresh_venv_and_runs(wheel, tmp_path):
    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", venv)
    py = venv / "bin" / "python"
    _run(sys.executable, "-m", "pip", "--python", py, "install", "--no-deps", "--no-index", "-q", wheel)
    site = Path(_run(py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout.strip())
    import torch

    deps = Path(torch.__file__).resolve().parents[1]  # the site-packages holding torch, numpy, ...
    (site / "_lingvis_test_deps.pth").write_text(f"{deps}\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["HF_HUB_OFFLINE"] = "1"
    probe = ("import lingvis, pathlib; from importlib.metadata import version; "
             "p = pathlib.Path(lingvis.__file__).parent; "
             "print(p, version('lingvis'), (p / 'py.typed').is_file(), "
             "len(list((p / 'data' / 'corpus').rglob('*.txt*'))) > 0)")
    where, ver, typed, corpus = _run(py, "-c", probe, env=env, cwd=tmp_path).stdout.split()
    assert Path(where).resolve().is_relative_to(site.resolve())  # the wheel's copy, not the checkout
    assert (ver, typed, corpus) == (lingvis.__version__, "True", "True")
    out = _run(venv / "bin" / "lingvis", "--version", env=env, cwd=tmp_path).stdout.strip()
    assert out == f"lingvis {lingvis.__version__}"
    assert sysconfig.get_paths()["purelib"] != str(site)
