"""Video models behind the server (FastAPI TestClient): /v1/videos/classify, /v1/videos/search over a video
folder, video_url content parts in chat (llava sees the frames as images; a video captioner answers), and the
errors for bad or unsupported videos."""
import base64

import pytest
import torch
from fastapi.testclient import TestClient

import lingvis
from lingvis.serve import ServeConfig, create_app, load_models
from lingvis.train.config import TrainConfig

from .conftest import char_tokenizer
from .helpers import assert_error
from .llava_helpers import make_llava_dir

pytest.importorskip("av")


def video_url(path) -> str:
    return "data:video/mp4;base64," + base64.b64encode(path.read_bytes()).decode()


def _cfg(steps=1):
    return TrainConfig(max_steps=steps, batch_size=4, lr=1e-3, warmup_steps=1, eval_every=steps, eval_batches=1,
                       log_every=steps, progress=False)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    from lingvis.recipes.video_caption import VideoCaptionArgs, train_video_captioner
    from lingvis.recipes.video_clip import VideoCLIPArgs, pretrain_video_clip
    from lingvis.video.synthetic import generate_videos

    root = tmp_path_factory.mktemp("video-serve")
    data = root / "data"
    generate_videos(data, n_train=2, n_val=1, n_test_groups=1, size=32, num_frames=8,
                    kinds=("move_left", "move_right"))
    torch.manual_seed(0)
    clf = lingvis.build("video-classifier-nano", labels=["move_left", "move_right"])
    lingvis.save(clf, root / "clf")
    pretrain_video_clip(VideoCLIPArgs(out=str(root / "vclip"), data=str(data / "captions_train.json"),
                                      val_data=str(data / "captions_val.json"), preset="video-clip-nano"), _cfg())
    train_video_captioner(VideoCaptionArgs(out=str(root / "vqa"), data=str(data / "qa_train.json"),
                                           val_data=str(data / "qa_val.json"), qa=True,
                                           preset="video-captioner-nano", vocab_size=300), _cfg())
    make_llava_dir(root, "llava")
    lm = lingvis.build("gpt-nano", vocab_size=char_tokenizer().vocab_size)
    lingvis.save(lm, root / "lm", tokenizer=char_tokenizer())
    (root / "bad.mp4").write_bytes(b"this is not a video")
    return root


@pytest.fixture(scope="module")
def client(runs):
    config = ServeConfig(video_folder=runs / "data" / "test", video_frames=2)
    adapters = load_models([str(runs / n) for n in ("clf", "vclip", "vqa", "llava", "lm")], config)
    with TestClient(create_app(adapters, config)) as c:
        yield c


def test_listing_shows_the_video_kinds(client):
    models = {m["id"]: m for m in client.get("/v1/models").json()["data"]}
    assert models["clf"]["kind"] == "video_classifier" and "video_classify" in models["clf"]["capabilities"]
    assert models["vclip"]["kind"] == "video_clip" and "video_search" in models["vclip"]["capabilities"]
    assert models["vqa"]["kind"] == "video_captioner" and models["llava"]["kind"] == "llava"


def test_classify_matches_local_and_names_bad_videos(client, runs):
    from lingvis.video_predict import classify_videos

    video = next((runs / "data" / "test").rglob("*.mp4"))
    r = client.post("/v1/videos/classify", json={"model": "clf", "video": video_url(video), "top_k": 2})
    assert r.status_code == 200, r.text
    want = classify_videos(lingvis.load(runs / "clf"), [video], top_k=2)[0]
    got = r.json()
    assert got["label"] == want["label"] and abs(got["score"] - want["score"]) < 1e-5 and len(got["data"]) == 2
    bad = client.post("/v1/videos/classify", json={"model": "clf", "video": video_url(runs / "bad.mp4")})
    assert_error(bad, 400, "video", "invalid_video")
    assert_error(client.post("/v1/videos/classify", json={"model": "clf", "video": "data:video/mp4;base64,@@"}),
                 400, "video", "invalid_video")
    assert_error(client.post("/v1/videos/classify", json={"model": "vqa", "video": video_url(video)}), 400)


def test_text_to_video_search_over_the_folder(client, runs):
    from lingvis.video.readers import list_videos

    r = client.post("/v1/videos/search", json={"model": "vclip", "query": "a shape moving left", "top_k": 3})
    assert r.status_code == 200, r.text
    hits = r.json()["data"]
    assert len(hits) == 2 == len(list_videos(runs / "data" / "test"))  # top_k beyond the folder: all of it
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)
    assert all((runs / "data" / "test" / h["file"]).is_file() for h in hits)


def _chat(model, text, url):
    return {"model": model, "max_tokens": 4, "temperature": 0,
            "messages": [{"role": "user", "content": [{"type": "video_url", "video_url": {"url": url}},
                                                      {"type": "text", "text": text}]}]}


def test_llava_chat_sees_video_frames_as_images(client, runs):
    from lingvis.video.clips import frame_images

    video = next((runs / "data" / "test").rglob("*.mp4"))
    r = client.post("/v1/chat/completions", json=_chat("llava", "Which way?", video_url(video)))
    assert r.status_code == 200, r.text
    model, tok = lingvis.load(runs / "llava"), lingvis.load_tokenizer(runs / "llava")
    prompt = tok.apply_chat_template([{"role": "user", "content": "<image>\n<image>\nWhich way?"}],
                                     add_generation_prompt=True)
    want = lingvis.generate(model, tok, prompt, max_new_tokens=4, images=frame_images(video, 2))
    assert r.json()["choices"][0]["message"]["content"] == want
    assert_error(client.post("/v1/chat/completions", json=_chat("llava", "x", "https://example.com/a.mp4")), 400,
                 "messages[0].content[0].video_url", "unsupported_video_url")
    assert_error(client.post("/v1/chat/completions", json=_chat("llava", "x", video_url(runs / "bad.mp4"))), 400,
                 "messages[0].content[0].video_url", "invalid_video")


def test_video_captioner_answers_in_chat_and_text_models_refuse_video(client, runs):
    from lingvis.recipes.video_caption import answer_questions

    video = next((runs / "data" / "test").rglob("*.mp4"))
    q = "which way does it move?"
    r = client.post("/v1/chat/completions", json=_chat("vqa", q, video_url(video)))
    assert r.status_code == 200, r.text
    model, tok = lingvis.load(runs / "vqa"), lingvis.load_tokenizer(runs / "vqa")
    assert r.json()["choices"][0]["message"]["content"] == answer_questions(model, tok, [(video, q)], 4)[0]
    refused = client.post("/v1/chat/completions", json=_chat("lm", "hi", video_url(video)))
    assert_error(refused, 400)
    assert "image or video" in refused.json()["error"]["message"]
