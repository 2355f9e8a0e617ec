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
