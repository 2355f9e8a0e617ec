"""Contrastive video-text training (CLIP4Clip): symmetric InfoNCE over video and caption embeddings;
text->video and video->text recall@1/5/10 and median rank in evaluation."""
from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import nn

from ..eval.video import video_retrieval_metrics
from ..models.clip import contrastive_loss
from ..train.task import Task
from ..video.dataset import stack_videos

Tokenize = Callable[[list[str]], tuple[torch.Tensor, torch.Tensor]]


class VideoContrastiveTask(Task):
    """Samples are {"video": (T, C, H, W) tensor, "text": str}; `tokenize` turns texts into
    (input_ids, attention_mask) for the model's text tower."""

    name = "video-clip"
    metric_for_best = "mean_R@1"
    greater_is_better = True

    def __init__(self, tokenize: Tokenize):
        self.tokenize = tokenize

    def collate(self, samples: list[dict]) -> dict:
        samples = [s for s in samples if s is not None]
        if not samples:
            raise ValueError("a batch has no loadable videos")
        ids, mask = self.tokenize([s["text"] for s in samples])
        return {"pixel_values": stack_videos(samples), "input_ids": ids, "attention_mask": mask}

    def loss(self, model: nn.Module, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        vid = model.encode_video(batch["pixel_values"])  # (B, P)
        txt = model.encode_text(batch["input_ids"], batch["attention_mask"])  # (B, P)
        scale = model.scale()
        loss = contrastive_loss(vid, txt, scale)
        with torch.no_grad():
            acc = (vid @ txt.t()).argmax(dim=1).eq(torch.arange(len(vid), device=vid.device)).float().mean()
        return loss, {"logit_scale": float(scale.detach()), "batch_acc": float(acc)}

    @torch.no_grad()
    def evaluate(self, model: nn.Module, batches: Iterable[dict]) -> dict[str, float]:
        """Loss averaged over batches; retrieval metrics over all validation pairs pooled together."""
        vids, txts, losses = [], [], []
        for batch in batches:
            vid = model.encode_video(batch["pixel_values"])
            txt = model.encode_text(batch["input_ids"], batch["attention_mask"])
            losses.append(float(contrastive_loss(vid, txt, model.scale())))
            vids.append(vid)
            txts.append(txt)
        if not vids:
            raise ValueError("evaluation got no batches: the validation set is empty")
        vid, txt = torch.cat(vids), torch.cat(txts)  # pair i = (video i, caption i)
        m = video_retrieval_metrics((vid @ txt.t()).cpu(), torch.arange(len(txt)))
        return {"loss": sum(losses) / len(losses), **m, "mean_R@1": (m["t2v_R@1"] + m["v2t_R@1"]) / 2,
                "pairs": float(len(txt))}
