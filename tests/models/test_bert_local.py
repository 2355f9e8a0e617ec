"""Token shift: each token's embedding gains its neighbours', within its own sequence only."""
import pytest
import torch

import lingvis
from lingvis.models.bert_local import TokenShift, token_groups

V = 50


def test_token_shift_adds_exactly_the_projected_neighbours():
    torch.manual_seed(0)
    shift = TokenShift(4)
    x = torch.randn(1, 5, 4)  # (B, T, C)
    group = torch.tensor([[0, 0, 0, 1, 1]])  # two sequences packed in one row
    y = shift(x, group)
    W, b = shift.proj.weight, shift.proj.bias  # (C, 2C), (C,)
    zero = torch.zeros(4)
    for t, (left, right) in enumerate([(zero, x[0, 1]), (x[0, 0], x[0, 2]), (x[0, 1], zero),
                                       (zero, x[0, 4]), (x[0, 3], zero)]):
        assert torch.allclose(y[0, t], x[0, t] + W @ torch.cat([left, right]) + b, atol=1e-6)


def test_token_groups_mark_padding():
    assert token_groups(torch.tensor([[1, 1, 0]]), 1, 3, None).tolist() == [[0, 0, -1]]
    assert token_groups(None, 2, 3, None).shape == (2, 3)


def test_demo_preset_is_rotary_with_token_shift():
    cfg = lingvis.build("bert-tiny-rope-shift", vocab_size=V).config
    assert cfg.position == "rotary" and cfg.token_shift and cfg.prenorm and cfg.dropout == 0.0


@pytest.mark.parametrize("preset", ["bert-tiny-preln", "bert-tiny-rope"])
def test_token_shift_bert_ignores_padding_packs_and_sees_neighbours(preset, tmp_path):
    torch.manual_seed(0)
    model = lingvis.build(preset, vocab_size=V, head="mlm", token_shift=True).eval()
    ids = torch.randint(5, V, (1, 6))
    padded = torch.cat([ids, torch.zeros(1, 3, dtype=torch.long)], dim=1)
    batched = model.encode(padded, attention_mask=torch.tensor([[1] * 6 + [0] * 3]))
    assert torch.allclose(model.encode(ids), batched[:, :6], atol=1e-5)
    seqs = [torch.randint(5, V, (n,)) for n in (3, 9, 5)]
    packed = model.encode_packed(torch.cat(seqs), [3, 9, 5])
    assert torch.allclose(packed, torch.cat([model.encode(s[None])[0] for s in seqs]), atol=1e-5)
    # with attention switched off (zero output projections), only the shift can carry a neighbour over
    with torch.no_grad():
        for b in model.blocks:
            b.attn.proj.weight.zero_()
            b.attn.proj.bias.zero_()
    changed = ids.clone()
    changed[0, 3] = (ids[0, 3] + 1 - 5) % (V - 5) + 5
    diff = (model.encode(changed) - model.encode(ids)).abs().amax(-1)[0]  # (T,)
    assert bool((diff[[2, 3, 4]] > 1e-4).all()) and bool((diff[[0, 1, 5]] < 1e-6).all())
    with pytest.raises(ValueError, match="token_shift=True" if preset.endswith("preln") else "rotary"):
        lingvis.save(model, tmp_path / "hf", format="hf")
    lingvis.save(model, tmp_path / "m")
    back = lingvis.load(tmp_path / "m")
    assert back.config.token_shift and torch.equal(back(ids).logits, model(ids).logits)
