"""Fusion pretraining on image-caption pairs: masked LM conditioned on the image + image-text matching
with hard negatives from the batch (+ optional masked image-feature regression)."""
from __future__ import annotations

import zlib

import torch
import torch.nn.functional as F
from torch import nn

from ..data.vqa_dataset import pad_images
from ..train.task import Task
from .fusion_masking import hard_negatives, mask_image_grid, mask_tokens
from .vqa import encode_texts, model_inputs


class FusionPretrainTask(Task):
    """Items {"pixel_values", "text", "image_key"[, "eval"]}. In each batch a fraction `itm_prob` of the
    captions is swapped for a hard negative (another image's caption in the batch that shares the most
    tokens); MLM and masked-feature losses count on matched pairs only. Eval batches draw their masks
    and negatives from a generator seeded by the batch content, so every evaluation sees the same ones."""

    name = "fusion_pretrain"
    metric_for_best = "loss"
    greater_is_better = False

    def __init__(self, tokenizer, max_text_len: int, image_stride: int, mlm_prob: float = 0.15,
                 itm_prob: float = 0.5, mif_prob: float = 0.0, weights: tuple[float, float, float] = (1.0, 1.0, 1.0),
                 seed: int = 0):
        self.tokenizer, self.max_text_len, self.stride = tokenizer, max_text_len, image_stride
        self.mlm_prob, self.itm_prob, self.mif_prob, self.weights = mlm_prob, itm_prob, mif_prob, weights
        if tokenizer.mask_id is None:
            raise ValueError("the tokenizer has no [MASK] token: masked-LM pretraining needs one")
        self.special = [t for t in (tokenizer.cls_id, tokenizer.sep_id, tokenizer.pad_id) if t is not None]
        self.gen = torch.Generator().manual_seed(seed)

    def _generator(self, samples: list[dict]) -> torch.Generator:
        if samples[0].get("eval"):
            key = "|".join(str(s["image_key"]) for s in samples).encode()
            return torch.Generator().manual_seed(zlib.crc32(key))
        return self.gen

    def collate(self, samples: list[dict]) -> dict:
        g = self._generator(samples)
        texts = [s["text"] for s in samples]
        pixels, pixel_mask = pad_images([s["pixel_values"] for s in samples])
        ids, mask = encode_texts(self.tokenizer, texts, self.max_text_len)  # (B, T)
        swap = hard_negatives(ids, mask, [s["image_key"] for s in samples], self.itm_prob, g)  # (B,) partner or -1
        matched = swap < 0
        take = torch.where(matched, torch.arange(len(samples)), swap)
        ids, mask = ids[take], mask[take]
        masked_ids, labels = mask_tokens(ids, mask, self.tokenizer.mask_id, self.tokenizer.vocab_size,
                                         self.special, self.mlm_prob, g)
        labels[~matched] = -100  # no MLM on mismatched pairs
        batch = {"input_ids": masked_ids, "attention_mask": mask, "pixel_values": pixels, "pixel_mask": pixel_mask,
                 "mlm_labels": labels, "itm_labels": matched.long()}
        if self.mif_prob > 0:
            grid = (pixels.shape[-2] // self.stride) * (pixels.shape[-1] // self.stride)
            batch["image_token_mask"] = mask_image_grid(len(samples), grid, self.mif_prob, g) & matched[:, None]
        return batch

    def _losses(self, model: nn.Module, batch: dict) -> dict[str, torch.Tensor]:
        mif = "image_token_mask" in batch
        out = model(**model_inputs(batch), image_token_mask=batch.get("image_token_mask"), with_image_features=mif)
        logits = model.mlm_logits(out)  # (B, T, V)
        labels = batch["mlm_labels"]
        losses = {"mlm": F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), ignore_index=-100)
                  if (labels >= 0).any() else logits.sum() * 0.0}
        itm = model.itm_logits(out)  # (B, 2)
        losses["itm"] = F.cross_entropy(itm.float(), batch["itm_labels"])
        losses["_mlm_hits"] = ((logits.argmax(-1) == labels) & (labels >= 0)).sum() / (labels >= 0).sum().clamp(min=1)
        losses["_itm_hits"] = (itm.argmax(-1) == batch["itm_labels"]).float().mean()
        if mif:
            sel = batch["image_token_mask"]  # (B, N)
            target = out.image_features  # (B, N, F), normalised per token as in MAE
            target = (target - target.mean(-1, keepdim=True)) / (target.var(-1, keepdim=True) + 1e-6).sqrt()
            err = (model.mif_predictions(out).float() - target).pow(2).mean(-1)  # (B, N)
            losses["mif"] = (err * sel).sum() / sel.sum().clamp(min=1)
        return losses

    def loss(self, model: nn.Module, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        parts = self._losses(model, batch)
        w_mlm, w_itm, w_mif = self.weights
        total = w_mlm * parts["mlm"] + w_itm * parts["itm"] + (w_mif * parts["mif"] if "mif" in parts else 0.0)
        metrics = {("mlm_accuracy" if k == "_mlm_hits" else "itm_accuracy" if k == "_itm_hits" else f"{k}_loss"):
                   float(v) for k, v in parts.items()}
        return total, metrics
