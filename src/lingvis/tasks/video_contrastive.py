"""Contrastive video-text training (CLIP4Clip): symmetric InfoNCE over video and caption embeddings;
text->video and video->text recall@1/5/10 and median rank in evaluation."""
from __future__ import annotations

import torch
from torch import nn

from ..eval.video import video_retrieval_metrics
from ..video.dataset import stack_videos
from .contrastive import ContrastiveTask


class VideoContrastiveTask(ContrastiveTask):
    """Samples are {"video": (T, C, H, W) tensor, "text": str}; `tokenize` turns texts into
    (input_ids, attention_mask) for the model's text tower."""

    name = "video-clip"
    metric_for_best = "mean_R@1"
    greater_is_better = True

    noun = "videos"

    def collate(self, samples: list) -> dict:
        """Samples, or lists of samples (hard-negative groups, `video.hard_negatives`), flattened."""
        flat = [x for s in samples for x in (s if isinstance(s, list) else [s])]
        return super().collate(flat)

    def stack(self, samples: list[dict]) -> torch.Tensor:
        return stack_videos(samples)  # (B, T, C, H, W)

    def encode_media(self, model: nn.Module, pixels: torch.Tensor) -> torch.Tensor:
        return model.encode_video(pixels)  # (B, P)

    def retrieval(self, sim: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
        m = video_retrieval_metrics(sim, targets)
        return {**m, "mean_R@1": (m["t2v_R@1"] + m["v2t_R@1"]) / 2}
