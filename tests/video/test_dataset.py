import pytest
import torch
from torch.utils.data import DataLoader

from lingvis.data.images import SafeDataset, SkipCounter, collate_images
from lingvis.video.dataset import VIDEO_ERRORS, VideoClips, stack_videos
from lingvis.video.records import VideoRecord
from lingvis.video.sampling import SamplingSpec
from lingvis.video.transforms import VideoTransform

pytest.importorskip("av")


def _records(videos, tmp_path):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00" * 100)
    return [VideoRecord(videos[".mp4"], "a", ["one", "uno"]), VideoRecord(bad, "b", ["two"]),
            VideoRecord(videos[".webm"], "b", ["three"]), VideoRecord(videos[".avi"], "a", ["four"])]


def test_items_carry_video_label_and_captions(videos, tmp_path):
    ds = VideoClips(_records(videos, tmp_path), SamplingSpec(num_frames=2), VideoTransform(size=32), labels=["a", "b"])
    item = ds[0]
    assert item["video"].shape == (2, 3, 32, 32) and item["label"] == 0
    assert item["text"] == "one" and item["captions"] == ["one", "uno"] and item["path"].endswith("ramp.mp4")
    multi = VideoClips(ds.records, SamplingSpec(num_frames=2, clips=3), VideoTransform(size=32))
    assert multi[2]["video"].shape == (3, 2, 3, 32, 32) and "label" not in multi[2]
    with pytest.raises(ValueError, match=r"outside the model's classes: \['b'\]"):
        VideoClips(ds.records, SamplingSpec(), VideoTransform(), labels=["a", "c"])


def test_a_broken_video_is_skipped_and_the_batch_stays_full(videos, tmp_path):
    counter = SkipCounter()
    ds = SafeDataset(VideoClips(_records(videos, tmp_path), SamplingSpec(num_frames=2), VideoTransform(size=32),
                                labels=["a", "b"]), counter, errors=VIDEO_ERRORS)
    batch = next(iter(DataLoader(ds, batch_size=4, collate_fn=collate_images)))
    assert batch["video"].shape == (4, 2, 3, 32, 32)
    assert counter.count == 1 and "broken.mp4" in counter.reasons[0]
    assert batch["label"].tolist() == [0, 1, 1, 0]  # the broken video's slot holds the next video


def test_stack_videos_names_the_odd_clip():
    a = {"video": torch.zeros(2, 3, 8, 8), "path": "a.mp4"}
    b = {"video": torch.zeros(3, 3, 8, 8), "path": "b.mp4"}
    assert stack_videos([a, a]).shape == (2, 2, 3, 8, 8)
    with pytest.raises(ValueError, match=r"b.mp4: clip shape \(3, 3, 8, 8\)"):
        stack_videos([a, b])


def test_cached_frames_give_the_same_clips(videos, tmp_path):
    records = _records(videos, tmp_path)[2:]
    spec, tf = SamplingSpec(num_frames=4), VideoTransform(size=32)
    plain = VideoClips(records, spec, tf, train=True, seed=5)
    cached = VideoClips(records, spec, tf, train=True, seed=5, cache_frames=True)
    for _ in range(3):  # the same draws, frames from the cache once decoded
        for i in range(2):
            assert torch.equal(plain[i]["video"], cached[i]["video"])
    info, store = cached._cache[0]
    assert info.num_frames == 100 and 4 <= len(store) <= 12
    with pytest.raises(VIDEO_ERRORS):
        VideoClips(_records(videos, tmp_path)[1:2], spec, tf, cache_frames=True)[0]
