"""Parity with transformers' CLIPModel / CLIPVisionModel through lingvis.load and lingvis.save."""
import json

import pytest
import torch

import lingvis
from lingvis.io import CheckpointError

transformers = pytest.importorskip("transformers")

VOCAB = 99


def tiny_hf(tmp_path, eos=VOCAB - 1, act="quick_gelu", name="hf"):
    torch.manual_seed(0)
    text = dict(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=48,
                max_position_embeddings=16, eos_token_id=eos, bos_token_id=VOCAB - 2, pad_token_id=0, hidden_act=act)
    vision = dict(hidden_size=24, num_hidden_layers=2, num_attention_heads=4, intermediate_size=40, image_size=32,
                  patch_size=8, hidden_act=act)
    cfg = transformers.CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)
    hf = transformers.CLIPModel(cfg).eval()
    with torch.no_grad():  # non-trivial norms and scale so a swapped name shows
        for n, p in hf.named_parameters():
            if "norm" in n or "layrnorm" in n:
                p.add_(torch.randn_like(p) * 0.1)
        hf.logit_scale.fill_(2.0)
    hf.save_pretrained(tmp_path / name)
    return hf


def batch(eos, legacy=False):
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(1, VOCAB - 3, (3, 10), generator=g)
    mask = torch.ones_like(ids)
    for row, n in enumerate((10, 7, 4)):  # right-padded rows of different lengths, eos last
        ids[row, n - 1] = eos if not legacy else VOCAB - 1
        ids[row, n:] = 0
        mask[row, n:] = 0
    pixels = torch.randn(2, 3, 32, 32, generator=g)
    return ids, mask, pixels


@pytest.mark.parametrize("eos,act", [(VOCAB - 1, "quick_gelu"), (2, "gelu")])
def test_embeddings_and_hidden_states_match(tmp_path, eos, act):
    hf = tiny_hf(tmp_path, eos=eos, act=act)
    ours = lingvis.load(tmp_path / "hf")
    assert ours.config.text_pool == ("argmax" if eos == 2 else "eos")
    ids, mask, pixels = batch(eos, legacy=eos == 2)
    with torch.no_grad():
        out = hf(input_ids=ids, attention_mask=mask, pixel_values=pixels, output_hidden_states=True)
        img, txt = ours.encode_image(pixels), ours.encode_text(ids, mask)
        h_img, hid_img = ours.vision.forward_features(pixels, output_hidden_states=True)
        h_txt = ours.text.encode(ids, mask)
        logits = ours(pixels, ids, mask)
    assert (img - out.image_embeds).abs().max() <= 1e-4
    assert (txt - out.text_embeds).abs().max() <= 1e-4
    assert (logits - out.logits_per_image).abs().max() <= 1e-4
    assert (h_img - out.vision_model_output.last_hidden_state).abs().max() <= 1e-4
    for a, b in zip(hid_img, out.vision_model_output.hidden_states):
        assert (a - b).abs().max() <= 1e-4
    real = mask.bool()
    assert (h_txt[real] - out.text_model_output.last_hidden_state[real]).abs().max() <= 1e-4


def test_export_loads_in_transformers(tmp_path):
    ours = lingvis.build("clip-nano", eos_token_id=63, bos_token_id=62, pad_token_id=0).eval()
    lingvis.save(ours, tmp_path / "out")
    assert json.loads((tmp_path / "out" / "preprocessor_config.json").read_text())["crop_size"]["height"] == 32
    hf = transformers.CLIPModel.from_pretrained(tmp_path / "out").eval()
    ids = torch.randint(1, 60, (2, 9))
    ids[:, -1] = 63
    pixels = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        out = hf(input_ids=ids, pixel_values=pixels)
        assert (ours.encode_image(pixels) - out.image_embeds).abs().max() <= 1e-4
        assert (ours.encode_text(ids) - out.text_embeds).abs().max() <= 1e-4
    back = lingvis.load(tmp_path / "out")
    with torch.no_grad():
        assert torch.allclose(back.encode_text(ids), ours.encode_text(ids), atol=1e-6)


def test_preprocessor_config_sets_image_statistics(tmp_path):
    tiny_hf(tmp_path)
    pp = {"image_processor_type": "CLIPImageProcessor", "image_mean": [0.5, 0.5, 0.5], "image_std": [0.25] * 3,
          "size": {"shortest_edge": 40}, "crop_size": {"height": 32, "width": 32}, "do_center_crop": True}
    (tmp_path / "hf" / "preprocessor_config.json").write_text(json.dumps(pp))
    vc = lingvis.load(tmp_path / "hf").vision.config
    assert (vc.image_mean, vc.image_std, vc.resize_size) == ([0.5] * 3, [0.25] * 3, 40)


def test_clip_vision_model_dir_loads_as_vit(tmp_path):
    hf = tiny_hf(tmp_path)
    vision = hf.vision_model  # a CLIPVisionModel
    vision.save_pretrained(tmp_path / "vision")
    ours = lingvis.load(tmp_path / "vision")
    assert ours.family == "vit"
    pixels = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        out = vision(pixel_values=pixels)
        assert (ours(pixels) - out.pooler_output).abs().max() <= 1e-4
        assert (ours.forward_features(pixels) - out.last_hidden_state).abs().max() <= 1e-4
    lingvis.save(ours, tmp_path / "again")
    again = transformers.CLIPVisionModel.from_pretrained(tmp_path / "again").eval()
    with torch.no_grad():
        assert (again(pixel_values=pixels).pooler_output - out.pooler_output).abs().max() <= 1e-5


def test_configs_without_hf_twin_save_natively(tmp_path):
    cnn_clip = lingvis.build("clip-nano", vision_family="cnn", vision=dict(
        image_size=32, stem_width=16, stem_stride=2, widths=[16, 32], depths=[1, 1], attn_heads=4), eos_token_id=5)
    with pytest.raises(ValueError, match="no Hugging Face counterpart"):
        lingvis.save(cnn_clip, tmp_path / "x", format="hf")
    lingvis.save(cnn_clip, tmp_path / "n")
    assert (tmp_path / "n" / "lingvis.json").is_file()


def test_missing_weight_is_named(tmp_path):
    tiny_hf(tmp_path)
    from safetensors.torch import load_file, save_file

    f = tmp_path / "hf" / "model.safetensors"
    state = load_file(f)
    del state["text_model.final_layer_norm.weight"]
    save_file(state, f)
    with pytest.raises(CheckpointError, match="final_layer_norm.weight"):
        lingvis.load(tmp_path / "hf")
