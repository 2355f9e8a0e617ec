import pytest
import torch
from torch import nn

import lingvis
from lingvis.nn.eval_mode import eval_mode


def net():
    return nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5), nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5)))


def modes(m):
    return [x.training for x in m.modules()]


def test_every_module_in_eval_inside_and_the_mixed_modes_restored_after():
    m = net().train()
    m[2].eval()  # a frozen part kept in eval while the rest trains
    before = modes(m)
    assert any(before) and not all(before)
    x = torch.ones(64, 4)
    with eval_mode(m) as same:
        assert same is m and not any(modes(m))
        assert torch.equal(m(x), m(x))  # dropout off
    assert modes(m) == before


def test_modes_restored_when_the_block_raises_and_nested_uses_do_nothing_inner():
    m = net().train()
    with pytest.raises(RuntimeError, match="boom"):
        with eval_mode(m):
            with eval_mode(m):
                assert not any(modes(m))
            assert not any(modes(m))  # the inner exit switched nothing back on
            raise RuntimeError("boom")
    assert all(modes(m))


def test_model_in_eval_stays_untouched():
    m = net().eval()
    m[1].train()  # a part the user put in training mode on an eval model keeps it after the block
    before = modes(m)
    with eval_mode(m):
        assert not any(modes(m))
    assert modes(m) == before


def test_generation_leaves_a_llava_in_its_training_modes():
    torch.manual_seed(0)
    m = lingvis.build("llava-nano").train()  # the tower frozen (eval), the rest training
    before = modes(m)
    assert any(before) and not all(before)
    ids = torch.full((1, m.tokens_per_image + 3), m.config.image_token_id)
    ids[0, -3:] = torch.tensor([5, 6, 7])
    pixels = torch.randn(1, 3, m.config.vision["image_size"], m.config.vision["image_size"])
    out = m.generate(ids, 3, pixel_values=pixels)
    assert modes(m) == before
    assert torch.equal(out, m.eval().generate(ids, 3, pixel_values=pixels))  # dropout was off during generation


def test_a_nested_use_on_the_same_model_does_not_walk_it_again():
    m = net().train()
    walks = []
    real = m.modules
    m.modules = lambda: walks.append(1) or real()
    with eval_mode(m):
        with eval_mode(m):
            assert len(walks) == 1 and not any(x.training for x in real())
        with eval_mode(m[2]):  # a part is its own model: walked (its own modules(), not counted here)
            assert len(walks) == 1
        assert not any(x.training for x in real())
    assert all(x.training for x in real())
    with eval_mode(m):  # after the exit a new use walks again
        assert len(walks) == 2
