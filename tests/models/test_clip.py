"""CLIP: encoders, temperature clamp, symmetric InfoNCE, text pooling, locked (LiT) towers, presets."""
import math

import pytest
import torch
import torch.nn.functional as F

import lingvis
from lingvis.models.clip import contrastive_loss
from lingvis.models.clip_text import text_inputs
from lingvis.recipes.clip_data import train_word_tokenizer


def nano(**kw):
    torch.manual_seed(0)
    return lingvis.build("clip-nano", eos_token_id=3, bos_token_id=2, pad_token_id=0, **kw)


def test_encoders_are_normalised_and_logits_scaled():
    m = nano().eval()
    x, ids = torch.randn(3, 3, 32, 32), torch.randint(4, 60, (2, 6))
    ids[:, -1] = 3
    img, txt = m.encode_image(x), m.encode_text(ids)
    assert img.shape == (3, 16) and txt.shape == (2, 16)
    assert torch.allclose(img.norm(dim=-1), torch.ones(3), atol=1e-5)
    assert torch.allclose(m(x, ids), m.scale() * img @ txt.t(), atol=1e-5)
    assert m.encode_image(x, normalize=False).norm(dim=-1).sub(1).abs().max() > 1e-3


def test_temperature_is_clamped_without_gradient_past_the_clamp():
    m = nano(max_logit_scale=50.0)
    with torch.no_grad():
        m.logit_scale.fill_(10.0)
    assert math.isclose(float(m.scale().detach()), 50.0, rel_tol=1e-5)
    m.scale().backward()
    assert float(m.logit_scale.grad) == 0.0
    with torch.no_grad():
        m.logit_scale.fill_(-3.0)
    assert math.isclose(float(m.scale().detach()), 1.0, rel_tol=1e-6)


def test_contrastive_loss_is_symmetric_infonce():
    torch.manual_seed(0)
    img, txt = F.normalize(torch.randn(5, 8), dim=-1), F.normalize(torch.randn(5, 8), dim=-1)
    scale = torch.tensor(7.0)
    logits = scale * img @ txt.t()
    ref = (F.cross_entropy(logits, torch.arange(5)) + F.cross_entropy(logits.t(), torch.arange(5))) / 2
    assert torch.allclose(contrastive_loss(img, txt, scale), ref, atol=1e-6)
    assert contrastive_loss(img, img, torch.tensor(100.0)) < 1e-3  # perfectly aligned pairs


def test_text_pooling_reads_the_first_eos_or_the_highest_id():
    m = nano().eval()
    ids = torch.tensor([[2, 9, 10, 3, 0, 0], [2, 11, 3, 0, 0, 0]])
    mask = (torch.arange(6) < torch.tensor([[4], [3]])).long()
    hidden = m.text.encode(ids, mask)
    assert torch.allclose(m.text_features(ids, mask), hidden[[0, 1], [3, 2]])
    m.config.text_pool = "argmax"
    ids2 = ids.clone()
    ids2[0, 1] = 60
    assert torch.allclose(m.text_features(ids2, mask)[0], m.text.encode(ids2, mask)[0, 1])
    # padding after the end of text does not change the pooled feature (causal attention)
    m.config.text_pool = "eos"
    short = m.encode_text(ids[1:, :3])
    assert torch.allclose(short, m.encode_text(ids[1:], mask[1:]), atol=1e-5)


def test_text_inputs_add_bos_eos_and_truncate_keeping_eos():
    tok = train_word_tokenizer(["a red circle", "a blue square left of a green star"])
    ids, mask = text_inputs(tok, ["a red circle", "a blue square left of a green star"], 6, "clip",
                            tok.bos_id, tok.eos_id, tok.pad_id)
    assert ids.shape == (2, 6)
    assert ids[0, 0] == tok.bos_id and ids[0, 4] == tok.eos_id and ids[0, 5] == tok.pad_id
    assert ids[1, -1] == tok.eos_id and mask[1].all() and mask[0].tolist() == [1, 1, 1, 1, 1, 0]
    assert tok.encode("A RED zebra") == [tok.token_to_id("a"), tok.token_to_id("red"), tok.unk_id]


def test_locked_text_tower_lit_with_a_bert_encoder():
    m = lingvis.build("clip-nano", text_family="bert", text_pool="mean", lock_text=True, eos_token_id=None,
                      text=dict(vocab_size=50, n_layer=1, n_head=2, n_embd=24, mlp_hidden=48, max_positions=16,
                                dropout=0.1))
    m.train()
    assert not m.text.training and m.vision.training
    ids, mask = torch.randint(1, 50, (2, 7)), torch.ones(2, 7, dtype=torch.long)
    mask[1, 4:] = 0
    loss = contrastive_loss(m.encode_image(torch.randn(2, 3, 32, 32)), m.encode_text(ids, mask), m.scale())
    loss.backward()
    assert all(p.grad is None for p in m.text.parameters())
    assert m.text_projection.weight.grad is not None and m.vision.patch_embed.weight.grad is not None
    assert m.context_length == 16


@pytest.mark.parametrize("name,count", [("clip-vit-b-32", 151_277_313), ("clip-vit-b-16", 149_620_737)])
def test_preset_parameter_counts_match_transformers(name, count):
    with torch.device("meta"):
        m = lingvis.build(name)
    assert sum(p.numel() for p in m.parameters()) == count


def test_unknown_text_pool_is_rejected():
    with pytest.raises(ValueError, match="text_pool must be one of"):
        lingvis.build("clip-nano", text_pool="max")
