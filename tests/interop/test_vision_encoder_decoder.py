"""Parity with transformers' VisionEncoderDecoderModel (ViT encoder + GPT-2 decoder with cross-attention)."""
import json

import pytest
import torch

import lingvis
from lingvis.io import CheckpointError

transformers = pytest.importorskip("transformers")




def tiny_ved(folder, n_embd=48, tie=True):
    torch.manual_seed(0)
    enc = transformers.ViTConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2,
                                 num_attention_heads=4, intermediate_size=64)
    dec = transformers.GPT2Config(vocab_size=50, n_positions=32, n_embd=n_embd, n_layer=2, n_head=4,
                                  add_cross_attention=True, is_decoder=True, initializer_range=0.3, bos_token_id=1,
                                  eos_token_id=2, tie_word_embeddings=tie)
    cfg = transformers.VisionEncoderDecoderConfig.from_encoder_decoder_configs(enc, dec)
    cfg.decoder_start_token_id, cfg.pad_token_id, cfg.eos_token_id = 1, 0, 2
    hf = transformers.VisionEncoderDecoderModel(config=cfg).eval()
    hf.save_pretrained(folder)
    return hf


@pytest.mark.parametrize("n_embd,tie", [(48, True), (32, False)])  # with and without enc_to_dec_proj
def test_logits_and_beam_search_match_transformers(tmp_path, n_embd, tie):
    hf = tiny_ved(tmp_path / "hf", n_embd, tie)
    ours = lingvis.load(tmp_path / "hf")
    assert ours.family == "captioner" and (ours.proj is not None) == (n_embd != 32)
    px, ids = torch.randn(3, 3, 32, 32), torch.randint(0, 50, (3, 7))
    with torch.no_grad():
        diff = (ours(px, ids) - hf(pixel_values=px, decoder_input_ids=ids).logits).abs().max().item()
    assert diff <= 1e-4
    a = ours.generate(px, num_beams=4, max_new_tokens=20)
    b = hf.generate(pixel_values=px, num_beams=4, max_new_tokens=20)
    assert torch.equal(a, b)
    assert torch.equal(ours.generate(px, max_new_tokens=20), hf.generate(pixel_values=px, max_new_tokens=20))


def test_export_loads_in_transformers(tmp_path):
    tiny_ved(tmp_path / "hf")
    ours = lingvis.load(tmp_path / "hf")
    lingvis.save(ours, tmp_path / "out", format="hf")
    assert (tmp_path / "out" / "preprocessor_config.json").is_file()
    hf = transformers.VisionEncoderDecoderModel.from_pretrained(tmp_path / "out").eval()
    px, ids = torch.randn(2, 3, 32, 32), torch.randint(0, 50, (2, 5))
    with torch.no_grad():
        assert (ours(px, ids) - hf(pixel_values=px, decoder_input_ids=ids).logits).abs().max() <= 1e-4


def test_captioners_without_a_twin_are_saved_natively(tmp_path):
    model = lingvis.build("captioner-cnn-tiny")
    with pytest.raises(ValueError, match="no Hugging Face counterpart"):
        lingvis.save(model, tmp_path / "x", format="hf")


def test_unsupported_parts_are_named(tmp_path):
    tiny_ved(tmp_path / "hf")
    cfg_file = tmp_path / "hf" / "config.json"
    cfg = json.loads(cfg_file.read_text())
    cfg["decoder"]["model_type"] = "bert"
    cfg_file.write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="decoder model_type 'bert'"):
        lingvis.load(tmp_path / "hf")
