"""Video CLIP recipe: the hard-negative group size (explicit, automatic from the data, or off)."""
import pytest

from lingvis.recipes.video_clip import VideoCLIPArgs, hard_negative_size
from lingvis.train.config import TrainConfig
from lingvis.video.records import VideoRecord

WITH = [VideoRecord(path="a.mp4", meta={"subject": "red circle"})]
WITHOUT = [VideoRecord(path="a.mp4")]


def _size(records, batch, hard=None, accum=1):
    return hard_negative_size(VideoCLIPArgs(out="x", data="y", hard_negatives=hard), records,
                              TrainConfig(batch_size=batch, grad_accum=accum))


def test_automatic_size_keeps_eight_groups_and_divides_the_batch():
    assert _size(WITH, 64) == 8 and _size(WITH, 32) == 4 and _size(WITH, 16) == 2
    assert _size(WITH, 40) == 5 and _size(WITH, 36) == 4  # at most batch // 8
    assert _size(WITH, 7) == 1  # no size in [2, 8] divides 7: random batches
    assert _size(WITHOUT, 64) == 1  # the data has no group field
    assert _size(WITH, 64, accum=16) == 4  # micro batches of 4 groups


def test_explicit_size_and_bad_value():
    assert _size(WITHOUT, 64, hard=1) == 1 and _size(WITH, 64, hard=3) == 3
    with pytest.raises(ValueError, match="hard_negatives must be >= 1"):
        _size(WITH, 64, hard=0)
