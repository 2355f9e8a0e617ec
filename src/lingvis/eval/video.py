"""Video metrics: text<->video retrieval recall@K with median and mean rank (built on `retrieval_ranks`),
and top-k classification accuracy. Ranks are 1-based (MdR 1 = the correct item first); ties count
against the model."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from .retrieval import retrieval_ranks, zero_shot_accuracy


def video_retrieval_metrics(similarity: Any, text_to_video: Sequence[int] | Any,
                            ks: Sequence[int] = (1, 5, 10)) -> dict[str, float]:
    """similarity: (V, T) scores of video v against text t; text_to_video: (T,) the video each text
    describes. Returns t2v_R@K / v2t_R@K (fractions), t2v_MdR / v2t_MdR (median rank), t2v_MnR / v2t_MnR
    (mean rank) and rsum (sum of the recalls)."""
    t2v, v2t = retrieval_ranks(similarity, text_to_video)
    out: dict[str, float] = {}
    for k in ks:
        if k < 1:
            raise ValueError(f"ks must be >= 1, got {k}")
        out[f"t2v_R@{k}"] = (t2v < k).float().mean().item()
        out[f"v2t_R@{k}"] = (v2t < k).float().mean().item()
    out["rsum"] = sum(out.values())
    for name, ranks in (("t2v", t2v), ("v2t", v2t)):
        r = ranks.double().numpy() + 1
        out[f"{name}_MdR"] = float(np.median(r))
        out[f"{name}_MnR"] = float(r.mean())
    return out


def topk_accuracy(scores: Any, labels: Sequence[int] | Any, ks: Sequence[int] = (1, 5)) -> dict[str, float]:
    """{'top1', 'top5', ...}: share of rows whose true class is among the k best scores (k is capped at the
    number of classes)."""
    s = torch.as_tensor(scores)
    if s.dim() != 2:
        raise ValueError(f"scores: expected a 2-D (N, classes) tensor, got shape {tuple(s.shape)}")
    acc = zero_shot_accuracy(s, labels, ks=[min(k, s.shape[1]) for k in ks])
    return {f"top{k}": acc[f"top{min(k, s.shape[1])}"] for k in ks}
