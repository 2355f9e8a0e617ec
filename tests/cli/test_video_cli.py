"""`lingvis data videos`, `finetune video-classify`, `classify-video`, `pretrain video-clip`, `search-videos`,
`evaluate video-classify` and `evaluate video-retrieval` end to end on tiny data."""
import json

import pytest

from lingvis.cli import main

pytest.importorskip("av")
TRAIN = ["--max-steps", "2", "--batch-size", "6", "--eval-every", "2", "--eval-batches", "1", "--warmup-steps", "1",
         "--no-progress"]


def lines(capsys):
    return [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith("{")]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("video-cli") / "motion"
    assert main(["data", "videos", "--out", str(root), "--n-train", "1", "--n-val", "1", "--n-test-groups", "1",
                 "--frames", "8"]) == 0
    return root


def test_data_videos_writes_every_split(data):
    for split in ("train", "val", "test"):
        assert (data / f"{split}.csv").is_file() and (data / f"captions_{split}.json").is_file()
        assert (data / f"qa_{split}.json").is_file()
    assert len(list((data / "train").rglob("*.mp4"))) == 12
    assert json.loads((data / "captions_val.json").read_text())["info"]["frames"] == 8


NANO = ["--preset", "video-classifier-nano", "--frames", "4"]


@pytest.fixture(scope="module")
def classifier(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("vc") / "run"
    assert main(["finetune", "video-classify", "--data", str(data / "train"), "--val-data", str(data / "val.csv"),
                 "--out", str(out), *NANO, "--clips", "2", "--cache-frames", *TRAIN]) == 0
    return out


def test_finetune_classify_and_evaluate(data, classifier, tmp_path, capsys):
    import lingvis

    model = lingvis.load(classifier)
    assert model.family == "video_classifier" and model.config.num_frames == 4 and len(model.config.labels) == 12
    rows = [json.loads(x) for x in (classifier / "metrics.jsonl").read_text().splitlines()]
    assert any("top5" in r and r.get("split") == "val" for r in rows)
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video")
    capsys.readouterr()
    good = sorted((data / "test").rglob("*.mp4"))[:2]
    assert main(["classify-video", "--model", str(classifier), str(good[0]), str(broken), str(good[1]),
                 "--clips", "2"]) == 0
    out = lines(capsys)
    assert [o["file"] for o in out] == [str(good[0]), str(broken), str(good[1])]
    assert out[0]["label"] in model.config.labels and len(out[0]["top5"]) == 5
    assert out[0]["top5"][0] == {"label": out[0]["label"], "score": out[0]["score"]}
    assert "broken.mp4" in out[1]["error"]
    assert main(["evaluate", "video-classify", "--model", str(classifier), "--data", str(data / "test.csv")]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["videos"] == 12 and 0 <= summary["top1"] <= summary["top5"] <= 1


def test_finetune_mean_baseline_and_from_a_video_clip(data, tmp_path):
    import lingvis

    assert main(["finetune", "video-classify", "--data", str(data / "train.csv"), "--out", str(tmp_path / "mean"),
                 *NANO, "--temporal", "mean", *TRAIN]) == 0
    assert lingvis.load(tmp_path / "mean").config.backbone["temporal"] == "mean"


@pytest.fixture(scope="module")
def video_clip(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("vclip") / "run"
    assert main(["pretrain", "video-clip", "--data", str(data / "captions_train.json"), "--val-data",
                 str(data / "captions_val.json"), "--out", str(out), "--preset", "video-clip-nano", *TRAIN]) == 0
    return out


def test_pretrain_video_clip_search_and_evaluate(data, video_clip, tmp_path, capsys):
    import lingvis

    model = lingvis.load(video_clip)
    assert model.family == "video_clip" and lingvis.load_tokenizer(video_clip).eos_id == model.clip.config.eos_token_id
    rows = [json.loads(x) for x in (video_clip / "metrics.jsonl").read_text().splitlines()]
    assert any("t2v_MdR" in r for r in rows)
    capsys.readouterr()
    index = tmp_path / "index.safetensors"
    assert main(["search-videos", "--model", str(video_clip), "--videos", str(data / "test"), "--index", str(index),
                 "a red circle moving left", "--top-k", "3"]) == 0
    (hits,) = lines(capsys)
    assert hits["query"] == "a red circle moving left" and len(hits["hits"]) == 3 and index.is_file()
    assert all(h["video"].endswith(".mp4") for h in hits["hits"])
    assert main(["search-videos", "--model", str(video_clip), "--videos", str(data / "test"), "--index", str(index),
                 "--query", "a shape appearing"]) == 0  # the saved index is reused
    assert len(lines(capsys)[0]["hits"]) == 10
    assert main(["evaluate", "video-retrieval", "--model", str(video_clip), "--data",
                 str(data / "captions_test.json"), "--first-caption-only"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["videos"] == 12 and summary["texts"] == 12 and 1 <= summary["t2v_MdR"] <= 12
    assert main(["finetune", "video-classify", "--data", str(data / "train"), "--out", str(tmp_path / "fromclip"),
                 "--model", str(video_clip), "--frames", "4", *TRAIN, "--lr", "0"]) == 0
    clf = lingvis.load(tmp_path / "fromclip")  # lr 0: the frame encoder is still the video CLIP's image tower
    assert torch_equal(clf.backbone.frame_encoder.state_dict(), model.clip.vision.state_dict())


def torch_equal(a: dict, b: dict) -> bool:
    import torch

    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_pretrain_video_clip_from_a_clip_folder(data, tmp_path):
    import lingvis
    from lingvis.models import registry
    from lingvis.recipes.clip_data import train_word_tokenizer
    from lingvis.video.readers import read_msrvtt

    tok = train_word_tokenizer([c for r in read_msrvtt(data / "captions_train.json") for c in r.captions])
    clip = registry.build("clip-nano", text=dict(vocab_size=tok.vocab_size, context_length=16, dim=32, depth=1,
                                                heads=4, mlp_hidden=64), eos_token_id=tok.eos_id)
    lingvis.save(clip, tmp_path / "clip", tokenizer=tok, format="lingvis")
    assert main(["pretrain", "video-clip", "--data", str(data / "captions_train.json"), "--clip",
                 str(tmp_path / "clip"), "--out", str(tmp_path / "run"), "--temporal-heads", "4", "--frames", "4",
                 "--max-steps", "1", "--batch-size", "4", "--eval-batches", "1", "--no-progress"]) == 0
    model = lingvis.load(tmp_path / "run")
    assert model.config.num_frames == 4 and model.config.temporal_heads == 4
    assert main(["pretrain", "video-clip", "--data", str(data / "captions_train.json"), "--model",
                 str(tmp_path / "run"), "--clip", str(tmp_path / "clip"), "--out", str(tmp_path / "x")]) == 2


def test_video_caption_and_qa_commands(data, tmp_path, capsys):
    cap = tmp_path / "cap"
    assert main(["finetune", "video-caption", "--data", str(data / "captions_train.json"), "--val-data",
                 str(data / "captions_val.json"), "--out", str(cap), "--preset", "video-captioner-nano",
                 "--vocab-size", "300", *TRAIN]) == 0
    capsys.readouterr()
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"junk")
    video = next((data / "test").rglob("*.mp4"))
    assert main(["caption-video", "--model", str(cap), str(video), str(bad), "--beams", "2",
                 "--max-new-tokens", "4"]) == 0
    rows = lines(capsys)
    assert rows[0]["file"] == str(video) and isinstance(rows[0]["caption"], str)
    assert rows[1]["file"] == str(bad) and "bad.mp4" in rows[1]["error"]
    assert main(["evaluate", "video-caption", "--model", str(cap), "--data", str(data / "captions_test.json"),
                 "--beams", "1"]) == 0
    assert json.loads(capsys.readouterr().out)["videos"] == 12
    qa = tmp_path / "qa"
    assert main(["finetune", "video-caption", "--qa", "--data", str(data / "qa_train.json"), "--val-data",
                 str(data / "qa_val.json"), "--out", str(qa), "--preset", "video-captioner-nano",
                 "--vocab-size", "300", *TRAIN]) == 0
    capsys.readouterr()
    assert main(["caption-video", "--model", str(qa), str(video), "--question", "which way does it move?"]) == 0
    assert lines(capsys)[0]["question"] == "which way does it move?"
    assert main(["evaluate", "video-qa", "--model", str(qa), "--data", str(data / "qa_test.json")]) == 0
    ev = json.loads(capsys.readouterr().out)
    assert ev["questions"] > 0 and 0 <= ev["accuracy"] <= 1
