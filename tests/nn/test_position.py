import math

import torch

from lingvis.nn import LearnedPositions, Rotary, SinusoidalPositions, apply_rotary, sinusoidal_table


def test_sinusoidal_table_both_layouts():
    t = sinusoidal_table(10, 8)
    pos, i = 3, 1  # half layout: sin in [0, D/2), cos in [D/2, D)
    freq = 1 / 10000 ** (i / 4)
    assert math.isclose(t[pos, i].item(), math.sin(pos * freq), abs_tol=1e-6)
    assert math.isclose(t[pos, 4 + i].item(), math.cos(pos * freq), abs_tol=1e-6)
    ti = sinusoidal_table(10, 8, interleave=True)
    freq = 1 / 10000 ** (2 * i / 8)
    assert math.isclose(ti[pos, 2 * i].item(), math.sin(pos * freq), abs_tol=1e-6)
    assert math.isclose(ti[pos, 2 * i + 1].item(), math.cos(pos * freq), abs_tol=1e-6)


def test_sinusoidal_not_in_state_dict_and_learned_is():
    assert "table" not in SinusoidalPositions(16, 8).state_dict()
    lp = LearnedPositions(16, 8)
    assert lp(torch.tensor([[0, 5]])).shape == (1, 2, 8)
    assert "weight" in lp.state_dict()


def test_rotary_preserves_norm_and_encodes_relative_position():
    torch.manual_seed(0)
    rope = Rotary(16, 64)
    q, k = torch.randn(1, 1, 1, 16), torch.randn(1, 1, 1, 16)

    def at(x, p):
        cos, sin = rope(torch.tensor([[p]]))
        return apply_rotary(x, cos, sin)

    assert torch.allclose(at(q, 7).norm(), q.norm(), atol=1e-5)
    # <R(m) q, R(n) k> depends only on m - n
    d1 = (at(q, 10) * at(k, 4)).sum()
    d2 = (at(q, 30) * at(k, 24)).sum()
    d3 = (at(q, 30) * at(k, 20)).sum()
    assert torch.allclose(d1, d2, atol=1e-4)
    assert not torch.allclose(d1, d3, atol=1e-3)
    # position 0 is the identity
    assert torch.allclose(at(q, 0), q)


def test_rotary_shapes_broadcast_over_heads():
    cos, sin = Rotary(8, 32)(torch.arange(5)[None].expand(3, 5))
    assert cos.shape == sin.shape == (3, 1, 5, 8)


def _rotate_reference(x, cos, sin):
    x1, x2 = x.chunk(2, dim=-1)
    return x * cos + torch.cat([-x2, x1], dim=-1) * sin


def test_rotary_without_autograd_matches_the_formula_on_views_and_broadcasts():
    torch.manual_seed(0)
    cases = [((2, 4, 7, 16), (2, 1, 7, 16)),   # (B, H, T, D) with cos/sin broadcast over heads
             ((1, 3, 5, 6), (1, 1, 5, 6)),
             ((3, 1, 2, 8), (3, 4, 2, 8))]     # cos/sin wider than x: the result takes the broadcast shape
    for xs, cs in cases:
        x = torch.randn(xs[0], xs[2], xs[1], xs[3]).transpose(1, 2)  # a strided (B, H, T, D) view, as q/k are
        cos, sin = torch.randn(cs), torch.randn(cs)
        with torch.no_grad():
            y = apply_rotary(x, cos, sin)
        ref = _rotate_reference(x, cos, sin)
        assert y.shape == ref.shape
        torch.testing.assert_close(y, ref, rtol=1e-6, atol=1e-6)
    x = torch.randn(1, 2, 3, 5)  # odd width: the formula's uneven halves
    cos, sin = torch.randn(1, 1, 3, 5), torch.randn(1, 1, 3, 5)
    with torch.no_grad():
        assert torch.equal(apply_rotary(x, cos, sin), _rotate_reference(x, cos, sin))
    xg = torch.randn(2, 4, 7, 16, requires_grad=True)  # autograd on: the formula itself, gradients flow
    cos, sin = torch.randn(2, 1, 7, 16), torch.randn(2, 1, 7, 16)
    y = apply_rotary(xg, cos, sin)
    y.sum().backward()
    assert torch.equal(y.detach(), _rotate_reference(xg, cos, sin).detach()) and xg.grad is not None
