"""oneDNN packed-weight linears for CPU inference: same results as F.linear, used where the (injected) kernel
choice says oneDNN and autograd is off, rebuilt when weights change, restored on exit, safe to deep-copy."""
import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import lingvis
from lingvis.generate import generate_ids, pad_left
from lingvis.nn import gemm_select, packed_linear
from lingvis.nn.gemm_select import GemmChooser
from lingvis.nn.packed_linear import linear, packed_available, packed_linears, release_packed

pytestmark = pytest.mark.skipif(not packed_available(), reason="torch build without oneDNN packed linear ops")


def _prefer(onednn_below: int, gemv: bool = False):
    """A kernel choice with injected timings: oneDNN (one row: the native GEMV, when `gemv`) measures faster for
    row buckets up to `onednn_below`."""
    return GemmChooser(timer=lambda kernel, rows, k, n: (1.0 if kernel == "mkl" else 0.5) if rows <= onednn_below
                       else (1.0 if kernel == "mkl" else 2.0), gemv=gemv)


@pytest.fixture(autouse=True)
def onednn_up_to_256_rows(monkeypatch):
    """Deterministic choice (no timing in tests): oneDNN for 1..256 rows, MKL above."""
    monkeypatch.delenv("LINGVIS_GEMM", raising=False)
    monkeypatch.setattr(gemm_select, "CHOOSER", _prefer(256))


def _calls(monkeypatch) -> list[int]:
    """Record the row count of every packed call."""
    rows = []
    real = torch.ops.mkldnn._linear_pointwise

    def spy(x, *a):
        rows.append(x.shape[0])
        return real(x, *a)

    monkeypatch.setattr(torch.ops.mkldnn, "_linear_pointwise", spy)
    return rows


@pytest.mark.parametrize("shape", [(2, 48), (4, 1, 48), (3, 5, 48), (256, 48)])
def test_packed_equals_linear_where_chosen(shape, monkeypatch):
    torch.manual_seed(0)
    lin = nn.Linear(48, 40)
    x = torch.randn(*shape)
    rows = _calls(monkeypatch)
    with torch.no_grad(), packed_linears(lin):
        y = lin(x)
    assert rows == [x.numel() // 48]  # the packed path ran
    assert y.shape == (*shape[:-1], 40)
    torch.testing.assert_close(y, F.linear(x, lin.weight, lin.bias), rtol=1e-5, atol=1e-5)


def test_mkl_choice_and_autograd_run_f_linear_exactly(monkeypatch):
    torch.manual_seed(0)
    lin = nn.Linear(16, 8)
    rows = _calls(monkeypatch)
    with packed_linears(lin):
        many = torch.randn(257, 16)  # the injected choice says MKL above 256 rows
        one = torch.randn(1, 16)  # one row without the native GEMV: MKL's gemv whatever the timings
        with torch.no_grad():
            assert torch.equal(lin(many), F.linear(many, lin.weight, lin.bias))
            assert torch.equal(lin(one), F.linear(one, lin.weight, lin.bias))
        y = lin(torch.randn(4, 16))  # autograd on: training keeps the ordinary path
        assert y.grad_fn is not None
    assert rows == []


def test_forced_kernel_from_environment(monkeypatch):
    torch.manual_seed(0)
    lin = nn.Linear(16, 8)
    x = torch.randn(4, 16)
    rows = _calls(monkeypatch)
    with torch.no_grad(), packed_linears(lin):
        monkeypatch.setenv("LINGVIS_GEMM", "mkl")
        assert torch.equal(lin(x), F.linear(x, lin.weight, lin.bias))
        monkeypatch.setenv("LINGVIS_GEMM", "onednn")
        lin(torch.randn(300, 16))
    assert rows == [300]


ACTS = {"gelu": F.gelu, "gelu_tanh": lambda y: F.gelu(y, approximate="tanh"), "silu": F.silu}


@pytest.mark.parametrize("epilogue", sorted(ACTS))
def test_linear_function_with_fused_epilogue(epilogue, monkeypatch):
    torch.manual_seed(0)
    owner = nn.Module()
    w, b = torch.randn(24, 16), torch.randn(24)
    x = torch.randn(2, 300, 16)  # 600 rows: MKL is the choice, the fused epilogue still runs on oneDNN
    rows = _calls(monkeypatch)
    with torch.no_grad():
        y = linear(x, w, b, owner, "fc", epilogue)
    assert rows == [600] and y.shape == (2, 300, 24)
    torch.testing.assert_close(y, ACTS[epilogue](F.linear(x, w, b)), rtol=1e-5, atol=1e-5)
    y = linear(x, w.requires_grad_(), b, owner, "fc", epilogue)  # autograd on: F.linear then the activation
    assert y.grad_fn is not None and rows == [600]
    with pytest.raises(ValueError, match="epilogue"):
        linear(x, w, b, owner, "fc", "relu")


def test_weight_changes_repack_and_exit_restores():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 3))
    x = torch.randn(5, 8)
    with torch.no_grad():
        with packed_linears(model):
            with packed_linears(model):  # nested: the inner exit keeps the outer override
                model(x)
            assert "forward" in model[0].__dict__
            model[0].weight.mul_(-1)  # in-place update: must not use the stale packed copy
            torch.testing.assert_close(model(x), model[2](torch.relu(F.linear(x, model[0].weight, model[0].bias))))
        assert "forward" not in model[0].__dict__ and "forward" not in model[2].__dict__
    release_packed(model)


def test_deep_copy_inside_the_block_follows_the_copy():
    torch.manual_seed(0)
    lin = nn.Linear(8, 4)
    x = torch.randn(3, 8)
    with torch.no_grad(), packed_linears(lin):
        twin = copy.deepcopy(lin)
        twin.weight.mul_(2)
        torch.testing.assert_close(twin(x), F.linear(x, twin.weight, twin.bias))


def test_switched_off_by_environment(monkeypatch):
    monkeypatch.setenv("LINGVIS_PACKED_LINEAR", "0")
    lin = nn.Linear(8, 4)
    with packed_linears(lin):
        assert "forward" not in lin.__dict__


def test_batched_generation_uses_it_and_matches_each_prompt_alone(monkeypatch):
    torch.manual_seed(0)
    model = lingvis.build("gpt-nano", vocab_size=41, block_size=32).eval()
    prompts = [[3, 9, 4, 1], [7, 2], [5, 5, 8, 1], [6, 1, 2, 3, 4]]
    ids, mask = pad_left(prompts)
    rows = _calls(monkeypatch)
    out = generate_ids(model, ids, mask, max_new_tokens=10)
    assert 8 in rows and 5 in rows and 4 in rows  # prefill groups of 2x4 and 1x5 tokens, 4-row steps
    for i, p in enumerate(prompts):
        alone = generate_ids(model, torch.tensor([p]), max_new_tokens=10)[0, len(p):]
        assert out[i, ids.shape[1]:].tolist() == alone.tolist()


def test_per_call_views_of_a_parameter_reuse_one_packed_copy(monkeypatch):
    torch.manual_seed(0)
    conv = nn.Conv2d(16, 8, 1)
    x = torch.randn(6, 16)
    packs = []
    real = torch.ops.mkldnn._reorder_linear_weight

    def spy(w, *a):
        packs.append(tuple(w.shape))
        return real(w, *a)

    monkeypatch.setattr(torch.ops.mkldnn, "_reorder_linear_weight", spy)
    with torch.no_grad():
        for _ in range(3):  # a fresh (8, 16) view each call: packed once
            y = linear(x, conv.weight.reshape(8, 16), conv.bias, conv, "pointwise")
        assert packs == [(8, 16)]
        conv.weight.mul_(2)  # in place: the version the view shares changes
        y = linear(x, conv.weight.reshape(8, 16), conv.bias, conv, "pointwise")
        assert len(packs) == 2
        torch.testing.assert_close(y, F.linear(x, conv.weight.reshape(8, 16), conv.bias))
        with torch.inference_mode():
            derived = conv.weight.reshape(8, 16) * 1  # an inference tensor: no version counter
            linear(x, derived, None, conv, "derived")
            linear(x, derived, None, conv, "derived")
            assert len(packs) == 3
            other = derived * 2  # a new tensor: repacked even if its address reuses a freed one's
            torch.testing.assert_close(linear(x, other, None, conv, "derived"), F.linear(x, other))
            assert len(packs) == 4


def test_memory_room_reads_meminfo(tmp_path):
    info = tmp_path / "meminfo"
    info.write_text("MemTotal:       1000 kB\nMemFree:         100 kB\nMemAvailable:    600 kB\n")
    assert packed_linear.memory_room(300 * 1024, str(info))  # 300 kB left: above a quarter of 1000 kB
    assert not packed_linear.memory_room(400 * 1024, str(info))  # 200 kB left: below
    assert packed_linear.memory_room(10**12, str(tmp_path / "missing"))  # no /proc: no limit


def test_no_room_for_a_packed_copy_runs_f_linear(monkeypatch):
    """A model too large to hold a second copy of its weights keeps MKL on the plain ones (and caches nothing)."""
    torch.manual_seed(0)
    lin = nn.Linear(48, 40)
    x = torch.randn(3, 48)
    rows = _calls(monkeypatch)
    monkeypatch.setattr(packed_linear, "memory_room", lambda nbytes: False)
    with torch.no_grad(), packed_linears(lin):
        y = lin(x)
        g = packed_linear.linear(x, lin.weight, lin.bias, lin, "w2", epilogue="gelu")
    assert rows == [] and not packed_linear._PACKED.get(lin)
    assert torch.equal(y, F.linear(x, lin.weight, lin.bias))
    assert torch.equal(g, F.gelu(F.linear(x, lin.weight, lin.bias)))


@pytest.mark.skipif(not gemm_select.gemv_available(), reason="native kernels not built")
@pytest.mark.parametrize("k, n, bias, epilogue", [(48, 40, True, "none"), (3, 1, False, "none"),
                                                  (517, 1031, True, "gelu"), (64, 33, False, "gelu_tanh"),
                                                  (31, 17, True, "silu")])
def test_one_row_on_the_native_gemv_where_chosen(k, n, bias, epilogue, monkeypatch):
    monkeypatch.setattr(gemm_select, "CHOOSER", _prefer(256, gemv=True))  # the native GEMV measures faster
    torch.manual_seed(0)
    owner = nn.Module()
    w, b = torch.randn(n, k), torch.randn(n) if bias else None
    rows, native = _calls(monkeypatch), []
    real = packed_linear.native_linear
    monkeypatch.setattr(packed_linear, "native_linear", lambda *a: native.append(a[0].shape) or real(*a))
    for shape in [(1, k), (1, 1, k), (k,)]:
        x = torch.randn(*shape)
        with torch.no_grad():
            y = linear(x, w, b, owner, "w", epilogue)
        ref = F.linear(x, w, b)
        ref = ACTS[epilogue](ref) if epilogue != "none" else ref
        assert y.shape == ref.shape
        torch.testing.assert_close(y, ref, rtol=1e-5, atol=1e-5)
    assert native == [(1, k)] * 3 and rows == []  # every call on the GEMV, none on oneDNN
    wt, x = torch.randn(k, 2 * n)[:, ::2].t(), torch.randn(1, k)  # a weight view that is not contiguous: F.linear
    with torch.no_grad():
        assert torch.equal(linear(x, wt, None, owner, "t"), F.linear(x, wt))
    assert len(native) == 3


def test_scaled_weight_is_packed_once_and_forces_onednn(monkeypatch):
    torch.manual_seed(0)
    owner = nn.Module()
    w, b = torch.randn(24, 16), torch.randn(24)
    rows = _calls(monkeypatch)
    packs = []
    real = torch.ops.mkldnn._reorder_linear_weight
    monkeypatch.setattr(packed_linear.torch.ops.mkldnn, "_reorder_linear_weight",
                        lambda *a: packs.append(a[0].shape) or real(*a), raising=False)
    monkeypatch.setenv("LINGVIS_GEMM", "mkl")  # the shape's choice is MKL: a scale still runs on oneDNN
    for shape in [(2, 300, 16), (5, 16), (1, 16)]:
        x = torch.randn(*shape)
        with torch.no_grad():
            y = linear(x, w, b, owner, "s", scale=1.702)
            y2 = linear(x, w, b, owner, "s", scale=1.702, epilogue="silu")
        torch.testing.assert_close(y, F.linear(x, w * 1.702, b), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(y2, F.silu(F.linear(x, w * 1.702, b)), rtol=1e-5, atol=1e-5)
    assert rows == [600, 600, 5, 5, 1, 1] and len(packs) == 1  # one packed copy of 1.702 w for every call
    with torch.no_grad():
        linear(torch.randn(3, 16), w, b, owner, "s", scale=0.5)  # another scale: packed again
    assert len(packs) == 2
    y = linear(torch.randn(3, 16), w.requires_grad_(), b, owner, "s", scale=0.5)  # autograd: F.linear on 0.5 w
    assert y.grad_fn is not None and len(packs) == 2


@pytest.mark.parametrize("shape, bias", [((3, 5, 16), True), ((2, 16), False), ((1, 1, 16), True)])
def test_linear_times_a_tensor_fuses_the_product_into_onednn(shape, bias, monkeypatch):
    torch.manual_seed(0)
    owner = nn.Module()
    w, b = torch.randn(27, 16), torch.randn(27) if bias else None
    x = torch.randn(*shape)
    m = torch.randn(*shape[:-1], 27)
    binary = []
    real = torch.ops.mkldnn._linear_pointwise.binary
    monkeypatch.setattr(torch.ops.mkldnn._linear_pointwise, "binary",
                        lambda *a: binary.append(a[-1]) or real(*a), raising=False)
    with torch.no_grad():
        y = linear(x, w, b, owner, "up", mul=m)
    torch.testing.assert_close(y, F.linear(x, w, b) * m, rtol=1e-5, atol=1e-5)
    assert y.shape == m.shape and binary == (["mul"] if x.numel() > 16 else [])  # one row: the GEMV, then a product
    y = linear(x, w.requires_grad_(), b, owner, "up", mul=m)  # autograd on: F.linear times m
    assert y.grad_fn is not None
    with pytest.raises(ValueError, match="mul"):
        linear(x, w, b, owner, "up", mul=m[..., :5])
    with pytest.raises(ValueError, match="mul"):
        linear(x, w, b, owner, "up", epilogue="silu", mul=m)


def test_a_nested_use_on_the_same_model_does_not_walk_it_again(monkeypatch):
    model = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 3))
    walks = []
    real = packed_linear._linears
    monkeypatch.setattr(packed_linear, "_linears", lambda m: walks.append(m) or real(m))
    outer, inner = packed_linears(model), packed_linears(model)
    outer.__enter__()
    inner.__enter__()
    assert walks == [model] and "forward" in model[0].__dict__
    outer.__exit__(None, None, None)  # uses overlapping out of order (two threads): the routing stays until the last
    assert "forward" in model[0].__dict__
    inner.__exit__(None, None, None)
    assert "forward" not in model[0].__dict__ and "forward" not in model[2].__dict__
    with packed_linears(model[0]):  # a part of the model is its own root: walked
        assert "forward" in model[0].__dict__
    with packed_linears(model):  # after the last exit a new use walks again
        assert len(walks) == 3
    assert "forward" not in model[0].__dict__
