"""Parity with transformers' MarianMTModel through the production converter (lingvis.load / lingvis.save)."""
import json

import pytest
import torch

import lingvis
from lingvis.io import CheckpointError

transformers = pytest.importorskip("transformers")
V = 60




def tiny_marian(tmp_path, seed=0, **kw):
    torch.manual_seed(seed)
    fields = dict(vocab_size=V, d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
                  decoder_attention_heads=4, encoder_ffn_dim=64, decoder_ffn_dim=64, max_position_embeddings=64,
                  pad_token_id=V - 1, decoder_start_token_id=V - 1, eos_token_id=0, init_std=0.3)
    fields.update(kw)
    hf = transformers.MarianMTModel(transformers.MarianConfig(**fields)).eval()
    with torch.no_grad():
        hf.final_logits_bias.normal_()
        hf.final_logits_bias[0, 0] += 3.0  # eos often likely: hypotheses of different lengths
    hf.save_pretrained(tmp_path / "hf")
    return hf


def batch(seed=1):
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(1, V - 1, (3, 9), generator=g)
    mask = torch.ones_like(src)
    mask[1, 6:] = 0
    src[1, 6:] = V - 1
    return src, mask, torch.randint(1, V - 1, (3, 7), generator=g)


@pytest.mark.parametrize("kw", [dict(), dict(scale_embedding=True, activation_function="swish"),
                                dict(share_encoder_decoder_embeddings=False, decoder_vocab_size=45, pad_token_id=44,
                                     decoder_start_token_id=44, tie_word_embeddings=False,
                                     activation_function="relu")])
def test_logits_match_transformers(tmp_path, kw):
    hf = tiny_marian(tmp_path, **kw)
    ours = lingvis.load(tmp_path / "hf")
    assert ours.family == "seq2seq" and ours.config.final_logits_bias
    src, mask, tgt = batch()
    tgt = tgt.clamp(max=ours.config.target_vocab - 1)
    with torch.no_grad():
        a = ours(src, tgt, mask)
        b = hf(input_ids=src, attention_mask=mask, decoder_input_ids=tgt).logits
    assert a.shape == b.shape
    assert (a - b).abs().max().item() <= 1e-4


def test_greedy_matches_transformers(tmp_path):
    hf = tiny_marian(tmp_path, seed=2)
    ours = lingvis.load(tmp_path / "hf")
    src, mask, _ = batch()
    a = ours.generate(src, mask, max_new_tokens=20)
    b = hf.generate(input_ids=src, attention_mask=mask, num_beams=1, do_sample=False, max_new_tokens=20,
                    forced_eos_token_id=None)
    assert torch.equal(a, b)


def test_export_loads_in_transformers(tmp_path):
    torch.manual_seed(0)
    ours = lingvis.build("transformer-nano", vocab_size=V, pad_id=V - 1, eos_id=0, decoder_start_id=V - 1,
                         final_logits_bias=True, activation="silu").eval()
    with torch.no_grad():
        ours.final_logits_bias.normal_()
    lingvis.save(ours, tmp_path / "out", format="hf")
    cfg = json.loads((tmp_path / "out" / "config.json").read_text())
    assert cfg["model_type"] == "marian" and cfg["activation_function"] == "swish"
    hf = transformers.MarianMTModel.from_pretrained(tmp_path / "out").eval()
    src, mask, tgt = batch()
    with torch.no_grad():
        diff = (ours(src, tgt, mask) - hf(input_ids=src, attention_mask=mask, decoder_input_ids=tgt).logits)
    assert diff.abs().max().item() <= 1e-4
    back = lingvis.load(tmp_path / "out")
    with torch.no_grad():
        assert torch.equal(back(src, tgt, mask), ours(src, tgt, mask))


def test_configs_without_marian_twin_use_the_native_format(tmp_path):
    ours = lingvis.build("transformer-nano", vocab_size=V, prenorm=True, final_norm=True)
    with pytest.raises(ValueError, match="no Hugging Face counterpart"):
        lingvis.save(ours, tmp_path / "x", format="hf")


def test_unsupported_and_broken_checkpoints_are_named(tmp_path):
    tiny_marian(tmp_path)
    d = tmp_path / "hf"
    cfg = json.loads((d / "config.json").read_text())
    (d / "config.json").write_text(json.dumps({**cfg, "decoder_ffn_dim": 128}))
    with pytest.raises(CheckpointError, match="encoder_ffn_dim=64 != decoder_ffn_dim=128"):
        lingvis.load(d)
    (d / "config.json").write_text(json.dumps({**cfg, "d_model": 64}))
    with pytest.raises(CheckpointError, match=r"\(60, 32\).*\(60, 64\)"):
        lingvis.load(d)
