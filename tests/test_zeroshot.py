"""Zero-shot classification with templates, retrieval evaluation, embedding index search and grids."""
import pytest
import torch
from PIL import Image

import lingvis
from lingvis.data.image_text import ImageTextRecord
from lingvis.data.images import ImageError
from lingvis.recipes.clip_data import train_word_tokenizer
from lingvis.zeroshot import (EmbeddingIndex, class_embeddings, embed_images, embed_texts, evaluate_retrieval,
                              list_images, load_images, save_grid, search_images, zero_shot_classify)

COLOURS = {"red": (220, 40, 40), "green": (40, 170, 60), "blue": (40, 80, 225)}


@pytest.fixture(scope="module")
def clip():
    torch.manual_seed(0)
    tok = train_word_tokenizer([f"a {c} image" for c in COLOURS] + ["a photo of"])
    model = lingvis.build("clip-nano", eos_token_id=tok.eos_id, bos_token_id=tok.bos_id, pad_token_id=tok.pad_id,
                          text=dict(vocab_size=tok.vocab_size, context_length=16, dim=32, depth=1, heads=4,
                                    mlp_hidden=64)).eval()
    return model, tok


@pytest.fixture()
def folder(tmp_path):
    for name, rgb in COLOURS.items():
        (tmp_path / name).mkdir()
        for k in range(2):
            Image.new("RGB", (40, 36), tuple(max(0, v - 30 * k) for v in rgb)).save(tmp_path / name / f"{k}.png")
    return tmp_path


def test_class_embeddings_average_the_templates(clip):
    model, tok = clip
    templates = ["a {} image", "a photo of {}"]
    emb = class_embeddings(model, tok, ["red", "blue"], templates)
    each = embed_texts(model, tok, ["a red image", "a photo of red"])
    assert emb.shape == (2, 16)
    assert torch.allclose(emb[0], torch.nn.functional.normalize(each.mean(0), dim=-1), atol=1e-5)
    with pytest.raises(ValueError, match="no '\\{\\}' placeholder"):
        class_embeddings(model, tok, ["red"], ["a photo"])


def test_zero_shot_classify_gives_probabilities_per_label(clip, folder):
    model, tok = clip
    images, paths = load_images(list_images(folder))
    out = zero_shot_classify(model, tok, images, list(COLOURS), ["a {} image"])
    assert len(out) == 6 and set(out[0]["scores"]) == set(COLOURS)
    for o in out:
        assert abs(sum(o["scores"].values()) - 1) < 1e-4 and o["label"] == max(o["scores"], key=o["scores"].get)


def test_bad_images_are_errors_or_counted_skips(folder):
    (folder / "red" / "broken.png").write_bytes(b"not a png")
    paths = list_images(folder)
    with pytest.raises(ImageError, match="broken.png"):
        load_images(paths)
    errors = []
    images, kept = load_images(paths, errors)
    assert len(images) == 6 and len(errors) == 1 and "broken.png" in errors[0]


def test_index_search_save_load_and_grid(clip, folder, tmp_path):
    model, tok = clip
    errors = []
    index = EmbeddingIndex.build(model, list_images(folder), batch_size=4, errors=errors)
    assert len(index.paths) == 6 and not errors
    hits = search_images(model, tok, index, "a red image", k=3)
    assert len(hits) == 3 and hits[0][1] >= hits[1][1] >= hits[2][1]
    q = embed_texts(model, tok, ["a red image"])[0]
    best = int((embed_images(model, load_images(index.paths)[0]) @ q).argmax())
    assert hits[0][0] == index.paths[best]
    saved = index.save(tmp_path / "idx" / "index.safetensors")
    again = EmbeddingIndex.load(saved)
    assert again.paths == index.paths and torch.equal(again.embeddings, index.embeddings)
    with pytest.raises(ValueError, match="another model"):
        again.search(torch.zeros(7))
    grid = save_grid(hits, tmp_path / "grid.png", title="a red image", thumb=32, cols=2)
    assert Image.open(grid).size == (64, 20 + 2 * (32 + 16))


def test_retrieval_counts_every_caption_of_an_image(clip, folder):
    model, tok = clip
    groups = [[ImageTextRecord(text=f"a {c} image", key=c, image_path=folder / c / "0.png"),
               ImageTextRecord(text=f"a photo of {c}", key=c, image_path=folder / c / "0.png")] for c in COLOURS]
    res = evaluate_retrieval(model, tok, groups, ks=(1, 3, 5))
    assert res["images"] == 3 and res["texts"] == 6
    # 3 images: every text finds its image in the top 3; an image has 2 of the 6 texts: one is in the top 5
    assert res["t2i_R@3"] == 1.0 and res["i2t_R@5"] == 1.0
    one = evaluate_retrieval(model, tok, groups, ks=(1,), first_caption_only=True)
    assert one["texts"] == 3


def test_non_clip_models_are_rejected(folder):
    with pytest.raises(ValueError, match="cannot embed both images and text"):
        embed_images(lingvis.build("vit-nano"), [Image.new("RGB", (32, 32))])
