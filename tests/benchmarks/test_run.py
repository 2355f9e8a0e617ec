"""The `make bench` driver: collects rows, survives failing modules, writes the table and the plots."""
from __future__ import annotations

import sys
import types

import pytest

from benchmarks import run as driver


@pytest.fixture
def fake_modules(monkeypatch):
    ok = types.ModuleType("benchmarks.fake_ok")
    ok.run = lambda quick: [
        {"benchmark": f"fwd batch {b}", "lingvis": 10.0 * b, "reference": 8.0 * b, "unit": "tokens/s",
         "ratio": 1.25, "series": "fake", "sweep": "batch", "batch": b, "seq_len": 64, "quick": quick}
        for b in (1, 2, 4)]
    bad = types.ModuleType("benchmarks.fake_bad")
    bad.run = lambda quick: 1 / 0
    shapeless = types.ModuleType("benchmarks.fake_shapeless")
    shapeless.run = lambda quick: [{"benchmark": "x"}]
    for m in (ok, bad, shapeless):
        monkeypatch.setitem(sys.modules, m.__name__, m)


def test_rows_errors_table_and_plots(fake_modules, tmp_path):
    results = [driver.run_module(n, True, 60) for n in ("fake_ok", "fake_bad", "fake_shapeless")]
    ok, bad, shapeless = results
    assert len(ok["rows"]) == 3 and ok["error"] is None and ok["rows"][0]["quick"] is True
    assert bad["rows"] == [] and bad["error"].startswith("ZeroDivisionError")
    assert "without" in shapeless["error"]
    md = driver.markdown(results, driver.machine(), quick=True)
    assert "| fake_ok | fwd batch 4 | 40.0 | 32.0 | tokens/s | 1.250 |" in md
    assert "ZeroDivisionError" in md and "quick run" in md
    rows = [r for res in results for r in res["rows"]]
    assert driver.plot(rows, "batch", tmp_path / "b.png") and (tmp_path / "b.png").stat().st_size > 1000
    assert not driver.plot(rows, "seq_len", tmp_path / "s.png")  # no sequence-length sweep in these rows


def test_timeout_abandons_a_module(monkeypatch):
    import time

    slow = types.ModuleType("benchmarks.fake_slow")
    slow.run = lambda quick: time.sleep(5)
    monkeypatch.setitem(sys.modules, slow.__name__, slow)
    res = driver.run_module("fake_slow", True, 1)
    assert res["error"].startswith("ModuleTimeout") and res["seconds"] < 4


def test_discover_finds_modules_and_rejects_unknown_names():
    names = driver.discover()
    assert "mfu" in names and "int8_decode" in names and "run" not in names and "_timing" not in names
    assert not any(n.endswith("_learning") for n in names)
    assert driver.discover(["mfu"]) == ["mfu"]
    with pytest.raises(SystemExit, match="no benchmark module"):
        driver.discover(["nope"])
