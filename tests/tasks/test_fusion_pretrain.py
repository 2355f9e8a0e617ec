"""Fusion pretraining: hard negatives, masking, losses, deterministic eval batches, the recipe."""
import pytest
import torch

import lingvis
from lingvis.data.shapes import generate_shapes
from lingvis.models import build, preset_config
from lingvis.recipes.fusion import FusionPretrainArgs, pretrain_fusion
from lingvis.recipes.vqa import VQAFinetuneArgs, finetune_vqa
from lingvis.tasks.fusion_masking import hard_negatives, mask_image_grid
from lingvis.tasks.fusion_pretrain import FusionPretrainTask
from lingvis.tasks.vqa import encode_texts
from lingvis.tokenizers.wordpiece import train_wordpiece
from lingvis.train.config import TrainConfig

CAPTIONS = ["a small red circle", "a small red square", "a large blue star on the left",
            "two shapes: a green cross and a yellow star"]


TOKENS = preset_config("fusion-tiny")[1].image_token_count  # 32px images, 8px patches: 16 per image


@pytest.fixture(scope="module")
def tok():
    return train_wordpiece(CAPTIONS * 3, 120, min_frequency=1)


def samples(eval=False):
    torch.manual_seed(0)
    return [{"pixel_values": torch.randn(3, 32, 32), "text": t, "image_key": f"img{i}", "eval": eval}
            for i, t in enumerate(CAPTIONS)]


def test_hard_negatives_prefer_the_most_similar_caption(tok):
    ids, mask = encode_texts(tok, CAPTIONS, 24)
    torch.manual_seed(0)
    swap = hard_negatives(ids, mask, ["a", "b", "c", "d"], prob=1.0, temperature=0.01)
    assert swap[0] == 1 and swap[1] == 0  # "small red circle" <-> "small red square"
    swap = hard_negatives(ids, mask, ["a", "a", "a", "a"], prob=1.0)  # one image: no negatives possible
    assert (swap == -1).all()
    easy = {int(hard_negatives(ids, mask, ["a", "b", "c", "d"], 1.0, 0.01, hard_fraction=0.0)[0]) for _ in range(40)}
    assert easy == {1, 2, 3}  # random negatives: any other image


def test_mask_image_grid_masks_at_least_one_cell():
    m = mask_image_grid(5, 16, 0.0)
    assert m.shape == (5, 16) and (m.sum(1) == 1).all()


def test_collate_labels_and_losses(tok):
    task = FusionPretrainTask(tok, 24, TOKENS, mlm_prob=0.5, itm_prob=0.5, mif_prob=0.25)
    torch.manual_seed(1)
    batch = task.collate(samples())
    matched = batch["itm_labels"].bool()
    assert (batch["mlm_labels"][~matched] == -100).all()
    assert (batch["mlm_labels"][matched] >= 0).any()
    assert batch["image_token_mask"].any(1).all()  # every pair, negatives too: masks say nothing about matching
    torch.manual_seed(0)
    model = build("fusion-tiny", vocab_size=tok.vocab_size, mlm_head=True, itm_head=True, mif_head=True,
                  itc_head=True)
    loss, metrics = task.loss(model, batch)
    assert torch.isfinite(loss)
    assert {"mlm_loss", "itm_loss", "mif_loss", "itc_loss", "itm_accuracy", "mlm_accuracy", "itc_accuracy"} <= set(metrics)
    loss.backward()
    assert model.itm.weight.grad.abs().sum() > 0 and model.mif.weight.grad.abs().sum() > 0
    assert model.itc["image"].weight.grad.abs().sum() > 0 and model.logit_scale.grad is not None


def test_eval_batches_are_reproducible(tok):
    task = FusionPretrainTask(tok, 24, TOKENS)
    a, b = task.collate(samples(eval=True)), task.collate(samples(eval=True))
    assert torch.equal(a["input_ids"], b["input_ids"]) and torch.equal(a["itm_labels"], b["itm_labels"])


def test_tokenizer_without_mask_token_is_refused():
    from lingvis.tokenizers import train_char

    with pytest.raises(ValueError, match="no \\[MASK\\] token"):
        FusionPretrainTask(train_char(CAPTIONS), 24, TOKENS)


def test_pretrain_then_finetune(tmp_path):
    data = tmp_path / "shapes"
    generate_shapes(data, n_train=10, n_val=3, n_test=3, image_size=32, seed=0)
    cfg = TrainConfig(max_steps=2, batch_size=8, eval_every=2, eval_batches=1, warmup_steps=1, progress=False)
    summary = pretrain_fusion(FusionPretrainArgs(out=str(tmp_path / "pre"), data=str(data), preset="fusion-tiny",
                                                 vocab_size=200, mif_prob=0.2), cfg)
    assert {"itm_accuracy", "mlm_accuracy", "mif_loss", "itc_accuracy"} <= set(summary["eval"])
    pre = lingvis.load(tmp_path / "pre")
    assert pre.config.mlm_head and pre.config.itm_head
    tuned = finetune_vqa(VQAFinetuneArgs(out=str(tmp_path / "vqa"), data=str(data), model=str(tmp_path / "pre"),
                                         test_splits=[]), cfg)
    model = lingvis.load(tmp_path / "vqa")
    assert tuned["step"] == 2 and model.config.answers and not model.config.mlm_head and not model.config.itc_head
    # the trunk came from the pretrained model; the tokenizer too
    assert lingvis.load_tokenizer(tmp_path / "vqa").vocab_size == lingvis.load_tokenizer(tmp_path / "pre").vocab_size
