"""`lingvis pretrain seq2seq` / `finetune translate` / `translate` / `finetune caption` / `caption`:
tiny smoke runs end to end, and the bad-input paths (misaligned files, empty lines, broken images)."""
import io
import json

import pytest
from PIL import Image

from lingvis.cli import main
from lingvis.data.shapes import generate_shapes

TRAIN = ["--max-steps", "2", "--batch-size", "8", "--eval-every", "2", "--eval-batches", "1", "--warmup-steps", "1",
         "--no-progress"]




def summary(out: str) -> dict:
    return json.loads(out[out.index("{"):out.rindex("}") + 1])


@pytest.fixture(scope="module")
def translator(tmp_path_factory):
    run = tmp_path_factory.mktemp("mt") / "run"
    rc = main(["finetune", "translate", "--out", str(run), "--preset", "transformer-nano", "--n-train", "60",
               "--n-val", "20", "--vocab-size", "320", *TRAIN])
    assert rc == 0
    return run


def test_translate_texts_stdin_and_stream(translator, capsys, monkeypatch):
    capsys.readouterr()
    assert main(["translate", "--model", str(translator), "--to", "zh", "a red circle", "a blue star",
                 "--max-new-tokens", "5"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2
    monkeypatch.setattr("sys.stdin", io.StringIO("一个红色圆形\n\n一个蓝色星形\n"))
    assert main(["translate", "--model", str(translator), "--to", "en", "--n-best", "2",
                 "--max-new-tokens", "5"]) == 0
    out = capsys.readouterr()
    lines = out.out.splitlines()
    assert len(lines) == 5 and lines[2] == "" and lines[0].startswith("1\t") and lines[1].startswith("2\t")
    assert "skipped 1 empty source line" in out.err
    assert main(["translate", "--model", str(translator), "--to", "zh", "--stream", "--temperature", "0.8",
                 "--seed", "0", "--max-new-tokens", "4", "a red circle"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 1


def test_evaluate_translate_on_the_held_out_split(translator, capsys):
    capsys.readouterr()
    assert main(["evaluate", "translate", "--model", str(translator), "--direction", "zh-en", "--split",
                 "test_unseen", "--n", "4", "--max-new-tokens", "6"]) == 0
    r = summary(capsys.readouterr().out)
    assert r["n"] == 4 and 0 <= r["bleu"] <= 100 and "tok:13a" in r["signature"]
    assert main(["evaluate", "translate", "--model", str(translator), "--n", "3", "--max-new-tokens", "6"]) == 0
    assert "tok:zh" in summary(capsys.readouterr().out)["signature"]


def test_marian_export_translates_like_the_native_checkpoint(translator, tmp_path, capsys):
    assert main(["convert", str(translator), str(tmp_path / "hf"), "--to", "hf"]) == 0
    assert json.loads((tmp_path / "hf" / "config.json").read_text())["model_type"] == "marian"
    capsys.readouterr()
    outs = []
    for model in (translator, tmp_path / "hf"):  # the HF folder finds the >>zh<< tag in its tokenizer
        assert main(["translate", "--model", str(model), "--to", "zh", "a red circle", "--max-new-tokens", "6"]) == 0
        outs.append(capsys.readouterr().out)
    assert outs[0] == outs[1]


def test_translate_needs_a_known_target_language(translator, capsys):
    assert main(["translate", "--model", str(translator), "a red circle"]) == 2
    assert "choose one with --to" in capsys.readouterr().err
    assert main(["translate", "--model", str(translator), "--to", "fr", "a red circle"]) == 2
    assert "unknown target language 'fr'" in capsys.readouterr().err


def test_user_parallel_files_and_bad_input(tmp_path, capsys):
    src, tgt = tmp_path / "train.en", tmp_path / "train.zh"
    src.write_text("a red circle\na blue star\na green square\n")
    tgt.write_text("一个红色圆形\n一个蓝色星形\n")
    rc = main(["pretrain", "seq2seq", "--data", str(src), "--tgt-data", str(tgt), "--out", str(tmp_path / "r"),
               "--preset", "transformer-nano", *TRAIN])
    err = capsys.readouterr().err
    assert rc == 2 and str(src) in err and str(tgt) in err and "3 lines" in err and "2 lines" in err
    tsv = tmp_path / "pairs.tsv"
    tsv.write_text("".join(f"a {c} circle\t一个{z}圆形\n" for c, z in [("red", "红色"), ("blue", "蓝色"),
                                                                      ("green", "绿色")] * 4) + "\t一个空的\n")
    rc = main(["pretrain", "seq2seq", "--data", str(tsv), "--target-lang", "zh", "--out", str(tmp_path / "r2"),
               "--preset", "transformer-nano", "--vocab-size", "300", *TRAIN])
    assert rc == 0
    s = summary(capsys.readouterr().out)
    assert s["skipped_pairs"] == 1 and s["train_pairs"] + s["val_pairs"] == 12 and "bleu" in s["eval"]


def test_caption_train_and_caption_images(tmp_path, capsys):
    run = tmp_path / "cap"
    assert main(["finetune", "caption", "--out", str(run), "--preset", "captioner-nano", "--n-train", "12",
                 "--vocab-size", "300", *TRAIN]) == 0
    assert "cider" in summary(capsys.readouterr().out)["eval"]
    good, bad = tmp_path / "good.png", tmp_path / "bad.png"
    Image.new("RGB", (48, 40), (200, 30, 30)).save(good)
    bad.write_bytes(b"not an image")
    rc = main(["caption", "--model", str(run), str(good), str(bad), "--max-new-tokens", "5"])
    out = capsys.readouterr()
    assert rc == 1 and out.out.startswith(f"{good}\t") and len(out.out.splitlines()) == 1
    assert "bad.png" in out.err and "skipped 1 of 2" in out.err
    assert main(["caption", "--model", str(run), str(good), "--temperature", "0.9", "--seed", "1",
                 "--max-new-tokens", "4"]) == 0
    assert main(["caption", "--model", str(run), str(good), "--num-beams", "2", "--n-best", "3"]) == 2


def test_caption_on_coco_files_with_a_broken_image(tmp_path, capsys):
    paths = generate_shapes(tmp_path / "shapes", n_train=8, n_val=3, n_test=0, image_size=32)
    (paths["images"] / "train_000002.png").write_bytes(b"truncated")
    run = tmp_path / "cap"
    assert main(["finetune", "caption", "--data", str(paths["captions_train"]), "--val-data",
                 str(paths["captions_val"]), "--out", str(run), "--preset", "captioner-nano", "--vocab-size", "300",
                 *TRAIN]) == 0
    s = summary(capsys.readouterr().out)
    assert s["skipped_images"] >= 1 and s["val_images"] == 3
    assert main(["evaluate", "caption", "--model", str(run), "--data", str(paths["captions_val"]),
                 "--max-new-tokens", "5"]) == 0
    r = summary(capsys.readouterr().out)
    assert r["n"] == 3 and r["cider"] >= 0
