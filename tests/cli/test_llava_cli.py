"""The llava command line: `pretrain llava` -> `finetune llava --lora` -> `chat --image` (multi-turn, /image,
/reset) -> `evaluate llava-shapes`, and clear errors."""
import io
import json
import string
import sys

import pytest
import torch

import lingvis
from lingvis.cli import main
from lingvis.data.shapes import make_split_scenes, render_scene
from lingvis.tokenizers import train_char


def cli(capsys, *argv, stdin=None, monkeypatch=None):
    if stdin is not None:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("llava-cli")
    torch.manual_seed(0)
    tok = train_char(string.printable)
    lingvis.save(lingvis.build("gpt-nano", vocab_size=tok.vocab_size, block_size=256), root / "lm", tokenizer=tok)
    lingvis.save(lingvis.build("clip-nano"), root / "clip")
    common = ["--max-steps", 2, "--batch-size", 4, "--eval-every", 2, "--eval-batches", 1, "--no-progress",
              "--n-train", 6, "--device", "cpu"]
    assert main([str(a) for a in ["pretrain", "llava", "--vision", root / "clip", "--llm", root / "lm",
                                  "--out", root / "s1", *common]]) == 0
    assert main([str(a) for a in ["finetune", "llava", "--model", root / "s1", "--out", root / "s2", "--lora",
                                  *common]]) == 0
    for i, scene in enumerate(make_split_scenes("test", 2)):
        render_scene(scene, 64).save(root / f"img{i}.png")
    return root


def test_stages_write_runs(runs):
    meta = json.loads(next((runs / "s2" / "checkpoints").glob("step-*/lingvis.json")).read_text())
    assert meta["family"] == "llava" and meta["lora"]["rank"] == 8 and meta["task"] == "llava-finetune"
    assert lingvis.load(runs / "s2").family == "llava"


def test_chat_with_images_streams_multi_turn(runs, capsys, monkeypatch):
    model, tok = lingvis.load(runs / "s2"), lingvis.load_tokenizer(runs / "s2")
    args = ["chat", "--model", runs / "s2", "--image", runs / "img0.png", "--max-new-tokens", 6, "--temperature", 0]
    stdin = f"What is it?\n/image {runs / 'img1.png'}\nAnd this?\n/reset\nWhat is it?\n/quit\n"
    code, out, err = cli(capsys, *args, stdin=stdin, monkeypatch=monkeypatch)
    replies = [chunk[:-1] for chunk in out.split("assistant> ")[1:]]
    assert code == 0 and len(replies) == 3 and "image attached" in err
    from lingvis.data.images import load_image

    img0, img1 = load_image(runs / "img0.png"), load_image(runs / "img1.png")
    first = [{"role": "user", "content": "<image>\nWhat is it?"}]
    prompt = tok.apply_chat_template(first, add_generation_prompt=True)
    want = lingvis.generate(model, tok, prompt, max_new_tokens=6, images=[img0], overflow="slide")
    assert replies[0] == want
    second = first + [{"role": "assistant", "content": replies[0]}, {"role": "user", "content": "<image>\nAnd this?"}]
    prompt = tok.apply_chat_template(second, add_generation_prompt=True)
    assert replies[1] == lingvis.generate(model, tok, prompt, max_new_tokens=6, images=[img0, img1], overflow="slide")
    # after /reset the first image is gone: the same question now has no image
    prompt = tok.apply_chat_template([{"role": "user", "content": "What is it?"}], add_generation_prompt=True)
    assert replies[2] == lingvis.generate(model, tok, prompt, max_new_tokens=6, overflow="slide")


def test_evaluate_shapes_prints_scores(runs, capsys):
    code, out, _ = cli(capsys, "evaluate", "llava-shapes", "--model", runs / "s2", "--n", 3)
    r = json.loads(out)
    assert code == 0 and r["scenes"] == 3 and "exists" in r["per_kind"] and 0 <= r["pope"]["accuracy"] <= 100


def test_errors(runs, capsys, monkeypatch):
    code, _, err = cli(capsys, "chat", "--model", runs / "lm", "--image", runs / "img0.png", stdin="hi\n",
                       monkeypatch=monkeypatch)
    assert code == 2 and "needs an image-chat model (llava)" in err
    code, _, err = cli(capsys, "pretrain", "llava", "--llm", runs / "lm", "--out", runs / "x", "--no-progress")
    assert code == 2 and "--vision" in err
    code, _, err = cli(capsys, "finetune", "llava", "--model", runs / "s1", "--preset", "gpt-nano", "--out",
                       runs / "y")
    assert code == 2 and "no --preset" in err


def test_chat_with_a_video_sees_its_frames_as_images(runs, capsys, monkeypatch, tmp_path):
    pytest.importorskip("av")
    from lingvis.video.clips import frame_images
    from lingvis.video.motion import motion_clips
    from lingvis.video.write import write_video

    video = write_video(tmp_path / "clip.mp4", motion_clips(1, "chat", ("move_left",), 8)[0].frames(32), fps=8.0)
    frames = frame_images(video, 3)
    assert len(frames) == 3 and frames[0].size == (32, 32)
    assert frames[0].tobytes() != frames[-1].tobytes()  # the shape moved
    model, tok = lingvis.load(runs / "s2"), lingvis.load_tokenizer(runs / "s2")
    code, out, err = cli(capsys, "chat", "--model", runs / "s2", "--video", video, "--video-frames", 3,
                         "--max-new-tokens", 5, "--temperature", 0, stdin="Which way?\n/quit\n",
                         monkeypatch=monkeypatch)
    assert code == 0, err
    reply = out.split("assistant> ")[1][:-1]
    prompt = tok.apply_chat_template([{"role": "user", "content": "<image>\n" * 3 + "Which way?"}],
                                     add_generation_prompt=True)
    assert reply == lingvis.generate(model, tok, prompt, max_new_tokens=5, images=frames, overflow="slide")


def test_evaluate_video_qa_with_an_image_chat_model(runs, capsys, tmp_path):
    pytest.importorskip("av")
    from lingvis.video.synthetic import generate_videos

    data = tmp_path / "clips"
    generate_videos(data, n_train=0, n_val=0, n_test_groups=1, size=32, num_frames=8, kinds=("move_left",))
    code, out, _ = cli(capsys, "evaluate", "video-qa", "--model", runs / "s2", "--data", data / "qa_test.json",
                       "--frames", 2)
    r = json.loads(out)
    n = len(json.loads((data / "qa_test.json").read_text()))
    assert code == 0 and r["questions"] == n and 0 <= r["accuracy"] <= 1 and len(r["examples"]) >= 1


def test_stage_one_takes_the_lingvis_only_image_token_layouts(runs):
    common = ["--max-steps", 1, "--batch-size", 2, "--eval-every", 1, "--eval-batches", 1, "--no-progress",
              "--n-train", 4, "--device", "cpu"]
    assert main([str(a) for a in ["pretrain", "llava", "--vision", runs / "clip", "--llm", runs / "lm", "--out",
                                  runs / "s1m", "--spatial-merge", 2, "--image-position", "rowcol", *common]]) == 0
    m = lingvis.load(runs / "s1m")
    assert (m.config.spatial_merge, m.config.image_position, m.tokens_per_image) == (2, "rowcol", 4)
    assert main([str(a) for a in ["pretrain", "llava", "--vision", runs / "clip", "--llm", runs / "lm", "--out",
                                  runs / "s1o", "--image-position", "onehot", *common]]) == 0
    m = lingvis.load(runs / "s1o")
    assert m.config.image_position == "onehot"
    assert m.projector.layers[0].in_features == m.vision.config.dim + 2 * m.vision.config.grid


def test_finetune_splits_word_pairs(runs):
    common = ["--max-steps", 1, "--batch-size", 2, "--eval-every", 1, "--eval-batches", 1, "--no-progress",
              "--n-train", 4, "--device", "cpu", "--lr", 1e-7]
    assert main([str(a) for a in ["finetune", "llava", "--model", runs / "s1", "--out", runs / "s2split",
                                  "--split-words", "a/b", *common]]) == 0
    tok = lingvis.load_tokenizer(runs / "s2split")
    ia, ib = tok.encode("a")[0], tok.encode("b")[0]
    emb = lingvis.load(runs / "s2split").llm.wte.weight
    assert torch.cosine_similarity(emb[ia], emb[ib], dim=0).item() == pytest.approx(0.406, abs=1e-2)
