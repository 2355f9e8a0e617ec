"""Fusion pretraining on image-caption pairs: masked LM conditioned on the image + image-text matching
with hard negatives from the batch (+ optional masked image-feature regression)."""
from __future__ import annotations

import zlib
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..data.mlm import MaskingConfig, MLMCollator
from ..data.vqa_dataset import pad_images
from ..tokenizers.wordpiece import continuation_flags
from ..train.task import Task
from .fusion_masking import hard_negatives, mask_image_grid
from .vqa import encode_texts, model_inputs


class FusionPretrainTask(Task):
    """Items {"pixel_values", "text", "image_key"[, "eval"]}. In each batch a fraction `itm_prob` of the
    images is paired with a negative caption from the batch: `hard_fraction` of them hard (another image's
    caption sharing the most tokens), the rest random. Words and regions are masked on every pair (a mask
    must not tell ITM that a pair matches); masked-LM and masked-feature losses count on matched pairs only
    (and on real regions, not region padding). Token masking is BERT's `MLMCollator` (whole words optional).
    Eval batches draw masks and negatives under a seed taken from the batch content, so every evaluation sees
    the same ones."""

    name = "fusion_pretrain"
    metric_for_best = "loss"
    greater_is_better = False

    def __init__(self, tokenizer, max_text_len: int, image_tokens: Callable[[int, int], int],
                 mlm_prob: float = 0.15, itm_prob: float = 0.5, mif_prob: float = 0.0, whole_word: bool = False,
                 hard_fraction: float = 0.5, weights: dict[str, float] | None = None):
        if tokenizer.mask_id is None:
            raise ValueError("the tokenizer has no [MASK] token: masked-LM pretraining needs one")
        # image_tokens: (H, W) of the padded batch -> image tokens per image (`FusionConfig.image_token_count`)
        self.tokenizer, self.max_text_len, self.image_tokens = tokenizer, max_text_len, image_tokens
        self.itm_prob, self.mif_prob, self.hard_fraction = itm_prob, mif_prob, hard_fraction
        self.weights = weights or {}  # loss name (mlm, itm, mif, itc) -> weight; default 1
        special = [t for t in (tokenizer.cls_id, tokenizer.sep_id, tokenizer.pad_id) if t is not None]
        self.masker = MLMCollator(tokenizer.vocab_size, tokenizer.pad_id, tokenizer.mask_id, special,
                                  continuation_flags(tokenizer) if whole_word else None,
                                  MaskingConfig(mlm_prob=mlm_prob, whole_word=whole_word))

    def collate(self, samples: list[dict]) -> dict:
        if not samples[0].get("eval"):
            return self._collate(samples)
        key = "|".join(str(s["image_key"]) for s in samples).encode()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(zlib.crc32(key))
            return self._collate(samples)

    def _collate(self, samples: list[dict]) -> dict:
        pixels, pixel_mask = pad_images([s["pixel_values"] for s in samples])
        ids, mask = encode_texts(self.tokenizer, [s["text"] for s in samples], self.max_text_len)  # (B, T)
        keys = [s["image_key"] for s in samples]
        clean = {"clean_ids": ids, "clean_mask": mask,  # every image with its own caption (for ITC)
                 "same_image": torch.tensor([[a == b for b in keys] for a in keys])}  # (B, B)
        swap = hard_negatives(ids, mask, keys, self.itm_prob,
                              hard_fraction=self.hard_fraction)  # (B,) partner row or -1
        matched = swap < 0
        take = torch.where(matched, torch.arange(len(samples)), swap)
        ids, mask = ids[take], mask[take]
        rows = [self.masker.mask(row, self.masker.choose(row[:int(m.sum())].tolist())) for row, m in zip(ids, mask)]
        masked_ids, labels = torch.stack([r[0] for r in rows]), torch.stack([r[1] for r in rows])  # (B, T)
        labels[~matched] = -100  # no masked LM on mismatched pairs
        batch = {"input_ids": masked_ids, "attention_mask": mask, "pixel_values": pixels, "pixel_mask": pixel_mask,
                 "mlm_labels": labels, "itm_labels": matched.long(), **clean}
        if self.mif_prob > 0:  # masked on every pair, negatives too: a masked region must not reveal a match to ITM
            grid = self.image_tokens(pixels.shape[-2], pixels.shape[-1])
            batch["image_token_mask"] = mask_image_grid(len(samples), grid, self.mif_prob)
        return batch

    def _losses(self, model: nn.Module, batch: dict) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
        mif = "image_token_mask" in batch
        out = model(**model_inputs(batch), image_token_mask=batch.get("image_token_mask"), with_image_features=mif)
        logits = model.mlm_logits(out)  # (B, T, V)
        labels = batch["mlm_labels"]
        predicted = labels >= 0
        losses = {"mlm": F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), ignore_index=-100)
                  if predicted.any() else logits.sum() * 0.0}
        itm = model.itm_logits(out)  # (B, 2)
        losses["itm"] = F.cross_entropy(itm.float(), batch["itm_labels"])
        hits = ((logits.argmax(-1) == labels) & predicted).sum()
        metrics = {"mlm_accuracy": float(hits / predicted.sum().clamp(min=1)),
                   "itm_accuracy": float((itm.argmax(-1) == batch["itm_labels"]).float().mean())}
        if mif:
            # (B, N) scored: masked real tokens (not region padding) of matched pairs (a caption to lean on)
            sel = batch["image_token_mask"] & (out.mask[:, out.text_len + 1:] > 0) & batch["itm_labels"].bool()[:, None]
            target = out.image_features  # (B, N, F), normalised per token as in MAE
            target = (target - target.mean(-1, keepdim=True)) / (target.var(-1, keepdim=True) + 1e-6).sqrt()
            err = (model.mif_predictions(out).float() - target).pow(2).mean(-1)  # (B, N)
            losses["mif"] = (err * sel).sum() / sel.sum().clamp(min=1)
        if model.config.itc_head:
            losses["itc"], metrics["itc_accuracy"] = contrastive_loss(model, batch)
        return losses, metrics

    def loss(self, model: nn.Module, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        losses, metrics = self._losses(model, batch)
        total = sum(self.weights.get(k, 1.0) * v for k, v in losses.items())
        return total, {**metrics, **{f"{k}_loss": float(v.detach()) for k, v in losses.items()}}


def contrastive_loss(model: nn.Module, batch: dict) -> tuple[torch.Tensor, float]:
    """Symmetric InfoNCE between each image and its own caption over the batch (captions of the same image
    all count as positives); returns the loss and the image->text top-1 accuracy."""
    txt, img = model.contrastive_embeddings(batch["clean_ids"], batch["pixel_values"], batch["clean_mask"],
                                            batch["pixel_mask"])  # (B, D) each
    logits = model.logit_scale.exp().clamp(max=100) * img @ txt.T  # (B, B) image -> text
    pos = batch["same_image"].float()
    target = pos / pos.sum(1, keepdim=True)
    loss = (F.cross_entropy(logits.float(), target) + F.cross_entropy(logits.T.float(), target)) / 2  # pos is symmetric
    acc = pos.gather(1, logits.argmax(1, keepdim=True)).mean()
    return loss, float(acc)
