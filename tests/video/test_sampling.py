import random

import pytest

from lingvis.video.errors import VideoTooShort
from lingvis.video.sampling import SamplingSpec, sample_indices


def test_segments_eval_takes_segment_centres():
    assert sample_indices(SamplingSpec(num_frames=4), 40, 10.0) == [[5, 15, 25, 35]]


def test_segments_train_draws_one_frame_inside_each_segment():
    rng = random.Random(0)
    seen = set()
    for _ in range(200):
        (clip,) = sample_indices(SamplingSpec(num_frames=4), 40, 10.0, train=True, rng=rng)
        assert [i // 10 for i in clip] == [0, 1, 2, 3]
        seen.update(clip)
    assert len(seen) > 30  # offsets really vary


def test_segments_several_clips_spread_inside_segments():
    clips = sample_indices(SamplingSpec(num_frames=2, clips=4), 40, 10.0)
    assert clips == [[2, 22], [7, 27], [12, 32], [17, 37]]


def test_stride_at_a_given_fps_centred_and_spread():
    spec = SamplingSpec(num_frames=4, mode="stride", fps=5.0)  # every 6th frame of a 30 fps video
    assert spec.span(30.0) == 19
    (clip,) = sample_indices(spec, 100, 30.0)
    assert [b - a for a, b in zip(clip, clip[1:])] == [6, 6, 6] and clip[0] == 41  # (100 - 19) / 2, half up
    clips = sample_indices(SamplingSpec(num_frames=4, mode="stride", fps=5.0, clips=3), 100, 30.0)
    assert [c[0] for c in clips] == [0, 41, 81] and clips[-1][-1] == 99


def test_stride_train_start_is_random_and_inside():
    rng = random.Random(1)
    starts = set()
    for _ in range(100):
        (clip,) = sample_indices(SamplingSpec(num_frames=8, mode="stride"), 20, 25.0, train=True, rng=rng)
        assert clip == list(range(clip[0], clip[0] + 8)) and clip[-1] < 20
        starts.add(clip[0])
    assert starts == set(range(13))


def test_short_videos_raise_naming_the_file_or_repeat():
    with pytest.raises(VideoTooShort, match="clip.mp4: 5 frames"):
        sample_indices(SamplingSpec(num_frames=8), 5, 10.0, name="clip.mp4")
    assert sample_indices(SamplingSpec(num_frames=8, short="repeat"), 5, 10.0) == [[0, 0, 1, 2, 2, 3, 4, 4]]
    spec = SamplingSpec(num_frames=4, mode="stride", fps=2.0)
    with pytest.raises(VideoTooShort, match=r"a.webm: 10 frames .* spans 16"):
        sample_indices(spec, 10, 10.0, name="a.webm")
    pad = SamplingSpec(num_frames=4, mode="stride", fps=2.0, short="repeat")
    assert sample_indices(pad, 10, 10.0) == [[0, 5, 9, 9]]
    with pytest.raises(VideoTooShort, match="no frames"):
        sample_indices(SamplingSpec(), 0, 10.0)


@pytest.mark.parametrize("kw, msg", [({"num_frames": 0}, "num_frames"), ({"mode": "dense"}, "mode"),
                                     ({"fps": 4.0}, "stride"), ({"mode": "stride", "fps": 0}, "fps"),
                                     ({"clips": 0}, "clips"), ({"short": "loop"}, "short")])
def test_bad_specs(kw, msg):
    with pytest.raises(ValueError, match=msg):
        SamplingSpec(**kw)
