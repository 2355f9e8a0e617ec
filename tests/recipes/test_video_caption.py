"""Video captioning and video QA recipe on tiny synthetic clips: training runs end to end, captions and answers
come back per video in order, unreadable videos are reported by position, and a nano model overfits QA."""

import pytest
import torch

from lingvis import api
from lingvis.recipes.video_caption import (VideoCaptionArgs, answer_questions, caption_videos,
                                           evaluate_video_captions, evaluate_video_qa, qa_records,
                                           train_video_captioner)
from lingvis.train.config import TrainConfig
from lingvis.video.readers import read_msrvtt, read_video_qa

pytest.importorskip("av")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from lingvis.video.synthetic import generate_videos

    root = tmp_path_factory.mktemp("vcap")
    generate_videos(root, n_train=1, n_val=1, n_test_groups=1, size=32, num_frames=8, kinds=("move_left", "move_right"))
    return root


def _cfg(steps, lr=3e-3, batch_size=6):
    return TrainConfig(max_steps=steps, batch_size=batch_size, lr=lr, warmup_steps=1, eval_every=steps, eval_batches=1,
                       log_every=steps, progress=False)


def test_qa_records_group_questions_by_video(data):
    qa = read_video_qa(data / "qa_train.json")
    recs = qa_records(data / "qa_train.json")
    assert len(recs) == 2 and sum(len(r.captions) for r in recs) == len(qa)
    assert any(c.endswith(" left") for r in recs for c in r.captions)


def test_caption_training_and_prediction(data, tmp_path):
    out = tmp_path / "cap"
    args = VideoCaptionArgs(out=str(out), data=str(data / "captions_train.json"),
                            val_data=str(data / "captions_val.json"), preset="video-captioner-nano", vocab_size=300)
    summary = train_video_captioner(args, _cfg(2))
    assert summary["step"] == 2 and summary["train_videos"] == 2
    model, tok = api.load(out), api.load_tokenizer(out)
    assert model.family == "video_captioner" and model.config.num_frames == 4
    recs = read_msrvtt(data / "captions_test.json")
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video")
    errors = {}
    caps = caption_videos(model, tok, [recs[0].path, bad, recs[1].path], num_beams=2, max_new_tokens=5,
                          errors=errors)
    assert sorted(caps) == [0, 2] and list(errors) == [1] and "bad.mp4" in errors[1]
    assert all(isinstance(c, str) for c in caps.values())
    ev = evaluate_video_captions(model, tok, recs, num_beams=1)
    assert ev["videos"] == 2 and 0 <= ev["cider"]


def test_nano_qa_model_learns_the_training_answers(data, tmp_path):
    torch.manual_seed(0)
    out = tmp_path / "qa"
    args = VideoCaptionArgs(out=str(out), data=str(data / "qa_train.json"), val_data=str(data / "qa_val.json"),
                            qa=True, preset="video-captioner-nano", vocab_size=300, label_smoothing=0.0,
                            cache_frames=True)
    summary = train_video_captioner(args, _cfg(200, lr=5e-3, batch_size=2))  # QA batches count videos
    assert summary["train_pairs"] == 2 and summary["eval"]["qa_accuracy"] >= 0  # items: videos; answer accuracy
    model, tok = api.load(out), api.load_tokenizer(out)
    qa = read_video_qa(data / "qa_train.json")
    ev = evaluate_video_qa(model, tok, qa)
    assert ev["questions"] == len(qa) and ev["accuracy"] >= 0.8, ev
    assert "motion" in ev["per_type"]
    answers = answer_questions(model, tok, [(qa[0]["path"], qa[0]["question"])])
    assert answers[0] == qa[0]["answer"]
