"""Caption task: (image, caption) pairs, batching, loss, CIDEr/BLEU evaluation, images that fail to load."""
import pytest
import torch
from PIL import Image

from lingvis.data.images import ImageError, SafeDataset, SkipCounter
from lingvis.models import registry
from lingvis.recipes.caption import SPECIALS, image_transform
from lingvis.tasks.caption import CaptionPairs, CaptionTask
from lingvis.tokenizers import train_bpe

CAPS = [["a red circle", "one red circle"], ["a blue square", "a single blue square"], ["a green star"]]




@pytest.fixture(scope="module")
def setup():
    tok = train_bpe([c for caps in CAPS for c in caps] * 5, 300, SPECIALS)
    fam, cfg = registry.preset_config("captioner-nano")
    cfg.decoder = {**cfg.decoder, "vocab_size": tok.vocab_size}
    cfg.bos_id, cfg.eos_id, cfg.pad_id = tok.bos_id, tok.eos_id, tok.pad_id
    torch.manual_seed(0)
    model = registry.family(fam).model_cls(cfg)
    return tok, model


def image(i):
    if i == 1:
        raise ImageError("bad.png: cannot identify image file")
    return Image.new("RGB", (40, 40), (40 * i, 100, 200))


def test_pairs_expand_captions_and_evaluation_scores(setup):
    tok, model = setup
    tf = image_transform(model)
    train = CaptionPairs(lambda i: image(0), CAPS, tok, tf, max_len=16)
    assert len(train) == 5 and train[1].refs == CAPS[0] and train[1].pixels.shape == (3, 32, 32)
    val = CaptionPairs(lambda i: image(0), CAPS, tok, tf, max_len=16, all_captions=False)
    assert len(val) == 3
    task = CaptionTask(tok, tok.bos_id, tok.eos_id, tok.pad_id, max_new_tokens=6)
    batch = task.collate([val[i] for i in range(3)])
    assert batch["pixels"].shape == (3, 3, 32, 32) and batch["tgt_in"][:, 0].eq(tok.bos_id).all()
    loss, m = task.loss(model.train(), batch)
    loss.backward()
    assert model.encoder.patch_embed.weight.grad is not None  # gradients reach the image tower
    out = task.evaluate(model.eval(), [batch])
    assert {"loss", "cider", "bleu4"} <= set(out) and out["cider"] >= 0


def test_images_that_fail_to_load_are_skipped_and_counted(setup):
    tok, model = setup
    counter = SkipCounter()
    ds = SafeDataset(CaptionPairs(image, CAPS, tok, image_transform(model), 16, all_captions=False), counter)
    samples = [ds[i] for i in range(3)]
    assert counter.count == 1 and "bad.png" in counter.reasons[0]
    assert samples[1].refs == CAPS[2]  # the next image stands in


def test_empty_captions_are_rejected(setup):
    tok, model = setup
    with pytest.raises(ValueError, match="image 1 has an empty caption"):
        CaptionPairs(image, [["a red circle"], []], tok, image_transform(model), 16)
