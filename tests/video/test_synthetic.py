import json

import numpy as np
import pytest

from lingvis.video.decode import probe, read_frames
from lingvis.video.motion import KINDS, motion_groups
from lingvis.video.readers import read_msrvtt, read_video_csv, read_video_folder, read_video_qa
from lingvis.video.synthetic import generate_videos

pytest.importorskip("av")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return generate_videos(tmp_path_factory.mktemp("motion"), n_train=2, n_val=1, n_test_groups=2, size=32)


def test_layout_csv_folders_and_captions(data):
    root = data["root"]
    records, classes = read_video_csv(data["csv_train"])
    assert classes == sorted(KINDS) and len(records) == 24
    folder_records, folder_classes = read_video_folder(root / "train")
    assert folder_classes == classes and sorted(r.path for r in folder_records) == sorted(r.path for r in records)
    caps = read_msrvtt(data["captions_test"])
    assert len(caps) == 24 and all(len(r.captions) == 3 for r in caps)
    assert caps[0].label == "move_left" and caps[0].meta["group"] == 0 and caps[12].meta["group"] == 1
    assert caps[0].path == root / "test" / "move_left" / "test_00000.mp4" and caps[0].path.is_file()
    qa = read_video_qa(data["qa_val"])
    assert len(qa) == 48 and qa[0]["path"].is_file() and qa[0]["answer"] == "left"
    assert (root / "classes.txt").read_text().split() == list(KINDS)
    info = json.loads(data["captions_train"].read_text())["info"]
    assert (info["fps"], info["frames"], info["size"]) == (8.0, 16, 32)


def test_videos_decode_to_the_rendered_frames(data):
    path = data["root"] / "test" / "rotate_cw" / "test_00008.mp4"
    info = probe(path)
    assert (info.num_frames, info.fps, info.width) == (16, 8.0, 32)
    clip = motion_groups(2, "0/test")[8]  # the same seeded clip the generator wrote
    assert clip.kind == "rotate_cw"
    decoded = read_frames(path, list(range(16)))
    rendered = [np.asarray(f) for f in clip.frames(32)]
    err = np.mean([np.abs(d.astype(int) - r.astype(int)).mean() for d, r in zip(decoded, rendered)])
    assert err < 4  # near-lossless encoding (mean absolute error in grey levels)


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="even"):
        generate_videos(tmp_path, size=33)
    with pytest.raises(ValueError, match="unknown motion kinds"):
        generate_videos(tmp_path, kinds=("fly",))
