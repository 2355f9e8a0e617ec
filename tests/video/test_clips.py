import random

import pytest
import torch

from lingvis.video.clips import load_clips, load_video, sample_frames
from lingvis.video.decode import open_video
from lingvis.video.errors import VideoTooShort
from lingvis.video.sampling import SamplingSpec
from lingvis.video.transforms import VideoTransform

pytest.importorskip("av")
RAW = VideoTransform(size=32, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))  # [0, 1] values, no resize


def _frames_at(path, indices: list[int]) -> torch.Tensor:
    """The frames at `indices` from plain sequential decoding (the reference for sparse reads)."""
    with open_video(path) as v:
        every = list(v.iter_frames())
    return RAW([every[i] for i in indices])


def test_one_clip_is_t_c_h_w_at_segment_centres(videos):
    x = load_video(videos[".mp4"], SamplingSpec(num_frames=4), RAW)
    assert x.shape == (4, 3, 32, 32) and x.dtype == torch.float32
    assert torch.equal(x, _frames_at(videos[".mp4"], [12, 37, 62, 87]))


def test_several_clips_and_stride_sampling(videos):
    x = load_clips(videos[".webm"], SamplingSpec(num_frames=3, mode="stride", fps=2.0, clips=3), RAW)
    assert x.shape == (3, 3, 3, 32, 32)
    for clip, indices in zip(x, [[0, 5, 10], [45, 50, 55], [89, 94, 99]]):
        assert torch.equal(clip, _frames_at(videos[".webm"], indices))
    with pytest.raises(ValueError, match="load_clips"):
        load_video(videos[".mp4"], SamplingSpec(clips=2), RAW)


def test_training_draws_differ_and_are_reproducible(videos):
    spec = SamplingSpec(num_frames=4)
    a = [sample_frames(videos[".mp4"], spec, train=True, rng=random.Random(7))[1] for _ in range(2)]
    assert all((x == y).all() for x, y in zip(a[0][0], a[1][0]))
    draws = {tuple(load_video(videos[".mp4"], spec, RAW, train=True).mean((1, 2, 3)).tolist()) for _ in range(5)}
    assert len(draws) > 1


def test_normalised_like_the_image_transforms(videos):
    x = load_video(videos[".mp4"], SamplingSpec(num_frames=2))  # default: 224px, CLIP mean/std
    assert x.shape == (2, 3, 224, 224)
    level = 2 * 25 / 255  # frame 25 (centre of the first of two segments)
    assert abs(float(x[0, 0].mean()) - (level - 0.48145466) / 0.26862954) < 0.05


def test_too_short_names_the_file_or_pads(videos):
    spec = SamplingSpec(num_frames=8, mode="stride", fps=0.5)
    with pytest.raises(VideoTooShort, match=r"ramp.mkv: 100 frames"):
        load_video(videos[".mkv"], spec, RAW)
    x = load_video(videos[".mkv"], SamplingSpec(num_frames=8, mode="stride", fps=0.5, short="repeat"), RAW)
    assert torch.equal(x, _frames_at(videos[".mkv"], [0, 20, 40, 60, 80, 99, 99, 99]))
