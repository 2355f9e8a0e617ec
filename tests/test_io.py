"""Checkpoint files: atomic writes, native save/load, named errors for every kind of bad checkpoint."""
import json

import pytest
import torch

import lingvis
from lingvis.io import (CheckpointError, atomic_dir, atomic_write_text, load_native, load_state, read_safetensors,
                        save_native)


@pytest.fixture
def nano():
    torch.manual_seed(0)
    return lingvis.build("gpt-nano", vocab_size=29).eval()


def test_atomic_dir_replaces_on_success_and_keeps_old_on_failure(tmp_path):
    target = tmp_path / "ckpt"
    with atomic_dir(target) as tmp:
        (tmp / "a.txt").write_text("one")
    assert (target / "a.txt").read_text() == "one"
    with pytest.raises(RuntimeError):
        with atomic_dir(target) as tmp:
            (tmp / "a.txt").write_text("two")
            raise RuntimeError("crash mid-write")
    assert (target / "a.txt").read_text() == "one"
    with atomic_dir(target) as tmp:
        (tmp / "b.txt").write_text("new")
    assert sorted(p.name for p in target.iterdir()) == ["b.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]  # no temporary or .old folders left


def test_atomic_write_text(tmp_path):
    atomic_write_text(tmp_path / "p.json", '{"a": 1}')
    atomic_write_text(tmp_path / "p.json", '{"a": 2}')
    assert json.loads((tmp_path / "p.json").read_text()) == {"a": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["p.json"]


def test_native_round_trip_stores_tied_weights_once(nano, tmp_path):
    save_native(nano, tmp_path / "m", extra={"labels": ["a", "b"]})
    meta = json.loads((tmp_path / "m" / "lingvis.json").read_text())
    assert meta["family"] == "gpt" and meta["config"]["n_layer"] == 2 and meta["labels"] == ["a", "b"]
    state = read_safetensors(tmp_path / "m" / "model.safetensors")
    assert "wte.weight" in state and "lm_head.weight" not in state
    back = load_native(tmp_path / "m")
    assert not back.training and back.lm_head.weight is back.wte.weight
    x = torch.randint(0, 29, (2, 5))
    with torch.no_grad():
        assert torch.equal(back(x), nano(x))


def test_load_state_names_missing_unexpected_and_mismatched_keys(nano):
    state = {k: v.clone() for k, v in nano.state_dict().items() if k != "lm_head.weight"}
    del state["ln_f.bias"]
    state["extra.weight"] = torch.zeros(3)
    state["blocks.0.attn.qkv.weight"] = torch.zeros(10, 64)
    with pytest.raises(CheckpointError) as e:
        load_state(nano, state, source="ckpt.safetensors")
    msg = str(e.value)
    assert msg.startswith("ckpt.safetensors does not fit GPT")
    assert "missing key 'ln_f.bias'" in msg and "unexpected key 'extra.weight'" in msg
    assert "key 'blocks.0.attn.qkv.weight': checkpoint shape (10, 64) != model shape (192, 64)" in msg


def test_wrong_shape_in_a_native_checkpoint(nano, tmp_path):
    save_native(nano, tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "lingvis.json").read_text())
    meta["config"]["vocab_size"] = 31
    (tmp_path / "m" / "lingvis.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match=r"key 'wte\.weight': checkpoint shape \(29, 64\) != model shape "
                                              r"\(31, 64\)"):
        lingvis.load(tmp_path / "m")


@pytest.mark.parametrize("damage, msg", [
    (lambda d: (d / "model.safetensors").write_bytes(b"\x00garbage" * 9), "corrupt or unreadable safetensors"),
    (lambda d: (d / "model.safetensors").unlink(), "weights file not found"),
    (lambda d: (d / "lingvis.json").write_text("{not json"), "corrupt .*lingvis.json"),
    (lambda d: (d / "lingvis.json").write_text("[1, 2]"), "corrupt .*lingvis.json: expected a JSON object"),
    (lambda d: (d / "lingvis.json").write_text('{"family": "transformerXL", "config": {}}'),
     "unknown model family 'transformerXL'"),
    (lambda d: (d / "lingvis.json").write_text('{"family": "gpt", "config": {"n_layers": 2}}'),
     r"lingvis.json: unknown gpt config field\(s\) \['n_layers'\]"),
])
def test_damaged_native_checkpoints(nano, tmp_path, damage, msg):
    save_native(nano, tmp_path / "m")
    damage(tmp_path / "m")
    with pytest.raises(CheckpointError, match=msg):
        lingvis.load(tmp_path / "m")
