import numpy as np
import pytest
import torch
from PIL import Image

from lingvis.data.images import IMAGENET_MEAN, IMAGENET_STD, ImageTransform
from lingvis.video.transforms import VideoTransform, video_transform


def _frames(n=3, h=40, w=60):
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(n)]


def test_eval_matches_the_image_transform_frame_by_frame():
    frames = _frames()
    vt = VideoTransform(size=36, crop=32, mean=IMAGENET_MEAN, std=IMAGENET_STD)
    it = ImageTransform(size=36, crop=32, mean=IMAGENET_MEAN, std=IMAGENET_STD)
    out = vt(frames)
    assert out.shape == (3, 3, 32, 32) and out.dtype == torch.float32
    for k, f in enumerate(frames):
        assert torch.equal(out[k], it(Image.fromarray(f)))
    same = VideoTransform(size=40, crop=40)(_frames(h=40, w=40))  # already the model's size: no resampling
    assert torch.equal(same[1], ImageTransform(size=40)(Image.fromarray(_frames(h=40, w=40)[1])))


def test_train_uses_one_crop_and_one_flip_for_the_whole_clip():
    f = _frames(1)[0]
    clip = [f, f.copy(), Image.fromarray(f)]
    t = VideoTransform(size=32, train=True, seed=3, hflip=0.5)
    outs = [t(clip) for _ in range(6)]
    for o in outs:
        assert torch.equal(o[0], o[1]) and torch.equal(o[0], o[2])
    assert not all(torch.equal(outs[0], o) for o in outs[1:])  # boxes differ between calls
    flipped = VideoTransform(size=32, train=True, seed=3, hflip=1.0, scale=(1.0, 1.0), ratio=(1.5, 1.5))(clip)
    plain = VideoTransform(size=32, train=True, seed=3, hflip=0.0, scale=(1.0, 1.0), ratio=(1.5, 1.5))(clip)
    assert torch.allclose(flipped, plain.flip(-1))


def test_video_transform_from_a_tower_config_and_errors():
    from lingvis.models.vit import ViTConfig

    t = video_transform(ViTConfig(image_size=32, patch_size=8, image_mean=[0.5] * 3, image_std=[0.5] * 3,
                                  resize_size=40))
    assert (t.size, t.crop, tuple(t.mean)) == (40, 32, (0.5, 0.5, 0.5))
    out = t([np.zeros((50, 50, 3), np.uint8)])
    assert torch.allclose(out, torch.full_like(out, -1.0))
    with pytest.raises(ValueError, match="no frames"):
        t([])
    with pytest.raises(ValueError, match="hflip"):
        VideoTransform(hflip=2.0)
