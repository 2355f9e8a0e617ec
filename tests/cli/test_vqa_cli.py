"""`lingvis pretrain fusion`, `lingvis finetune vqa`, `lingvis vqa` end to end on tiny data."""
import json

import pytest
from PIL import Image

from lingvis.cli import main
from lingvis.data.shapes import generate_shapes

TINY = ["--preset", "fusion-tiny", "--max-steps", "2", "--batch-size", "8", "--eval-every", "2",
        "--eval-batches", "1", "--warmup-steps", "1", "--no-progress", "--vocab-size", "200"]


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    root = tmp_path_factory.mktemp("shapes")
    generate_shapes(root, n_train=10, n_val=3, n_test=3, image_size=32, seed=0)
    return root


def test_pretrain_finetune_and_answer(shapes, tmp_path, capsys):
    assert main(["pretrain", "fusion", "--data", str(shapes), "--out", str(tmp_path / "pre"), *TINY]) == 0
    assert "itm_accuracy" in capsys.readouterr().out
    assert main(["finetune", "vqa", "--data", str(shapes), "--out", str(tmp_path / "vqa"),
                 "--model", str(tmp_path / "pre"), "--readout", "regions", "--readout-queries", "2",
                 "--readout-roles", "order", *TINY[2:]]) == 0
    out = capsys.readouterr().out
    from lingvis import api

    tuned = api.load(tmp_path / "vqa")  # the pretrained trunk with the region readout head
    assert tuned.config.vqa_readout == "regions" and tuned.vqa_readout.n_queries == 2
    assert tuned.config.vqa_roles == "order" and tuned.vqa_readout.roles == "order"
    assert "[vqa] test_unseen: VQA accuracy" in out and "yes/no" in out
    image = next((shapes / "images").glob("test_*.png"))
    assert main(["vqa", "--model", str(tmp_path / "vqa"), "--image", str(image), "--question", "is there a star?",
                 "--question", "how many shapes are there?", "--top-k", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "Q: is there a star?" and lines[1].startswith("A: ") and lines[1].count("(") == 2
    assert lines[2] == "Q: how many shapes are there?"
    code = main(["vqa", "--model", str(tmp_path / "vqa"), "--image", str(tmp_path / "none.png"), "--question", "x"])
    assert code == 2 and "image file not found" in capsys.readouterr().err
    code = main(["vqa", "--model", str(tmp_path / "pre"), "--image", str(image), "--question", "what?"])
    assert code == 2 and "not a VQA model" in capsys.readouterr().err


def test_missing_image_is_a_clear_error(tmp_path, capsys):
    Image.new("RGB", (32, 32)).save(tmp_path / "ok.png")
    rows = [{"image": "ok.png", "question": "is it dark?", "answers": ["yes"]},
            {"image": "gone.png", "question": "is it red?", "answers": ["no"], "question_id": "q2"}]
    (tmp_path / "vqa.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    code = main(["finetune", "vqa", "--data", str(tmp_path / "vqa.jsonl"), "--out", str(tmp_path / "run"), *TINY])
    err = capsys.readouterr().err
    assert code == 2 and "vqa.jsonl:2: question 'q2' refers to missing image" in err and "--skip-bad" in err


def test_roles_preset_carries_its_readout_through_pretraining(shapes, tmp_path):
    """`pretrain fusion --preset fusion-small-roles` then `finetune vqa --model`: the fine-tuned head has the
    order roles and the geometry slot without flags; --no-readout-geometry takes the slot off."""
    from lingvis import api

    small = ["--preset", "fusion-small-roles", *TINY[2:]]
    assert main(["pretrain", "fusion", "--data", str(shapes), "--out", str(tmp_path / "pre"), *small]) == 0
    assert main(["finetune", "vqa", "--data", str(shapes), "--out", str(tmp_path / "vqa"),
                 "--model", str(tmp_path / "pre"), *TINY[2:]]) == 0
    tuned = api.load(tmp_path / "vqa")
    assert tuned.config.vqa_roles == "order" and tuned.vqa_readout.relation is not None
    assert main(["finetune", "vqa", "--data", str(shapes), "--out", str(tmp_path / "plain"),
                 "--model", str(tmp_path / "pre"), "--no-readout-geometry", *TINY[2:]]) == 0
    plain = api.load(tmp_path / "plain")
    assert not plain.config.vqa_geometry and plain.vqa_readout.relation is None
