"""The top-level contract: lingvis.load / save / load_tokenizer / resolve_checkpoint."""
import json

import pytest
import torch

import lingvis
from lingvis.io import CheckpointError
from lingvis.tokenizers import train_char


@pytest.fixture
def nano():
    torch.manual_seed(0)
    return lingvis.build("gpt-nano", vocab_size=40).eval()


def test_missing_path_file_and_empty_folder(tmp_path):
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        lingvis.load(tmp_path / "nope")
    (tmp_path / "f.bin").write_bytes(b"x")
    with pytest.raises(CheckpointError, match="is a file"):
        lingvis.load(tmp_path / "f.bin")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="no model in .*expected lingvis.json or config.json"):
        lingvis.load(tmp_path / "empty")


def test_corrupt_run_pointer(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "best.json").write_text("{oops")
    with pytest.raises(CheckpointError, match="corrupt checkpoint pointer .*best.json"):
        lingvis.load(tmp_path)


def test_unknown_hf_model_type(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "mamba99"}))
    with pytest.raises(CheckpointError, match="unsupported model_type 'mamba99'"):
        lingvis.load(tmp_path)


def test_pickle_only_hf_checkpoint_is_refused(tmp_path, nano):
    lingvis.save(nano, tmp_path / "hf")
    (tmp_path / "hf" / "model.safetensors").rename(tmp_path / "hf" / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="pytorch_model.bin .*safetensors only"):
        lingvis.load(tmp_path / "hf")


def test_save_formats_and_tokenizer(tmp_path, nano):
    tok = train_char(["hello world, the quick brown fox"])
    lingvis.save(nano, tmp_path / "auto", tokenizer=tok)
    cfg = json.loads((tmp_path / "auto" / "config.json").read_text())
    assert cfg["model_type"] == "gpt2" and cfg["eos_token_id"] == tok.eos_id
    lingvis.save(nano, tmp_path / "native", format="lingvis")
    assert (tmp_path / "native" / "lingvis.json").is_file() and not (tmp_path / "native" / "config.json").exists()
    x = torch.randint(0, 40, (1, 6))
    with torch.no_grad():
        for d in ("auto", "native"):
            assert torch.allclose(lingvis.load(tmp_path / d)(x), nano(x), atol=1e-5)
    assert lingvis.load_tokenizer(tmp_path / "auto").encode("hello") == tok.encode("hello")
    with pytest.raises(ValueError, match="format must be auto, hf or lingvis"):
        lingvis.save(nano, tmp_path / "x", format="onnx")


def test_load_to_device_and_eval_mode(tmp_path, nano):
    lingvis.save(nano, tmp_path / "m")
    model = lingvis.load(tmp_path / "m", device="cpu")
    assert not model.training and next(model.parameters()).device.type == "cpu"


def test_save_refuses_to_wipe_a_folder_that_is_not_a_model(tmp_path, nano):
    (tmp_path / "project").mkdir()
    (tmp_path / "project" / "notes.txt").write_text("precious")
    with pytest.raises(ValueError, match="refusing to replace .*project.*not empty and holds no model files"):
        lingvis.save(nano, tmp_path / "project")
    assert (tmp_path / "project" / "notes.txt").read_text() == "precious"
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="exists and is not a folder"):
        lingvis.save(nano, tmp_path / "file")
    lingvis.save(nano, tmp_path / "m")
    lingvis.save(nano, tmp_path / "m", format="lingvis")  # an existing model folder is replaced
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["lingvis.json", "model.safetensors"]


def test_load_as_checks_the_family(tmp_path, nano):
    from lingvis.api import load_as
    from lingvis.models.registry import preset_of

    lingvis.save(nano, tmp_path / "m")
    assert load_as(tmp_path / "m", ("gpt", "bert")).family == "gpt"
    with pytest.raises(ValueError, match=r"m holds a gpt model, not a captioner"):
        load_as(tmp_path / "m", "captioner", "a captioner")
    assert preset_of("gpt-nano", "gpt")[0] == "gpt"
    with pytest.raises(ValueError, match=r"preset 'gpt-nano' is a gpt model, not clip or vae"):
        preset_of("gpt-nano", ("clip", "vae"))
