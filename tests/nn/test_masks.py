import torch

from lingvis.nn import causal_mask, combine, padding_mask


def test_causal_mask_square_and_offset():
    assert torch.equal(causal_mask(3, 3)[0, 0], torch.tensor([[1, 0, 0], [1, 1, 0], [1, 1, 1]], dtype=torch.bool))
    # 2 new queries after 3 cached keys: they are positions 3 and 4 of 5
    m = causal_mask(2, 5)
    assert m.shape == (1, 1, 2, 5)
    assert torch.equal(m[0, 0], torch.tensor([[1, 1, 1, 1, 0], [1, 1, 1, 1, 1]], dtype=torch.bool))


def test_padding_mask_shape_and_values():
    m = padding_mask(torch.tensor([[0, 1, 1], [1, 1, 1]]))
    assert m.shape == (2, 1, 1, 3) and m.dtype == torch.bool
    assert m[0, 0, 0].tolist() == [False, True, True]


def test_combine_ands_and_opens_empty_rows():
    pad = padding_mask(torch.tensor([[0, 0, 1]]))
    out = combine(causal_mask(3, 3), pad)
    assert out.shape == (1, 1, 3, 3)
    # rows 0 and 1 (padding queries) would see nothing: opened fully so SDPA stays finite
    assert out[0, 0, 0].all() and out[0, 0, 1].all()
    assert out[0, 0, 2].tolist() == [False, False, True]
    assert combine(None, None) is None
    assert torch.equal(combine(None, pad), pad)
