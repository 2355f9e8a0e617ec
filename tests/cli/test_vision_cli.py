"""`lingvis data shapes`, `pretrain clip`, `zero-shot`, `evaluate retrieval`, `search-images`,
`finetune image-classify` end to end on tiny data."""
import json
import shutil

import pytest
from PIL import Image

import lingvis
from lingvis.cli import main

TRAIN = ["--max-steps", "3", "--batch-size", "8", "--eval-every", "3", "--eval-batches", "1", "--warmup-steps", "1",
         "--no-progress"]


def lines(capsys):
    return [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith("{")]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Shapes data written by the CLI and a 3-step CLIP trained on it by the CLI."""
    root = tmp_path_factory.mktemp("vision")
    assert main(["data", "shapes", "--out", str(root / "shapes"), "--n-train", "48", "--n-val", "16",
                 "--n-test", "16", "--image-size", "32"]) == 0
    assert main(["pretrain", "clip", "--data", str(root / "shapes" / "captions_train.json"), "--val-data",
                 str(root / "shapes" / "captions_val.json"), "--out", str(root / "clip"), "--preset", "clip-nano",
                 *TRAIN]) == 0
    return root


def test_pretrain_writes_a_loadable_clip(run):
    model = lingvis.load(run / "clip")
    tok = lingvis.load_tokenizer(run / "clip")
    assert model.family == "clip" and model.config.eos_token_id == tok.eos_id
    assert (run / "clip" / "metrics.jsonl").is_file() and (run / "shapes" / "scenes_test_unseen.jsonl").is_file()
    rows = [json.loads(x) for x in (run / "clip" / "metrics.jsonl").read_text().splitlines()]
    assert any("t2i_R@1" in r for r in rows)


def test_zero_shot_prints_one_json_per_image_and_a_summary(run, capsys):
    images = sorted((run / "shapes" / "images").glob("test_*.png"))[:2]
    cls = run / "classes"
    for name, img in zip(("red_circle", "blue_square"), images):
        (cls / name).mkdir(parents=True, exist_ok=True)
        shutil.copy(img, cls / name / img.name)
    Image.new("RGB", (10, 10)).save(run / "extra.png")
    (cls / "red_circle" / "bad.png").write_bytes(b"broken")
    capsys.readouterr()
    assert main(["zero-shot", "--model", str(run / "clip"), "--labels", "red circle", "blue square",
                 "--template", "a {}", "--images", str(cls), str(run / "extra.png"), "--summary"]) == 0
    out = lines(capsys)
    per_image, summary = out[:-1], out[-1]["summary"]
    assert len(per_image) == 3 and set(per_image[0]) == {"image", "label", "scores"}
    assert per_image[0]["label"] in ("red circle", "blue square")
    assert summary["labelled"] == 2 and summary["skipped"] == 1 and 0 <= summary["accuracy"] <= 1


def test_evaluate_retrieval_and_search(run, capsys, tmp_path):
    capsys.readouterr()
    assert main(["evaluate", "retrieval", "--model", str(run / "clip"), "--data",
                 str(run / "shapes" / "captions_test.json"), "--max-images", "8"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["images"] == 8 and res["texts"] > 8 and 0 <= res["t2i_R@1"] <= res["t2i_R@10"] == 1.0
    args = ["search-images", "--model", str(run / "clip"), "--images", str(run / "shapes" / "images"), "--query",
            "a small red circle", "--top-k", "3", "--grid", str(tmp_path / "g.png"), "--index",
            str(tmp_path / "index.safetensors")]
    assert main(args) == 0
    hits = lines(capsys)[0]["hits"]
    assert len(hits) == 3 and (tmp_path / "g.png").is_file() and (tmp_path / "index.safetensors").is_file()
    assert main(args) == 0  # second run reuses the saved index
    assert lines(capsys)[0]["hits"] == hits
    assert main(args[:-2] + ["--int8", "--top-k", "2"]) == 0  # fresh index, int8 image encoding
    assert len(lines(capsys)[0]["hits"]) == 2
    assert main(args[:-2] + ["--bf16", "--top-k", "3"]) == 0  # fresh index, bf16 image encoding
    assert [h["image"] for h in lines(capsys)[0]["hits"]][:1] == [h["image"] for h in hits][:1]


def test_finetune_image_classify_from_a_class_folder(tmp_path, capsys):
    for name, rgb in (("red", (220, 30, 30)), ("blue", (30, 30, 220))):
        (tmp_path / "data" / name).mkdir(parents=True)
        for k in range(5):
            Image.new("RGB", (36, 40), tuple(v + 5 * k for v in rgb)).save(tmp_path / "data" / name / f"{k}.png")
    assert main(["finetune", "image-classify", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "run"),
                 "--preset", "vit-nano", "--val-fraction", "0.3", *TRAIN, "--batch-size", "4"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["classes"] == ["blue", "red"] and summary["train_images"] == 7 and "accuracy" in summary["eval"]
    model = lingvis.load(tmp_path / "run")
    assert model.family == "image_classifier" and model.config.labels == ["blue", "red"]


def test_errors_are_named(run, tmp_path, capsys):
    lingvis.save(lingvis.build("vit-nano"), tmp_path / "vit")
    assert main(["zero-shot", "--model", str(tmp_path / "vit"), "--labels", "a", "--images", str(run / "extra.png")]) == 2
    assert "need a CLIP checkpoint" in capsys.readouterr().err
    assert main(["zero-shot", "--model", str(run / "clip"), "--labels", "a"]) == 2
    assert "no images given" in capsys.readouterr().err
    assert main(["finetune", "image-classify", "--data", str(tmp_path / "none"), "--out", str(tmp_path / "r")]) == 2
    assert "image folder not found" in capsys.readouterr().err
