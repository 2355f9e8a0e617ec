"""int8 quantisation (weight-only, and W8A8 dynamic): layer accuracy, the compute paths, batch invariance,
greedy agreement and perplexity of a briefly trained model."""
from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F

import lingvis
from lingvis.lora import LoRAConfig, apply_lora
from lingvis.quant import (PACKED_MAX_ROWS, QuantLinear, fbgemm_available, quantize_int8, quantize_weight,
                           weight_bytes)

needs_fbgemm = pytest.mark.skipif(not fbgemm_available(), reason="torch build without fbgemm/x86 int8")


def _rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


@pytest.mark.parametrize("in_features", [64, 12])  # 12: not a multiple of 8 -> dequantised fallback
def test_quant_linear_is_close_to_float_linear(in_features):
    torch.manual_seed(0)
    lin = torch.nn.Linear(in_features, 48)
    q = QuantLinear.from_linear(lin)
    x = torch.randn(3, 5, in_features)
    y = q(x)
    assert y.shape == (3, 5, 48) and y.dtype == torch.float32
    assert _rel_err(y, lin(x).detach()) < 0.02


def test_packed_and_dequantised_paths_agree():
    torch.manual_seed(0)
    q = QuantLinear.from_linear(torch.nn.Linear(64, 40))
    rows = torch.randn(PACKED_MAX_ROWS + 4, 64)  # many rows: dequantised sgemm
    many = q(rows)
    one = torch.cat([q(r[None]) for r in rows])  # one row at a time: the int8 kernel
    exact = F.linear(rows, q.dequantized(), q.bias)
    assert _rel_err(many, exact) < 1e-6
    assert _rel_err(one, exact) < 1e-2  # bf16 activations


def test_quantize_weight_roundtrip_and_scales():
    w = torch.randn(16, 32)
    q, s = quantize_weight(w)
    assert q.dtype == torch.int8 and s.shape == (16,)
    assert torch.equal(s, s.to(torch.bfloat16).float())  # scales exact in bf16 for the kernel
    assert (q.float() * s[:, None] - w).abs().max() <= s.max() * 0.51 + 1e-6
    with pytest.raises(ValueError, match="2-D weight"):
        quantize_weight(torch.randn(3))


def _trained_gpt():
    """gpt-nano fitted for a few seconds on a learnable stream (next = prev + 5 mod 32, 10% noise)."""
    torch.manual_seed(0)
    model = lingvis.build("gpt-nano", vocab_size=32, block_size=32)
    g = torch.Generator().manual_seed(0)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)

    def batch(n):
        start = torch.randint(0, 32, (n, 1), generator=g)
        ids = (start + 5 * torch.arange(33)) % 32
        noise = torch.rand(ids.shape, generator=g) < 0.1
        return torch.where(noise, torch.randint(0, 32, ids.shape, generator=g), ids)

    for _ in range(60):
        ids = batch(16)
        loss = F.cross_entropy(model(ids[:, :-1]).flatten(0, 1), ids[:, 1:].flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval(), batch(24)


def _nll(model, ids) -> float:
    with torch.no_grad():
        return float(F.cross_entropy(model(ids[:, :-1]).flatten(0, 1), ids[:, 1:].flatten()))


@needs_fbgemm
def test_w8a8_linear_is_close_and_rows_barely_depend_on_their_batch():
    torch.manual_seed(0)
    lin = torch.nn.Linear(64, 40)
    q = QuantLinear.from_linear(lin, activations="int8")
    x = torch.randn(6, 64) * torch.tensor([0.1, 1, 10, 3, 0.5, 2])[:, None]  # rows of very different ranges
    x[3] += 5  # a row far from zero (all positive)
    y = q(x)
    assert _rel_err(y, lin(x).detach()) < 0.02
    alone = torch.cat([q(r[None]) for r in x])  # (6, 40): one row at a time, fbgemm's own per-row grid
    for i in range(6):  # the same grid in the batch: differences under one grid step per element
        scale = float(x[i].max().clamp(min=0) - x[i].min().clamp(max=0)) / 255
        err = float((alone[i] - y[i]).abs().max())
        assert err <= scale * float(q.dequantized().abs().sum(1).max()) + 1e-5, (i, err)  # <= 1 step each
        assert _rel_err(y[i], alone[i]) < 0.02
    assert torch.equal(torch.cat([q(x[:3]), q(x[3:])]), torch.cat([q(x[:3]), q(x[3:])]))  # deterministic
    assert "activations" in repr(q)
    with pytest.raises(ValueError, match="activations must be"):
        QuantLinear.from_linear(lin, activations="int4")


@pytest.mark.parametrize("activations", ["float", pytest.param("int8", marks=needs_fbgemm)])
def test_int8_model_keeps_greedy_tokens_and_perplexity(activations):
    model, held_out = _trained_gpt()
    qmodel = quantize_int8(copy.deepcopy(model), activations=activations)
    assert not any(isinstance(m, torch.nn.Linear) for m in qmodel.modules())
    assert weight_bytes(qmodel) < 0.5 * weight_bytes(model)
    ppl, qppl = math.exp(_nll(model, held_out)), math.exp(_nll(qmodel, held_out))
    assert ppl < 8  # the model learned the stream (uniform would be 32)
    assert abs(qppl / ppl - 1) < 0.01
    prompts = held_out[:20, :8]
    same = 0
    for p in prompts:  # batch 1, as in CPU serving
        a = model.generate(p[None], max_new_tokens=16)
        b = qmodel.generate(p[None], max_new_tokens=16)
        same += bool(torch.equal(a, b))
    assert same >= 18, f"int8 greedy output matched fp32 on only {same}/20 prompts"


def test_quantize_refuses_lora_and_empty_models():
    model = lingvis.build("gpt-nano", vocab_size=32)
    apply_lora(model, LoRAConfig(rank=2))
    with pytest.raises(ValueError, match="merge them first"):
        quantize_int8(model)
    with pytest.raises(ValueError, match="no nn.Linear"):
        quantize_int8(torch.nn.Sequential(torch.nn.ReLU()))
    with pytest.raises(ValueError, match="expects last dim 64"):
        QuantLinear.from_linear(torch.nn.Linear(64, 8))(torch.randn(2, 63))
