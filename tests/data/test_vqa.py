"""VQA readers, answer vocabulary / soft targets, image preprocessing and padding."""
import json

import pytest
import torch
from PIL import Image

from lingvis.data.shapes import generate_shapes
from lingvis.data.vqa import VQADataError, annotations_of, read_vqa, read_vqa_json, read_vqa_jsonl
from lingvis.data.vqa_answers import AnswerVocab
from lingvis.data.vqa_dataset import FusionImageTransform, VQADataset, pad_images


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    root = tmp_path_factory.mktemp("shapes")
    generate_shapes(root, n_train=6, n_val=3, n_test=3, image_size=32, seed=0)
    return root


def image(path, size=(20, 10)):
    Image.new("RGB", size, (200, 10, 10)).save(path)
    return path


def test_shapes_folder_reads_every_split(shapes):
    train = read_vqa(shapes, "train")
    anns = json.loads((shapes / "annotations_train.json").read_text())["annotations"]
    assert len(train) == len(anns)
    first = train[0]
    assert first.image.is_file() and first.image.name.startswith("train_")
    assert len(first.answers) == 10 and first.question_type in {"colour", "shape", "count", "position", "yes/no"}
    assert {e.question_type for e in read_vqa(shapes, "test_unseen")} <= {"colour", "shape", "count", "position",
                                                                           "yes/no"}
    assert annotations_of(train)[0]["answers"][0] == {"answer": first.answers[0]}


def test_vqav2_json_with_coco_names_and_templates(tmp_path):
    img_dir = tmp_path / "val2014"
    img_dir.mkdir()
    image(img_dir / "COCO_val2014_000000000042.jpg")
    qs = {"questions": [{"question_id": 420, "image_id": 42, "question": "what colour?"}]}
    anns = {"annotations": [{"question_id": 420, "image_id": 42, "question_type": "what color",
                             "answer_type": "other", "answers": [{"answer": "red"}] * 10}]}
    (tmp_path / "q.json").write_text(json.dumps(qs))
    (tmp_path / "a.json").write_text(json.dumps(anns))
    ex = read_vqa_json(tmp_path / "q.json", tmp_path / "a.json", img_dir)
    assert ex[0].image.name == "COCO_val2014_000000000042.jpg" and ex[0].answers == ["red"] * 10
    ex = read_vqa_json(tmp_path / "q.json", None, img_dir, image_index="COCO_val2014_{image_id:012d}.jpg")
    assert ex[0].answers == [] and ex[0].image.is_file()


def test_missing_image_names_file_and_question(tmp_path):
    qs = {"questions": [{"question_id": 7, "image_id": 3, "question": "is it red?"}]}
    (tmp_path / "q.json").write_text(json.dumps(qs))
    with pytest.raises(VQADataError, match=r"q\.json: question 7 refers to missing image"):
        read_vqa_json(tmp_path / "q.json", None, tmp_path)


def test_jsonl_bad_records_and_skip_bad(tmp_path):
    image(tmp_path / "a.png")
    lines = [{"image": "a.png", "question": "what colour?", "answers": ["red", "red"]},
             {"image": "a.png", "question": "  ", "answer": "red", "question_id": "q-empty"},
             {"image": "nope.png", "question": "where?", "answers": "left"}]
    path = tmp_path / "vqa.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in lines))
    with pytest.raises(VQADataError) as err:
        read_vqa_jsonl(path)
    msg = str(err.value)
    assert "2 bad question(s)" in msg and "vqa.jsonl:2: question 'q-empty' is empty" in msg
    assert "vqa.jsonl:3: question 3 refers to missing image" in msg and "nope.png" in msg
    with pytest.warns(UserWarning, match="skipped 2 bad question"):
        kept = read_vqa_jsonl(path, skip_bad=True)
    assert [e.question_id for e in kept] == [1] and kept[0].answers == ["red", "red"]
    (tmp_path / "broken.jsonl").write_text('{"image": "a.png", "question": "x"}\n{oops\n')
    with pytest.raises(VQADataError, match=r"broken\.jsonl:2: invalid JSON"):
        read_vqa_jsonl(tmp_path / "broken.jsonl")


def test_soft_targets_follow_the_official_metric():
    vocab = AnswerVocab(["yes", "no", "2"])
    t = vocab.soft_target(["yes"] * 3 + ["no"] + ["2"] * 6)
    assert torch.allclose(t, torch.tensor([0.9, 0.3, 1.0]))
    # as in the official script only predictions get digit/article normalisation: gold "two" never scores
    assert vocab.soft_target(["two"] * 10).sum() == 0
    assert vocab.soft_target(["maybe"] * 10).sum() == 0


def test_vocab_build_and_coverage_report():
    lists = [["yes"] * 10, ["Yes"] * 9 + ["no"], ["no"] * 10, ["blue"] * 10]
    vocab = AnswerVocab.build(lists, min_count=2)
    assert vocab.answers == ["yes"]  # "no" and "blue" are majority answers only once
    cov = vocab.coverage(lists)
    assert (cov.questions, cov.out_of_vocab) == (4, 2)
    assert "2 of 4 training questions (50.0%)" in cov.message() and "'blue' x1" in cov.message()
    with pytest.raises(ValueError, match="no answer occurs at least 5"):
        AnswerVocab.build(lists, min_count=5)


def test_transform_follows_vilt_resizing():
    tf = FusionImageTransform(size=384, stride=32)
    assert tf.target_size(640, 480) == (512, 384)  # short side 384, floored to multiples of 32
    assert tf.target_size(3000, 500) == (608, 96)  # long side capped at int(1333/800 * 384) = 639 first
    assert FusionImageTransform(64, 8)(Image.new("RGB", (64, 64))).shape == (3, 64, 64)


def test_transform_and_padding_match_the_vilt_image_processor():
    transformers = pytest.importorskip("transformers")
    from transformers.models.vilt.image_processing_pil_vilt import ViltImageProcessorPil

    g = torch.Generator().manual_seed(0)
    imgs = [Image.fromarray((torch.rand(h, w, 3, generator=g) * 255).byte().numpy()) for h, w in ((50, 90), (70, 40))]
    ref = ViltImageProcessorPil(size={"shortest_edge": 64}, size_divisor=8)(imgs, return_tensors="pt")
    pixels, mask = pad_images([FusionImageTransform(64, 8)(im) for im in imgs])
    assert pixels.shape == ref["pixel_values"].shape
    assert (pixels - ref["pixel_values"]).abs().max() < 1e-5
    assert torch.equal(mask, ref["pixel_mask"].long())


def test_pad_images_marks_real_pixels():
    pixels, mask = pad_images([torch.ones(3, 4, 6), torch.ones(3, 6, 2)])
    assert pixels.shape == (2, 3, 6, 6) and mask.shape == (2, 6, 6)
    assert mask[0].sum() == 24 and mask[1].sum() == 12 and pixels[0, :, 4:].abs().sum() == 0


def test_dataset_items_and_image_cache(shapes):
    ex = read_vqa(shapes, "val")
    vocab = AnswerVocab.build([e.answers for e in ex])
    ds = VQADataset(ex, FusionImageTransform(32, 8), vocab)
    item = ds[0]
    assert item["pixel_values"].shape == (3, 32, 32) and item["target"].max() == 1.0
    same_image = [i for i, e in enumerate(ex) if e.image == ex[0].image]
    assert len(same_image) > 1 and ds[same_image[1]]["pixel_values"] is item["pixel_values"]
