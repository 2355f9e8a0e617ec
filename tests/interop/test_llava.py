"""Parity with transformers' LlavaForConditionalGeneration (CLIP vision tower + Llama language model) on tiny
random configs with odd shapes, through lingvis.load and lingvis.save: logits with several images per row and
left padding, greedy generation for 24 tokens, feature-layer lists and the `full` strategy, the weight layouts
transformers has written, preprocessing from preprocessor_config.json, and export back to transformers."""
import json
import re

import numpy as np
import pytest
import torch
from PIL import Image

import lingvis
from lingvis.data.llava_inputs import image_transform
from lingvis.io import CheckpointError
from lingvis.models.llava import Llava

transformers = pytest.importorskip("transformers")

IMAGE_ID, VOCAB, SIZE, PATCH = 100, 120, 30, 6   # 5 x 5 = 25 patches
VISION = dict(hidden_size=32, intermediate_size=48, num_hidden_layers=3, num_attention_heads=4, image_size=SIZE,
              patch_size=PATCH, projection_dim=16, hidden_act="quick_gelu")
TEXT = dict(vocab_size=VOCAB, hidden_size=40, intermediate_size=72, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=192, rms_norm_eps=1e-5, bos_token_id=1, eos_token_id=2,
            pad_token_id=0, rope_parameters={"rope_type": "default", "rope_theta": 500.0})


def hf_llava(**kw):
    torch.manual_seed(0)
    text = {**TEXT, **kw.pop("text", {})}
    cfg = transformers.LlavaConfig(vision_config=transformers.CLIPVisionConfig(**VISION),
                                   text_config=transformers.LlamaConfig(**text), image_token_index=IMAGE_ID, **kw)
    model = transformers.LlavaForConditionalGeneration(cfg).eval()
    with torch.no_grad():  # random norms and biases so that a swapped name shows
        for name, p in model.named_parameters():
            if "norm" in name or "layrnorm" in name or name.endswith(".bias"):
                p.add_(torch.randn_like(p) * 0.2)
    model.generation_config.eos_token_id = None
    model.generation_config.pad_token_id = 0
    return model


def convert(hf, tmp_path, name="hf"):
    hf.save_pretrained(tmp_path / name, safe_serialization=True)
    return lingvis.load(tmp_path / name)


def tokens(n_img: int, strategy: str = "default") -> int:
    return n_img * ((SIZE // PATCH) ** 2 + (1 if strategy == "full" else 0))


def batch(strategy="default"):
    """Two rows: row 0 left-padded with one image, row 1 with two images; 3 images in all (row-major order)."""
    g = torch.Generator().manual_seed(1)
    n = tokens(1, strategy)
    T = 2 * n + 12
    ids = torch.randint(3, IMAGE_ID, (2, T), generator=g)
    mask = torch.ones(2, T, dtype=torch.long)
    ids[0, :7], mask[0, :7] = 0, 0
    ids[0, 9:9 + n] = IMAGE_ID
    ids[1, 2:2 + n] = IMAGE_ID
    ids[1, 5 + n:5 + 2 * n] = IMAGE_ID
    pixels = torch.randn(3, 3, SIZE, SIZE, generator=g)
    return ids, mask, pixels


@pytest.mark.parametrize("kw", [{}, {"vision_feature_layer": [-3, -1], "vision_feature_select_strategy": "full"},
                                {"projector_hidden_act": "gelu_pytorch_tanh", "vision_feature_layer": 1},
                                {"text": {"tie_word_embeddings": True}}],
                         ids=["default", "layers-full", "tanh-layer1", "tied"])
def test_logits_match_transformers(kw, tmp_path):
    hf = hf_llava(**kw)
    ours = convert(hf, tmp_path)
    assert isinstance(ours, Llava)
    strategy = kw.get("vision_feature_select_strategy", "default")
    assert ours.tokens_per_image == tokens(1, strategy)
    ids, mask, pixels = batch(strategy)
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        want = hf(input_ids=ids, pixel_values=pixels, attention_mask=mask, position_ids=pos).logits
        got = ours(ids, attention_mask=mask, position_ids=pos, pixel_values=pixels)
    real = mask.bool()
    assert (got[real] - want[real]).abs().max() <= 1e-4


def test_greedy_generation_matches_for_24_tokens(tmp_path):
    hf = hf_llava()
    ours = convert(hf, tmp_path)
    ids, _, pixels = batch()
    ids, pixels = ids[1:], pixels[1:]  # one prompt, two images
    with torch.no_grad():
        want = hf.generate(input_ids=ids, pixel_values=pixels, max_new_tokens=24, do_sample=False,
                           min_new_tokens=24)
    got = ours.generate(ids, max_new_tokens=24, pixel_values=pixels)
    assert got.shape == (1, ids.shape[1] + 24)
    assert torch.equal(got[:, ids.shape[1]:], want[:, ids.shape[1]:])


def test_image_features_are_computed_once_per_request(tmp_path):
    ours = convert(hf_llava(), tmp_path)
    calls, embed = [], ours.vision.embed
    ours.vision.embed = lambda *a, **k: (calls.append(a[0].shape[0]), embed(*a, **k))[1]
    ids, _, pixels = batch()
    ours.generate(ids[1:], max_new_tokens=10, pixel_values=pixels[1:])
    assert calls == [2]  # one tower pass for both images, none in the 10 decode steps


@pytest.mark.parametrize("layout", ["v4-nested", "model-prefixed"])
def test_other_weight_layouts_load(layout, tmp_path):
    """transformers 4.x writes `vision_tower.vision_model.`; its in-memory names are `model.vision_tower.`,
    `model.language_model.` and `lm_head.` (both appear in folders on the hub)."""
    from safetensors.torch import load_file, save_file

    hf = hf_llava()
    hf.save_pretrained(tmp_path / "hf")
    state = load_file(str(tmp_path / "hf" / "model.safetensors"))
    renamed = {}
    for k, v in state.items():
        if layout == "v4-nested":
            k = k.replace("vision_tower.", "vision_tower.vision_model.") if "vision_model" not in k else k
        else:
            k = ("model." + k.replace("language_model.model.", "language_model.")
                 if not k.startswith("language_model.lm_head") else "lm_head.weight")
        renamed[k] = v
    save_file(renamed, str(tmp_path / "hf" / "model.safetensors"), metadata={"format": "pt"})
    ours = lingvis.load(tmp_path / "hf")
    ids, mask, pixels = batch()
    with torch.no_grad():
        want = hf(input_ids=ids[1:], pixel_values=pixels[1:]).logits
        got = ours(ids[1:], pixel_values=pixels[1:])
    assert (got - want).abs().max() <= 1e-4


def odd_image(w=57, h=40, seed=0):
    rng = np.random.default_rng(seed)
    return Image.fromarray((rng.random((h, w, 3)) * 255).astype("uint8"))


@pytest.mark.parametrize("do_pad", [False, True])
def test_preprocessing_follows_preprocessor_config(do_pad, tmp_path):
    hf = hf_llava()
    hf.save_pretrained(tmp_path / "hf")
    proc = transformers.LlavaImageProcessorPil(size={"shortest_edge": 34}, crop_size={"height": SIZE, "width": SIZE},
                                               image_mean=[0.4, 0.5, 0.6], image_std=[0.2, 0.3, 0.25], do_pad=do_pad)
    proc.save_pretrained(tmp_path / "hf")
    ours = lingvis.load(tmp_path / "hf")
    assert ours.config.pad_to_square is do_pad and ours.vision.config.resize_size == 34
    for im in (odd_image(), odd_image(31, 66, 1)):
        want = proc(im, return_tensors="pt")["pixel_values"][0]
        got = image_transform(ours)(im)
        assert got.shape == want.shape
        assert (got - want).abs().max() <= 0.03  # resampling implementations differ by about one grey level


def test_export_loads_in_transformers(tmp_path):
    hf = hf_llava(vision_feature_layer=-3)
    ours = convert(hf, tmp_path)
    ours.config.pad_to_square = True
    lingvis.save(ours, tmp_path / "out", format="hf")
    cfg = json.loads((tmp_path / "out" / "config.json").read_text())
    assert cfg["model_type"] == "llava" and cfg["image_token_index"] == IMAGE_ID and cfg["vision_feature_layer"] == -3
    assert json.loads((tmp_path / "out" / "preprocessor_config.json").read_text())["do_pad"] is True
    back = transformers.LlavaForConditionalGeneration.from_pretrained(tmp_path / "out").eval()
    ids, mask, pixels = batch()
    with torch.no_grad():
        want = hf(input_ids=ids[1:], pixel_values=pixels[1:]).logits
        got = back(input_ids=ids[1:], pixel_values=pixels[1:]).logits
    assert (got - want).abs().max() <= 1e-5
    again = lingvis.load(tmp_path / "out")
    assert again.config.pad_to_square


def test_models_without_an_hf_twin_save_natively(tmp_path):
    model = lingvis.build("llava-nano")  # linear projector, GPT-2 style decoder
    path = lingvis.save(model, tmp_path / "m")
    assert (path / "lingvis.json").is_file()
    with pytest.raises(ValueError, match="no Hugging Face counterpart"):
        lingvis.save(model, tmp_path / "m2", format="hf")


def test_unsupported_towers_are_named(tmp_path):
    hf = hf_llava()
    hf.save_pretrained(tmp_path / "hf")
    cfg = json.loads((tmp_path / "hf" / "config.json").read_text())
    bad = {**cfg, "vision_config": {**cfg["vision_config"], "model_type": "siglip_vision_model"}}
    (tmp_path / "hf" / "config.json").write_text(json.dumps(bad))
    with pytest.raises(CheckpointError, match="siglip_vision_model"):
        lingvis.load(tmp_path / "hf")
    bad = {**cfg, "text_config": {**cfg["text_config"], "model_type": "gemma"}}
    (tmp_path / "hf" / "config.json").write_text(json.dumps(bad))
    with pytest.raises(CheckpointError, match="gemma"):
        lingvis.load(tmp_path / "hf")


@pytest.mark.parametrize("kw, field", [({"spatial_merge": 2}, "spatial_merge=2"),
                                       ({"image_position": "rowcol"}, "image_position='rowcol'"),
                                       ({"image_position": "onehot"}, "image_position='onehot'")])
def test_lingvis_only_image_token_layouts_refuse_hf_export(kw, field, tmp_path):
    model = lingvis.build("llava-llama-nano", **kw)  # exportable without these fields
    assert (lingvis.save(lingvis.build("llava-llama-nano"), tmp_path / "plain", format="hf") / "config.json").is_file()
    with pytest.raises(ValueError, match=re.escape(field) + ".*lingvis-only"):
        lingvis.save(model, tmp_path / "m", format="hf")
    path = lingvis.save(model, tmp_path / "native")  # auto: the lingvis format, and it loads back the same
    assert (path / "lingvis.json").is_file()
    back = lingvis.load(path)
    assert getattr(back.config, next(iter(kw))) == next(iter(kw.values()))
