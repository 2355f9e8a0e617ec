import json

import pytest

from lingvis.video.readers import (VideoFormatError, list_videos, read_captioned_videos, read_labelled_videos,
                                   read_msrvtt, read_video_csv, read_video_qa, read_webvid)


def _touch(p):
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(b"")
    return p


def _frame_folder(p):
    from PIL import Image

    p.mkdir(parents=True)
    for i in range(3):
        Image.new("RGB", (4, 4)).save(p / f"{i}.png")
    return p


def test_class_folders_with_files_and_frame_folders(tmp_path):
    _touch(tmp_path / "left" / "a.mp4")
    _touch(tmp_path / "left" / "notes.txt")
    _frame_folder(tmp_path / "right" / "clip1")
    _touch(tmp_path / "right" / "b.webm")
    records, classes = read_labelled_videos(tmp_path)
    assert classes == ["left", "right"]
    assert [(r.path.name, r.label) for r in records] == [("a.mp4", "left"), ("b.webm", "right"), ("clip1", "right")]
    assert [p.name for p in list_videos(tmp_path)] == ["a.mp4", "b.webm", "clip1"]
    assert list_videos(tmp_path / "right" / "clip1") == [tmp_path / "right" / "clip1"]
    with pytest.raises(ValueError, match="no videos"):
        list_videos(_touch(tmp_path / "e" / "x.txt").parent)


def test_path_label_csv(tmp_path):
    (tmp_path / "d.csv").write_text("path,label\nclips/a.mp4,up\n/abs/b.mp4,down\n\n")
    records, classes = read_video_csv(tmp_path / "d.csv")
    assert classes == ["down", "up"]
    assert [str(r.path) for r in records] == [str(tmp_path / "clips" / "a.mp4"), "/abs/b.mp4"]
    (tmp_path / "n.csv").write_text("a.mp4,up\nb.mp4\n")
    with pytest.raises(VideoFormatError, match=r"n.csv:2: expected 'path,label'"):
        read_video_csv(tmp_path / "n.csv")
    records, _ = read_labelled_videos(tmp_path / "d.csv", video_root="/data")
    assert str(records[0].path) == "/data/clips/a.mp4"


def test_msrvtt_json(tmp_path):
    _touch(tmp_path / "videos" / "video1.webm")
    data = {"videos": [{"video_id": "video0", "path": "clips/v0.mp4", "split": "train"}, {"video_id": "video1"},
                       {"video_id": "video2"}],
            "sentences": [{"video_id": "video0", "caption": " a cat jumps ", "sen_id": 0},
                          {"video_id": "video1", "caption": "a dog runs"},
                          {"video_id": "video0", "caption": "a cat leaps"}]}
    (tmp_path / "c.json").write_text(json.dumps(data))
    records = read_captioned_videos(tmp_path / "c.json")
    assert [r.video_id for r in records] == ["video0", "video1"]  # video2 has no caption
    assert records[0].captions == ["a cat jumps", "a cat leaps"] and records[0].meta == {"split": "train"}
    assert records[0].path == tmp_path / "clips" / "v0.mp4"
    assert records[1].path == tmp_path / "videos" / "video1.webm"  # found by id + extension in videos/
    data["sentences"].append({"video_id": "nope", "caption": "x"})
    (tmp_path / "bad.json").write_text(json.dumps(data))
    with pytest.raises(VideoFormatError, match=r"bad.json: sentences\[3\] refers to video_id 'nope'"):
        read_msrvtt(tmp_path / "bad.json")
    (tmp_path / "worse.json").write_text("{")
    with pytest.raises(VideoFormatError, match="worse.json:1"):
        read_msrvtt(tmp_path / "worse.json")


def test_webvid_csv(tmp_path):
    _touch(tmp_path / "000001_000050" / "1066692580.mp4")
    (tmp_path / "w.csv").write_text("videoid,contentUrl,duration,page_dir,name\n"
                                    "1066692580,http://x,PT00H00M27S,000001_000050,Aerial shot of a forest\n"
                                    "7,http://y,PT00H00M10S,,\"A cat, sleeping\"\n"
                                    "7,http://y,PT00H00M10S,,a sleeping cat\n")
    records = read_webvid(tmp_path / "w.csv")
    assert [r.video_id for r in records] == ["1066692580", "7"]
    assert records[0].path == tmp_path / "000001_000050" / "1066692580.mp4"
    assert records[1].path == tmp_path / "7.mp4" and records[1].captions == ["A cat, sleeping", "a sleeping cat"]
    assert records[0].meta["duration"] == "PT00H00M27S"
    (tmp_path / "x.csv").write_text("id,caption\n1,a\n")
    with pytest.raises(VideoFormatError, match="needs columns 'videoid' and 'name'"):
        read_captioned_videos(tmp_path / "x.csv")


def test_video_qa_json(tmp_path):
    (tmp_path / "qa.json").write_text(json.dumps([
        {"video_id": "v1", "question": "which way?", "answer": "left", "path": "a/v1.mp4"},
        {"video_id": 7, "question": "what colour?", "answer": "red", "id": 9}]))
    qa = read_video_qa(tmp_path / "qa.json")
    assert qa[0]["path"] == tmp_path / "a" / "v1.mp4" and qa[0]["id"] == 0
    assert qa[1]["video_id"] == "7" and qa[1]["id"] == 9 and qa[1]["path"] == tmp_path / "7.mp4"
    (tmp_path / "bad.json").write_text(json.dumps([{"video_id": 1, "question": "q"}]))
    with pytest.raises(VideoFormatError, match="item 0 needs"):
        read_video_qa(tmp_path / "bad.json")
