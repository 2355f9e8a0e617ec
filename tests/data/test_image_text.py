"""Image-text readers: COCO, JSONL, CSV/TSV, webdataset tar shards, class folders."""

import io
import json
import tarfile

import pytest
import torch
from PIL import Image

from lingvis.data.image_text import (
    ImageTextFormatError, detect_format, expand_braces, expand_shards, open_image_text,
)
from lingvis.data.image_text_wds import split_member_name
from lingvis.data.images import ImageTransform, collate_images, to_tensor

RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)


def _png(path, colour, size=(8, 6)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)
    return path


def _coco(tmp_path, images_subdir=True, annotations=None):
    folder = tmp_path / "images" if images_subdir else tmp_path
    _png(folder / "a.png", RED)
    _png(folder / "b.png", BLUE)
    data = {"images": [{"id": 1, "file_name": "a.png"}, {"id": 2, "file_name": "b.png"}],
            "annotations": annotations if annotations is not None else [
                {"id": 10, "image_id": 1, "caption": "a red image "},
                {"id": 11, "image_id": 2, "caption": "a blue image"},
                {"id": 12, "image_id": 1, "caption": "red again"}]}
    path = tmp_path / "captions.json"
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize("images_subdir", [True, False])
def test_coco_reader(tmp_path, images_subdir):
    path = _coco(tmp_path, images_subdir)
    assert detect_format(path) == "coco"
    ds = open_image_text(path)
    assert len(ds) == 3 and ds.texts == ["a red image", "a blue image", "red again"]
    item = ds[1]
    assert item["image"].getpixel((0, 0)) == BLUE and item["image_id"] == 2
    assert item["image_path"].endswith("b.png")


def test_coco_explicit_root_and_transform(tmp_path):
    _coco(tmp_path / "ann", images_subdir=False)
    moved = tmp_path / "elsewhere"
    (tmp_path / "ann").rename(moved)
    ds = open_image_text(moved / "captions.json", transform=to_tensor, image_root=moved)
    assert ds[0]["image"].shape == (3, 6, 8)
    assert torch.allclose(ds[0]["image"][:, 0, 0], torch.tensor([1.0, 0.0, 0.0]))


def test_coco_malformed(tmp_path):
    bad = _coco(tmp_path, annotations=[{"id": 10, "image_id": 1, "caption": "ok"},
                                       {"id": 77, "image_id": 1}])
    with pytest.raises(ImageTextFormatError, match=r"captions.json: annotation 77 \(annotations\[1\]\)"):
        open_image_text(bad)
    bad = _coco(tmp_path, annotations=[{"id": 5, "image_id": 9, "caption": "x"}])
    with pytest.raises(ImageTextFormatError, match="annotation 5.*image_id 9"):
        open_image_text(bad)
    (tmp_path / "broken.json").write_text('{"images": [\n  {"id": 1,,}]}')
    with pytest.raises(ImageTextFormatError, match=r"broken.json:2:"):
        open_image_text(tmp_path / "broken.json")
    (tmp_path / "nokeys.json").write_text('{"images": []}')
    with pytest.raises(ImageTextFormatError, match="nokeys.json.*'annotations'"):
        open_image_text(tmp_path / "nokeys.json")


def test_jsonl_reader(tmp_path):
    _png(tmp_path / "img" / "g.png", GREEN)
    _png(tmp_path / "img" / "r.png", RED)
    path = tmp_path / "pairs.jsonl"
    path.write_text('{"image": "img/g.png", "text": "green"}\n\n{"image": "img/r.png", "text": "red"}\n')
    assert detect_format(path) == "jsonl"
    ds = open_image_text(path)
    assert ds.texts == ["green", "red"] and ds[1]["image"].getpixel((1, 1)) == RED
    path.write_text('{"image": "img/g.png", "text": "green"}\n{"image": "img/r.png", "text": \n')
    with pytest.raises(ImageTextFormatError, match=r"pairs.jsonl:2: invalid JSON"):
        open_image_text(path)
    path.write_text('{"image": "img/g.png", "text": "g"}\n{"image": "img/g.png", "caption": "g"}\n')
    with pytest.raises(ImageTextFormatError, match=r"pairs.jsonl:2: field 'text'"):
        open_image_text(path)
    path.write_text('{"img": "img/g.png", "caption": "g"}\n')
    assert open_image_text(path, image_key="img", text_key="caption").texts == ["g"]


@pytest.mark.parametrize("sep,suffix", [(",", ".csv"), ("\t", ".tsv")])
def test_csv_tsv_reader(tmp_path, sep, suffix):
    _png(tmp_path / "x.png", BLUE)
    path = tmp_path / f"train{suffix}"
    first = '"a blue, square"' if sep == "," else "a blue square"  # quoted field holding the separator
    path.write_text(f"title{sep}filepath\n{first}{sep}x.png\nblue again{sep}x.png\n")
    assert detect_format(path) == suffix[1:]
    ds = open_image_text(path)
    assert len(ds) == 2 and ds[0]["image"].getpixel((0, 0)) == BLUE
    assert ds.texts == [first.strip('"'), "blue again"]


def test_csv_custom_columns_and_errors(tmp_path):
    _png(tmp_path / "x.png", BLUE)
    path = tmp_path / "meta.csv"
    path.write_text("path,caption\nx.png,hello\n")
    assert open_image_text(path, img_key="path", caption_key="caption").texts == ["hello"]
    with pytest.raises(ImageTextFormatError, match=r"meta.csv: missing column\(s\) \['filepath', 'title'\]"):
        open_image_text(path)
    path.write_text("filepath,title\nx.png,ok\nx.png,too,many\n")
    with pytest.raises(ImageTextFormatError, match=r"meta.csv:3: more fields"):
        open_image_text(path)
    path.write_text("filepath,title\nx.png,ok\n,empty path\n")
    with pytest.raises(ImageTextFormatError, match=r"meta.csv:3: empty"):
        open_image_text(path)


def _image_bytes(colour, fmt="PNG"):
    buf = io.BytesIO()
    Image.new("RGB", (5, 4), colour).save(buf, format=fmt)
    return buf.getvalue()


def _shard(path, members):
    with tarfile.open(path, "w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def _shards(tmp_path):
    _shard(tmp_path / "shard-000.tar", [("s0.png", _image_bytes(RED)), ("s0.txt", b"red one"),
                                        ("s1.txt", "gr\u00fcn".encode()), ("s1.png", _image_bytes(GREEN))])
    _shard(tmp_path / "shard-001.tar", [("sub/s2.jpg", _image_bytes(BLUE, "JPEG")),
                                        ("sub/s2.txt", b"blue"), ("sub/s2.json", b"{}")])


def test_webdataset_reader(tmp_path):
    _shards(tmp_path)
    for spec in (str(tmp_path / "shard-{000..001}.tar"), str(tmp_path / "shard-*.tar"),
                 [tmp_path / "shard-000.tar", tmp_path / "shard-001.tar"]):
        assert detect_format(spec) == "webdataset"
        ds = open_image_text(spec)
        assert ds.texts == ["red one", "gr\u00fcn", "blue"]
        assert [item["key"] for item in ds] == ["shard-000.tar/s0", "shard-000.tar/s1", "shard-001.tar/sub/s2"]
    assert ds[1]["image"].getpixel((2, 2)) == GREEN
    r, g, b = ds[2]["image"].getpixel((2, 2))
    assert b > 200 and r < 40 and g < 40  # JPEG is lossy
    batch = collate_images([open_image_text(tmp_path / "shard-000.tar", transform=ImageTransform(size=4))[i]
                            for i in range(2)])
    assert batch["image"].shape == (2, 3, 4, 4) and batch["text"] == ["red one", "gr\u00fcn"]


def test_webdataset_malformed(tmp_path):
    _shard(tmp_path / "bad.tar", [("k1.png", _image_bytes(RED)), ("k1.txt", b"ok"), ("k2.png", _image_bytes(RED))])
    with pytest.raises(ImageTextFormatError, match=r"bad.tar: sample 'k2' \(members k2.png\) has no .txt"):
        open_image_text(tmp_path / "bad.tar")
    ds = open_image_text(tmp_path / "bad.tar", on_incomplete="skip")
    assert len(ds) == 1 and ds.info["skipped"] == 1
    (tmp_path / "junk.tar").write_bytes(b"x" * 100)
    with pytest.raises(ImageTextFormatError, match="junk.tar"):
        open_image_text(tmp_path / "junk.tar")
    _shard(tmp_path / "badimg.tar", [("k.png", b"not a png"), ("k.txt", b"t")])
    with pytest.raises(ValueError, match=r"badimg.tar:k.png"):
        open_image_text(tmp_path / "badimg.tar")[0]
    with pytest.raises(FileNotFoundError, match="no webdataset shards match"):
        expand_shards(str(tmp_path / "none-*.tar"))


def test_brace_expansion():
    assert expand_braces("d/s-{008..010}.tar") == ["d/s-008.tar", "d/s-009.tar", "d/s-010.tar"]
    assert expand_braces("{a,b}-{1..2}.tar") == ["a-1.tar", "a-2.tar", "b-1.tar", "b-2.tar"]
    assert split_member_name("dir/000123.seg.JPG") == ("dir/000123", "seg.jpg")


def test_folder_reader(tmp_path):
    _png(tmp_path / "cls" / "red_circle" / "1.png", RED)
    _png(tmp_path / "cls" / "red_circle" / "2.png", RED)
    _png(tmp_path / "cls" / "blue_square" / "x.png", BLUE)
    (tmp_path / "cls" / "blue_square" / "notes.txt").write_text("ignored")
    assert detect_format(tmp_path / "cls") == "folder"
    ds = open_image_text(tmp_path / "cls", text_template="a photo of a {}")
    assert ds.classes == ["blue_square", "red_circle"]
    assert len(ds) == 3 and [ds[i]["label"] for i in range(3)] == [0, 1, 1]
    assert ds[0]["text"] == "a photo of a blue square" and ds[2]["image"].getpixel((0, 0)) == RED
    (tmp_path / "empty").mkdir()
    with pytest.raises(ImageTextFormatError, match="empty.*one subfolder per class"):
        open_image_text(tmp_path / "empty")


def test_detect_format_errors(tmp_path):
    (tmp_path / "x.parquet").write_text("")
    with pytest.raises(ValueError, match=r"x.parquet.*'.parquet'"):
        detect_format(tmp_path / "x.parquet")
    with pytest.raises(FileNotFoundError, match="missing.jsonl"):
        detect_format(tmp_path / "missing.jsonl")
    with pytest.raises(ValueError, match="only supported for webdataset"):
        detect_format(str(tmp_path / "*.csv"))
