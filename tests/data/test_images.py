"""Image loading, transforms and parity with transformers' CLIPImageProcessor."""

import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from lingvis.data.images import (
    CLIP_MEAN, CLIP_STD, IMAGENET_MEAN, ImageError, ImageTransform, SafeDataset, SkipCounter,
    center_crop, collate_images, load_image, normalize, preprocess_clip, resize_shortest,
    safe_load, to_rgb, to_tensor,
)

# Our preprocess_clip follows the same integer arithmetic and Pillow calls as the reference,
# so the measured max abs difference is 0.0; we assert a 1e-5 tolerance.
CLIP_PARITY_TOL = 1e-5


def drawn_image(w: int, h: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    img = Image.fromarray((rng.random((h, w, 3)) * 255).astype(np.uint8))
    d = ImageDraw.Draw(img)
    d.ellipse((w // 8, h // 8, w // 2, h // 2), fill=(230, 20, 20))
    d.rectangle((w // 2, h // 3, w - 5, h - 5), fill=(20, 40, 220))
    d.line((0, h - 1, w - 1, 0), fill=(255, 255, 0), width=3)
    return img


@pytest.mark.parametrize("w,h", [(300, 400), (640, 480), (224, 224), (100, 50), (257, 999), (150, 150)])
def test_preprocess_clip_matches_transformers(w, h):
    import transformers

    ref_proc = transformers.CLIPImageProcessor(
        size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224})
    img = drawn_image(w, h, seed=w * h)
    ref = ref_proc(images=img, return_tensors="pt")["pixel_values"][0]
    ours = preprocess_clip(img)
    assert ours.shape == ref.shape == (3, 224, 224)
    assert (ours - ref).abs().max().item() <= CLIP_PARITY_TOL


def test_rgb_conversion_of_modes(tmp_path):
    rgba = Image.new("RGBA", (4, 4), (255, 0, 0, 255))
    rgba.putpixel((0, 0), (0, 0, 255, 0))  # fully transparent -> white background
    rgba.save(tmp_path / "a.png")
    out = load_image(tmp_path / "a.png")
    assert out.mode == "RGB" and out.getpixel((0, 0)) == (255, 255, 255)
    assert out.getpixel((1, 1)) == (255, 0, 0)

    Image.new("L", (3, 3), 77).save(tmp_path / "l.png")
    assert load_image(tmp_path / "l.png").getpixel((1, 1)) == (77, 77, 77)

    pal = Image.new("P", (3, 3), 1)
    pal.putpalette([0, 0, 0, 10, 200, 30] + [0] * 762)
    pal.save(tmp_path / "p.png")
    assert load_image(tmp_path / "p.png").getpixel((2, 2)) == (10, 200, 30)

    Image.new("CMYK", (3, 3), (0, 255, 255, 0)).save(tmp_path / "c.tif")  # CMYK red
    r, g, b = load_image(tmp_path / "c.tif").getpixel((0, 0))
    assert r > 200 and g < 50 and b < 50

    grey16 = Image.fromarray(np.full((2, 2), 65535, dtype=np.uint16))
    assert to_rgb(grey16).getpixel((0, 0)) == (255, 255, 255)


def test_exif_orientation_applied(tmp_path):
    img = Image.new("RGB", (40, 20), (255, 0, 0))
    img.paste((0, 0, 255), (20, 0, 40, 20))  # left red, right blue
    exif = Image.Exif()
    exif[0x0112] = 6  # display rotated 90 degrees clockwise
    img.save(tmp_path / "o.png", exif=exif)
    out = load_image(tmp_path / "o.png")
    assert out.size == (20, 40)
    assert out.getpixel((10, 5)) == (255, 0, 0)  # the left edge is now on top
    assert out.getpixel((10, 35)) == (0, 0, 255)


def test_load_errors_name_the_file(tmp_path):
    with pytest.raises(ImageError, match="not found.*missing.png"):
        load_image(tmp_path / "missing.png")
    (tmp_path / "junk.jpg").write_bytes(b"this is not an image" * 10)
    with pytest.raises(ImageError, match="junk.jpg"):
        load_image(tmp_path / "junk.jpg")
    drawn_image(64, 64, 0).save(tmp_path / "full.png")
    data = (tmp_path / "full.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match="cut.png"):
        load_image(tmp_path / "cut.png")


def _png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def test_decompression_bomb_guard(tmp_path):
    (tmp_path / "bomb.png").write_bytes(_png_header_only(100_000, 100_000))
    with pytest.raises(ImageError, match=r"bomb.png.*10000000000 pixels"):
        load_image(tmp_path / "bomb.png")
    Image.new("RGB", (100, 50)).save(tmp_path / "small.png")
    with pytest.raises(ImageError, match=r"small.png.*5000 pixels.*max_pixels=4999"):
        load_image(tmp_path / "small.png", max_pixels=4999)
    assert load_image(tmp_path / "small.png", max_pixels=5000).size == (100, 50)


def test_resize_crop_tensor_normalize():
    img = drawn_image(300, 400, 1)
    assert resize_shortest(img, 224).size == (224, 298)  # int(224 * 400 / 300)
    assert resize_shortest(drawn_image(400, 300, 1), 224).size == (298, 224)
    assert resize_shortest(img, 224, max_size=250).size == (187, 250)  # int(250 * 224 / 298)
    small = Image.new("RGB", (4, 4), (255, 255, 255))
    padded = center_crop(small, 8)
    t = to_tensor(padded)  # (3, 8, 8)
    assert t.shape == (3, 8, 8)
    assert t[:, 2:6, 2:6].eq(1).all() and t[:, :2].eq(0).all() and t[:, :, 6:].eq(0).all()
    assert center_crop(drawn_image(11, 9, 2), (5, 7)).size == (7, 5)
    x = torch.rand(2, 3, 5, 5)
    y = normalize(x, IMAGENET_MEAN, (0.5, 0.5, 0.5))
    assert torch.allclose(y[:, 1], (x[:, 1] - IMAGENET_MEAN[1]) / 0.5)
    with pytest.raises(ValueError, match="channels"):
        normalize(torch.rand(1, 5, 5), CLIP_MEAN, CLIP_STD)


def test_image_transform_eval_equals_preprocess_clip():
    img = drawn_image(320, 240, 3)
    assert torch.equal(ImageTransform(size=224)(img), preprocess_clip(img))


def test_image_transform_train_is_seeded_and_random():
    img = drawn_image(120, 90, 4)
    a = [ImageTransform(size=32, train=True, seed=7)(img) for _ in range(2)]
    assert a[0].shape == (3, 32, 32) and torch.equal(a[0], a[1])
    t = ImageTransform(size=32, train=True, seed=7)
    first, second = t(img), t(img)
    assert not torch.equal(first, second)  # the generator advances between calls
    assert not torch.equal(ImageTransform(size=32, train=True, seed=8)(img), first)


def test_image_transform_train_full_box_and_flip():
    img = drawn_image(50, 50, 5)
    t = ImageTransform(size=20, train=True, scale=(1.0, 1.0), ratio=(1.0, 1.0), hflip=1.0,
                       mean=(0, 0, 0), std=(1, 1, 1))
    expected = to_tensor(img.resize((20, 20), Image.Resampling.BICUBIC)).flip(-1)
    assert torch.allclose(t(img), expected)
    with pytest.raises(ValueError, match="scale"):
        ImageTransform(train=True, scale=(0.5, 0.1))


def test_collate_images():
    batch = collate_images([torch.zeros(3, 4, 4), None, torch.ones(3, 4, 4)])
    assert batch.shape == (2, 3, 4, 4)
    d = collate_images([{"image": torch.zeros(3, 2, 2), "text": "a", "label": 1},
                        {"image": torch.ones(3, 2, 2), "text": "b", "label": 0}])
    assert d["image"].shape == (2, 3, 2, 2) and d["text"] == ["a", "b"]
    assert d["label"].tolist() == [1, 0]
    with pytest.raises(ValueError, match="'image' sample 1 has shape"):
        collate_images([{"image": torch.zeros(3, 2, 2)}, {"image": torch.zeros(3, 3, 2)}])


class _PathDataset(torch.utils.data.Dataset):
    def __init__(self, paths):
        self.paths = paths

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        return to_tensor(load_image(self.paths[i]))


def test_safe_dataset_skips_and_counts(tmp_path):
    good = tmp_path / "good.png"
    Image.new("RGB", (2, 2), (0, 255, 0)).save(good)
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"garbage")
    counter = SkipCounter()
    ds = SafeDataset(_PathDataset([bad, good]), counter)
    assert ds[0].shape == (3, 2, 2)  # index 0 fails, index 1 is returned instead
    assert counter.count == 1 and "bad.png" in counter.reasons[0]
    with pytest.raises(RuntimeError, match="2 consecutive samples failed"):
        SafeDataset(_PathDataset([bad, bad]))[0]
    assert safe_load(bad, counter) is None and counter.count == 2
    assert safe_load(good, counter).size == (2, 2)
