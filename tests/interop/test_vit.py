"""Parity with transformers' ViTModel / ViTForImageClassification through lingvis.load and lingvis.save."""
import pytest
import torch

import lingvis

transformers = pytest.importorskip("transformers")


def tiny_config(**kw):
    return transformers.ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=48,
                                  image_size=32, patch_size=8, **kw)


def perturb_norms(model):
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "layernorm" in n:
                p.add_(torch.randn_like(p) * 0.1)


@pytest.mark.parametrize("qkv_bias", [True, False])
def test_hidden_states_and_pooler_match(tmp_path, qkv_bias):
    torch.manual_seed(0)
    hf = transformers.ViTModel(tiny_config(qkv_bias=qkv_bias)).eval()
    perturb_norms(hf)
    hf.save_pretrained(tmp_path / "hf")
    ours = lingvis.load(tmp_path / "hf")
    assert ours.family == "vit" and ours.config.pooler
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        out = hf(pixel_values=x, output_hidden_states=True)
        tokens, hidden = ours.forward_features(x, output_hidden_states=True)
        pooled = ours(x)
    assert (tokens - out.last_hidden_state).abs().max() <= 1e-4
    assert (pooled - out.pooler_output).abs().max() <= 1e-4
    for a, b in zip(hidden, out.hidden_states):
        assert (a - b).abs().max() <= 1e-4


def test_export_loads_in_transformers(tmp_path):
    ours = lingvis.build("vit-nano", activation="gelu", norm_eps=1e-12, pooler=True).eval()
    lingvis.save(ours, tmp_path / "out")
    hf = transformers.ViTModel.from_pretrained(tmp_path / "out").eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        out = hf(pixel_values=x)
        assert (ours.forward_features(x) - out.last_hidden_state).abs().max() <= 1e-4
        assert (ours(x) - out.pooler_output).abs().max() <= 1e-4
    back = lingvis.load(tmp_path / "out")
    assert back.config.image_mean == ours.config.image_mean
    with torch.no_grad():
        assert torch.allclose(back(x), ours(x), atol=1e-6)


def test_image_classifier_round_trip(tmp_path):
    torch.manual_seed(0)
    cfg = tiny_config(id2label={0: "cat", 1: "dog", 2: "fox"}, label2id={"cat": 0, "dog": 1, "fox": 2})
    hf = transformers.ViTForImageClassification(cfg).eval()
    with torch.no_grad():
        hf.classifier.weight.normal_()
    hf.save_pretrained(tmp_path / "hf")
    ours = lingvis.load(tmp_path / "hf")
    assert ours.family == "image_classifier" and ours.config.labels == ["cat", "dog", "fox"]
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        ref = hf(pixel_values=x).logits
        assert (ours(x) - ref).abs().max() <= 1e-4
        lingvis.save(ours, tmp_path / "out")
        again = transformers.ViTForImageClassification.from_pretrained(tmp_path / "out").eval()
        assert (again(pixel_values=x).logits - ref).abs().max() <= 1e-5
    assert again.config.id2label[2] == "fox"


def test_wrong_image_size_is_a_clear_error(tmp_path):
    ours = lingvis.build("vit-nano")
    with pytest.raises(ValueError, match="64x64 does not match the model's 32x32"):
        ours(torch.randn(1, 3, 64, 64))
    assert ours(torch.randn(1, 3, 64, 64), interpolate=True).shape == (1, 32)
