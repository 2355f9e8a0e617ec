"""Parity with transformers' ViLT through the production converter (lingvis.load / lingvis.save)."""
import json

import pytest
import torch

import lingvis
from lingvis.io import CheckpointError
from lingvis.models.fusion import FusionModel

transformers = pytest.importorskip("transformers")


def vilt_config(**kw):
    return transformers.ViltConfig(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                   intermediate_size=37, image_size=32, patch_size=8, max_position_embeddings=16,
                                   **kw)


def batch():
    """Padded text, and images of different sizes padded into one batch with a pixel mask."""
    torch.manual_seed(3)
    ids = torch.randint(0, 99, (3, 9))
    am = torch.ones(3, 9, dtype=torch.long)
    am[1, 6:] = 0
    px = torch.randn(3, 3, 32, 48)
    pm = torch.ones(3, 32, 48, dtype=torch.long)
    pm[0, 16:, :] = 0   # a 16x48 image
    pm[2, :, 24:] = 0   # a 32x24 image
    return dict(input_ids=ids, attention_mask=am, pixel_values=px, pixel_mask=pm)


def ours_forward(model, b):
    return model(b["input_ids"], b["pixel_values"], attention_mask=b["attention_mask"], pixel_mask=b["pixel_mask"])


@pytest.fixture(scope="module")
def vqa_pair(tmp_path_factory):
    torch.manual_seed(0)
    labels = {i: f"answer {i}" for i in range(7)}
    hf = transformers.ViltForQuestionAnswering(
        vilt_config(num_labels=7, id2label=labels, label2id={v: k for k, v in labels.items()})).eval()
    path = tmp_path_factory.mktemp("vilt") / "vqa"
    hf.save_pretrained(path)
    return hf, path


def test_vqa_logits_match_transformers(vqa_pair):
    hf, path = vqa_pair
    ours = lingvis.load(path)
    assert isinstance(ours, FusionModel) and ours.config.answers == [f"answer {i}" for i in range(7)]
    b = batch()
    with torch.no_grad():
        diff = (ours.vqa_logits(ours_forward(ours, b)) - hf(**b).logits).abs().max().item()
    assert diff <= 1e-4


def test_export_loads_in_transformers(vqa_pair, tmp_path):
    hf, path = vqa_pair
    ours = lingvis.load(path)
    lingvis.save(ours, tmp_path / "out")
    back = transformers.ViltForQuestionAnswering.from_pretrained(tmp_path / "out").eval()
    assert back.config.id2label[3] == "answer 3"
    b = batch()
    with torch.no_grad():
        assert (back(**b).logits - hf(**b).logits).abs().max() <= 1e-4


def test_base_model_hidden_states_and_pooler_match(tmp_path):
    torch.manual_seed(1)
    hf = transformers.ViltModel(vilt_config()).eval()
    hf.save_pretrained(tmp_path / "base")
    ours = lingvis.load(tmp_path / "base")
    b = batch()
    b["pixel_mask"] = torch.ones_like(b["pixel_mask"])  # HF shuffles patch order; text positions are fixed
    with torch.no_grad():
        ref, out = hf(**b), ours_forward(ours, b)
    assert (out.pooled - ref.pooler_output).abs().max() <= 1e-4
    assert (out.text_hidden - ref.last_hidden_state[:, :9]).abs().max() <= 1e-4
    lingvis.save(ours, tmp_path / "again")
    assert json.loads((tmp_path / "again" / "config.json").read_text())["architectures"] == ["ViltModel"]


def test_masked_lm_logits_match(tmp_path):
    torch.manual_seed(2)
    hf = transformers.ViltForMaskedLM(vilt_config()).eval()
    hf.save_pretrained(tmp_path / "mlm")
    ours = lingvis.load(tmp_path / "mlm")
    b = batch()
    with torch.no_grad():
        assert (ours.mlm_logits(ours_forward(ours, b)) - hf(**b).logits).abs().max() <= 1e-4


def test_configs_without_hf_twin_use_native_format(tmp_path):
    ours = lingvis.build("fusion-tiny", image_encoder="cnn", cnn={"stem_width": 8, "widths": [8, 16], "depths": [1, 1]})
    with pytest.raises(ValueError, match="no Hugging Face counterpart"):
        lingvis.save(ours, tmp_path / "x", format="hf")
    lingvis.save(ours, tmp_path / "native")
    assert (tmp_path / "native" / "lingvis.json").is_file()


def test_missing_weight_is_named(vqa_pair, tmp_path):
    from safetensors.torch import load_file, save_file

    _, path = vqa_pair
    state = load_file(str(path / "model.safetensors"))
    del state["vilt.encoder.layer.1.attention.attention.key.weight"]
    (tmp_path / "bad").mkdir()
    save_file(state, str(tmp_path / "bad" / "model.safetensors"))
    (tmp_path / "bad" / "config.json").write_text((path / "config.json").read_text())
    with pytest.raises(CheckpointError, match=r"encoder\.layer\.1\.attention\.attention\.key\.weight"):
        lingvis.load(tmp_path / "bad")
