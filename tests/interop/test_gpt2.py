"""Parity with transformers' GPT-2 through the production converter (lingvis.load / lingvis.save)."""
import json

import pytest
import torch

import lingvis
from lingvis.io import CheckpointError

transformers = pytest.importorskip("transformers")


def tiny_hf(tmp_path, tie=True, **kw):
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(vocab_size=97, n_positions=64, n_embd=32, n_layer=2, n_head=4,
                                  tie_word_embeddings=tie, **kw)
    hf = transformers.GPT2LMHeadModel(cfg).eval()
    hf.save_pretrained(tmp_path / "hf")
    return hf


@pytest.mark.parametrize("tie", [True, False])
def test_logits_and_greedy_match_transformers(tmp_path, tie):
    hf = tiny_hf(tmp_path, tie=tie)
    ours = lingvis.load(tmp_path / "hf")
    x = torch.randint(0, 97, (3, 11))
    with torch.no_grad():
        diff = (ours(x) - hf(x).logits).abs().max().item()
    assert diff <= 1e-4
    a = ours.generate(x[:1], max_new_tokens=20)
    b = hf.generate(x[:1], max_new_tokens=20, do_sample=False, pad_token_id=0)
    assert torch.equal(a, b)


def test_sharded_checkpoint_loads(tmp_path):
    hf = tiny_hf(tmp_path)
    hf.save_pretrained(tmp_path / "sharded", max_shard_size="20KB")
    assert (tmp_path / "sharded" / "model.safetensors.index.json").is_file()
    ours = lingvis.load(tmp_path / "sharded")
    x = torch.randint(0, 97, (2, 7))
    with torch.no_grad():
        assert (ours(x) - hf(x).logits).abs().max() <= 1e-4


def test_export_loads_in_transformers(tmp_path):
    ours = lingvis.build("gpt-nano", vocab_size=97).eval()
    lingvis.save(ours, tmp_path / "out")
    hf = transformers.GPT2LMHeadModel.from_pretrained(tmp_path / "out").eval()
    x = torch.randint(0, 97, (2, 9))
    with torch.no_grad():
        assert (ours(x) - hf(x).logits).abs().max() <= 1e-4
    # no tokenizer saved: no special ids beyond the 97-token vocabulary (transformers' default is 50256)
    assert hf.config.eos_token_id is None and hf.config.bos_token_id is None


def test_export_special_ids_gpt2_vocab_and_tokenizer(tmp_path):
    lingvis.save(lingvis.build("gpt-nano", vocab_size=50257), tmp_path / "gpt2vocab")
    cfg = json.loads((tmp_path / "gpt2vocab" / "config.json").read_text())
    assert cfg["eos_token_id"] == cfg["bos_token_id"] == 50256  # <|endoftext|>
    from lingvis.tokenizers import train_char

    tok = train_char(["hello world"])
    lingvis.save(lingvis.build("gpt-nano", vocab_size=tok.vocab_size), tmp_path / "char", tokenizer=tok)
    cfg = json.loads((tmp_path / "char" / "config.json").read_text())
    assert cfg["eos_token_id"] == tok.eos_id is not None


def test_native_format_for_configs_without_hf_twin(tmp_path):
    # rotary positions with LayerNorm and GELU: neither GPT-2 nor a Llama-family model
    ours = lingvis.build("gpt-nano", vocab_size=50, n_layer=1, position="rotary").eval()
    with pytest.raises(ValueError, match="no Hugging Face counterpart"):
        lingvis.save(ours, tmp_path / "x", format="hf")
    lingvis.save(ours, tmp_path / "out")
    back = lingvis.load(tmp_path / "out")
    x = torch.randint(0, 50, (1, 5))
    with torch.no_grad():
        assert torch.equal(ours(x), back(x))


def test_bad_checkpoints_have_named_errors(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        lingvis.load(tmp_path / "nope")
    tiny_hf(tmp_path)
    d = tmp_path / "hf"
    (d / "model.safetensors").write_bytes(b"garbage" * 10)
    with pytest.raises(CheckpointError, match="corrupt"):
        lingvis.load(d)
    (d / "config.json").write_text(json.dumps({"model_type": "llama9"}))
    with pytest.raises(CheckpointError, match="unsupported model_type 'llama9'"):
        lingvis.load(d)


def test_wrong_shape_names_key_and_shapes(tmp_path):
    hf = tiny_hf(tmp_path)
    cfg = json.loads((tmp_path / "hf" / "config.json").read_text())
    cfg["n_embd"] = 64
    (tmp_path / "hf" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match=r"wte\.weight.*\(97, 32\).*\(97, 64\)"):
        lingvis.load(tmp_path / "hf")
