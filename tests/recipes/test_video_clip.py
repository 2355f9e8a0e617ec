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


def test_frame_input_follows_the_clip_and_a_classifier_needs_rgb_frames(tmp_path):
    """The default preset feeds frames + differences (6 channels); a CLIP started from keeps RGB frames, and a
    video classifier cannot start from a 6-channel frame tower."""
    import lingvis
    from lingvis.models import registry
    from lingvis.recipes.clip_data import train_word_tokenizer
    from lingvis.recipes.video_classify import VideoClassifyArgs
    from lingvis.recipes.video_classify import make_model as make_classifier
    from lingvis.recipes.video_clip import make_model

    tok = train_word_tokenizer(["a red circle moving left"])
    lingvis.save(registry.build("clip-nano", eos_token_id=3), tmp_path / "clip")
    from_clip = make_model(VideoCLIPArgs(out="x", data="y", clip=str(tmp_path / "clip"), temporal_heads=4), tok)
    assert from_clip.config.frame_input == "rgb"
    fresh = make_model(VideoCLIPArgs(out="x", data="y"), tok)
    assert fresh.config.frame_input == "rgb+diff" and fresh.clip.vision.config.channels == 6
    lingvis.save(fresh, tmp_path / "vclip")
    with pytest.raises(ValueError, match="takes 6 channels"):
        make_classifier(VideoClassifyArgs(out="x", data="y", model=str(tmp_path / "vclip")), ["a", "b"])
