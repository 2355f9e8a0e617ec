"""The per-shape kernel choice (nn/gemm_select.py) with injected timings: the faster kernel wins by the margin,
each (rows bucket, K, N, threads) is measured once, LINGVIS_GEMM forces a kernel, and the real measurement
returns a time for both kernels."""
import pytest
import torch

from lingvis.nn import gemm_select
from lingvis.nn.gemm_select import MIN_MEASURE_ROWS, GemmChooser, measure_kernels, measure_rows, rows_bucket


def _timer(times: dict[str, float], calls: list):
    def timer(kernel, rows, k, n):
        calls.append((kernel, rows, k, n))
        return times[kernel]
    return timer


@pytest.fixture(autouse=True)
def auto(monkeypatch):
    monkeypatch.delenv("LINGVIS_GEMM", raising=False)


@pytest.mark.parametrize("rows, bucket", [(0, 1), (1, 1), (2, 2), (3, 4), (4, 4), (5, 8), (197, 256), (256, 256),
                                          (1024, 1024), (1025, 2048), (1568, 2048), (5000, 8192)])
def test_rows_bucket(rows, bucket):
    assert rows_bucket(rows) == bucket


def test_big_buckets_are_measured_at_fewer_rows_down_to_the_floor():
    assert measure_rows(8192, 64, 512) == 8192  # 268 M multiply-adds: as is
    assert measure_rows(8192, 768, 3072) == 512 * 2 == MIN_MEASURE_ROWS  # 19 G: halved to the floor
    assert measure_rows(4096, 512, 1024) == 4096  # exactly 2^31
    assert measure_rows(8192, 512, 1024) == 4096
    assert measure_rows(256, 4096, 32000) == 256  # under the floor: never halved


@pytest.mark.parametrize("mkl, onednn, kernel", [(1.0, 0.5, "onednn"), (1.0, 1.0, "mkl"), (1.0, 0.99, "mkl"),
                                                 (1.0, 0.95, "onednn"), (0.5, 1.0, "mkl")])
def test_faster_kernel_wins_by_the_margin(mkl, onednn, kernel):
    chooser = GemmChooser(timer=_timer({"mkl": mkl, "onednn": onednn}, []))
    assert chooser.choose(64, 768, 3072) == kernel


def test_each_bucket_is_measured_once_at_its_rows():
    calls = []
    chooser = GemmChooser(timer=_timer({"mkl": 2.0, "onednn": 1.0}, calls))
    for rows in (100, 128, 97, 100):  # one bucket (97..128)
        assert chooser.choose(rows, 64, 32) == "onednn"
    assert sorted(calls) == [("mkl", 128, 64, 32), ("onednn", 128, 64, 32)]
    chooser.choose(1568, 64, 32)  # the 2048 bucket: measured at 2048 rows
    chooser.choose(128, 32, 64)  # another shape
    chooser.choose(5000, 4096, 4096)  # a big product: measured at the floor
    assert ("mkl", 2048, 64, 32) in calls and ("onednn", 128, 32, 64) in calls
    assert ("mkl", MIN_MEASURE_ROWS, 4096, 4096) in calls
    assert len(calls) == 8
    table = chooser.table()
    assert [(r["rows_bucket"], r["k"], r["n"], r["kernel"]) for r in table] == [
        (128, 32, 64, "onednn"), (128, 64, 32, "onednn"), (2048, 64, 32, "onednn"), (8192, 4096, 4096, "onednn")]
    assert table[0]["onednn_speedup"] == 2.0


def test_one_row_stays_on_mkl_without_measuring_without_the_native_gemv():
    calls = []
    chooser = GemmChooser(timer=_timer({"mkl": 2.0, "onednn": 1.0, "native": 1.0}, calls), gemv=False)
    assert chooser.choose(1, 768, 3072) == "mkl" and calls == []


def test_thread_count_is_part_of_the_key():
    calls = []
    chooser = GemmChooser(timer=_timer({"mkl": 2.0, "onednn": 1.0}, calls))
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        chooser.choose(8, 16, 16)
        torch.set_num_threads(2)
        chooser.choose(8, 16, 16)
    finally:
        torch.set_num_threads(threads)
    assert len(calls) == 4


def test_environment_forces_a_kernel_without_measuring(monkeypatch):
    calls = []
    chooser = GemmChooser(timer=_timer({"mkl": 2.0, "onednn": 1.0}, calls))
    monkeypatch.setenv("LINGVIS_GEMM", "mkl")
    assert chooser.choose(64, 64, 64) == "mkl"
    monkeypatch.setenv("LINGVIS_GEMM", "onednn")
    assert chooser.choose(64, 64, 64) == "onednn"
    assert calls == []
    monkeypatch.setenv("LINGVIS_GEMM", "blas")
    with pytest.raises(ValueError, match="LINGVIS_GEMM"):
        chooser.choose(64, 64, 64)


def test_process_wide_choice_uses_the_shared_cache(monkeypatch):
    chooser = GemmChooser(timer=_timer({"mkl": 1.0, "onednn": 3.0}, []))
    monkeypatch.setattr(gemm_select, "CHOOSER", chooser)
    assert gemm_select.choose_kernel(8, 8, 8) == "mkl"
    assert list(chooser.decisions.values()) == ["mkl"]


@pytest.mark.skipif(not hasattr(torch.ops.mkldnn, "_linear_pointwise"), reason="no oneDNN linear in this build")
def test_real_measurement_times_both_kernels(monkeypatch):
    state = torch.get_rng_state()
    times = measure_kernels(4, 32, 16)
    assert torch.equal(torch.get_rng_state(), state)  # the global RNG stream is untouched
    assert set(times) == {"mkl", "onednn"} and all(0 < t < 1 for t in times.values())
    assert GemmChooser().choose(4, 32, 16) in ("mkl", "onednn")
    shapes = []
    real = torch.randn

    def spy(*shape, **kw):
        shapes.append(shape)
        return real(*shape, **kw)

    monkeypatch.setattr(gemm_select, "STREAM_BYTES", 64 * 1024)
    monkeypatch.setattr(torch, "randn", spy)
    measure_kernels(2, 64, 5000)  # a 1.3 MB weight over a 64 KB budget: measured on 256 output columns, once
    assert shapes == [(2, 64), (256,), (256, 64)]


def test_one_row_measures_mkl_against_the_native_gemv():
    calls = []
    chooser = GemmChooser(timer=_timer({"mkl": 2.0, "native": 1.0}, calls), gemv=True)
    assert chooser.choose(1, 768, 3072) == "native" and chooser.choose(1, 768, 3072) == "native"
    assert calls == [("mkl", 1, 768, 3072), ("native", 1, 768, 3072)]  # once, at one row
    assert chooser.table()[0]["native_speedup"] == 2.0
    slow = GemmChooser(timer=_timer({"mkl": 1.0, "native": 0.99}, []), gemv=True)
    assert slow.choose(1, 64, 64) == "mkl"  # under the margin: MKL


def test_environment_forces_one_row_too(monkeypatch):
    calls = []
    chooser = GemmChooser(timer=_timer({"mkl": 2.0, "native": 1.0}, calls), gemv=True)
    monkeypatch.setenv("LINGVIS_GEMM", "mkl")
    assert chooser.choose(1, 64, 64) == "mkl" and calls == []


@pytest.mark.skipif(not gemm_select.gemv_available(), reason="native kernels not built")
def test_real_one_row_measurement_times_mkl_and_the_native_gemv():
    times = measure_kernels(1, 32, 16)
    assert set(times) == {"mkl", "native"} and all(0 < t < 1 for t in times.values())
    assert GemmChooser().choose(1, 32, 16) in ("mkl", "native")
    x, w, b = torch.randn(1, 33), torch.randn(17, 33), torch.randn(17)
    torch.testing.assert_close(gemm_select.native_linear(x, w, b), torch.nn.functional.linear(x, w, b),
                               rtol=1e-5, atol=1e-5)
