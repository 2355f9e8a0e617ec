"""oneDNN packed-weight linears for small-batch CPU inference: same results as F.linear, used only where
eligible, rebuilt when weights change, restored on exit, safe to deep-copy."""
import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import lingvis
from lingvis.generate import generate_ids, pad_left
from lingvis.nn.packed_linear import (MAX_ROWS, MIN_ROWS, MIN_WORK, packed_available, packed_linears,
                                      release_packed)

pytestmark = pytest.mark.skipif(not packed_available(), reason="torch build without oneDNN packed linear ops")


@pytest.fixture(autouse=True)
def any_weight_size(monkeypatch, request):
    """Tiny test layers: lift the work floor (tested on its own below)."""
    if "keep_floor" not in request.keywords:
        monkeypatch.setattr("lingvis.nn.packed_linear.MIN_WORK", 0)


def _calls(monkeypatch) -> list[int]:
    """Record the row count of every packed call."""
    rows = []
    real = torch.ops.mkldnn._linear_pointwise

    def spy(x, *a):
        rows.append(x.shape[0])
        return real(x, *a)

    monkeypatch.setattr(torch.ops.mkldnn, "_linear_pointwise", spy)
    return rows


@pytest.mark.parametrize("shape", [(MIN_ROWS, 48), (4, 1, 48), (3, 5, 48), (MAX_ROWS, 48)])
def test_packed_equals_linear_for_small_batches(shape, monkeypatch):
    torch.manual_seed(0)
    lin = nn.Linear(48, 40)
    x = torch.randn(*shape)
    rows = _calls(monkeypatch)
    with torch.no_grad(), packed_linears(lin):
        y = lin(x)
    assert rows == [x.numel() // 48]  # the packed path ran
    assert y.shape == (*shape[:-1], 40)
    torch.testing.assert_close(y, F.linear(x, lin.weight, lin.bias), rtol=1e-5, atol=1e-5)


def test_ineligible_calls_fall_back_exactly(monkeypatch):
    torch.manual_seed(0)
    lin = nn.Linear(16, 8)
    rows = _calls(monkeypatch)
    with packed_linears(lin):
        few, many = torch.randn(MIN_ROWS - 1, 16), torch.randn(MAX_ROWS + 1, 16)  # noqa: one row, MAX_ROWS + 1 rows
        with torch.no_grad():
            assert torch.equal(lin(few), F.linear(few, lin.weight, lin.bias))  # few rows: MKL
            assert torch.equal(lin(many), F.linear(many, lin.weight, lin.bias))  # many rows: sgemm
        y = lin(torch.randn(4, 16))  # autograd on: training keeps the ordinary path
        assert y.grad_fn is not None
    assert rows == []


@pytest.mark.keep_floor
def test_small_products_stay_on_mkl(monkeypatch):
    rows = _calls(monkeypatch)
    small, large = nn.Linear(64, 64), nn.Linear(512, MIN_WORK // 512 // 8)
    x = torch.randn(8, 64)
    with torch.no_grad(), packed_linears(small), packed_linears(large):
        assert torch.equal(small(x), F.linear(x, small.weight, small.bias))
        large(torch.randn(8, 512))  # 8 rows x the weight: exactly the floor
        large(torch.randn(4, 512))  # half of it: MKL
    assert rows == [8]


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
