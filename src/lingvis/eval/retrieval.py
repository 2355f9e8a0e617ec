"""Image-text retrieval recall@K from a similarity matrix, and zero-shot classification accuracy
from logits. Values are fractions in [0, 1]. Ties count against the model: a wrong candidate
scoring equal to the best correct one ranks ahead of it."""
from __future__ import annotations

from typing import Any, Sequence

import torch


def _as_tensor(x: Any, name: str, dims: int) -> torch.Tensor:
    t = torch.as_tensor(x)
    if t.dim() != dims:
        raise ValueError(f"{name}: expected a {dims}-D tensor, got shape {tuple(t.shape)}")
    return t


def retrieval_ranks(similarity: Any, text_to_image: Sequence[int] | Any) -> tuple[torch.Tensor, torch.Tensor]:
    """0-based rank of the first correct item, per text query (t2i) and per image query (i2t).

    similarity: (I, T) scores of image i against text t; text_to_image: (T,) index of the image
    each text describes (several texts may share an image)."""
    sim = _as_tensor(similarity, "similarity", 2).float()  # (I, T)
    gt = _as_tensor(text_to_image, "text_to_image", 1).long()  # (T,)
    num_images, num_texts = sim.shape
    if gt.numel() != num_texts:
        raise ValueError(f"text_to_image has {gt.numel()} entries but similarity has {num_texts} texts (columns)")
    if num_texts and (gt.min() < 0 or gt.max() >= num_images):
        raise ValueError(f"text_to_image values must lie in [0, {num_images}); got range "
                         f"[{int(gt.min())}, {int(gt.max())}]")
    positive = torch.zeros_like(sim, dtype=torch.bool)  # (I, T)
    positive[gt, torch.arange(num_texts)] = True
    if not positive.any(dim=1).all():
        missing = (~positive.any(dim=1)).nonzero().flatten()[:3].tolist()
        raise ValueError(f"images without any caption in text_to_image, e.g. {missing}")
    # text -> image: wrong images scoring >= the correct one
    correct_t = sim[gt, torch.arange(num_texts)]  # (T,)
    t2i = ((sim >= correct_t.unsqueeze(0)) & ~positive).sum(dim=0)  # (T,)
    # image -> text: wrong texts scoring >= the best correct text
    best_i = sim.masked_fill(~positive, float("-inf")).amax(dim=1)  # (I,)
    i2t = ((sim >= best_i.unsqueeze(1)) & ~positive).sum(dim=1)  # (I,)
    return t2i, i2t


def retrieval_recall(
    similarity: Any, text_to_image: Sequence[int] | Any, ks: Sequence[int] = (1, 5, 10)
) -> dict[str, float]:
    """{'t2i_R@K', 'i2t_R@K' for K in ks, 'rsum'}: share of queries with a correct item in the top K."""
    t2i, i2t = retrieval_ranks(similarity, text_to_image)
    out: dict[str, float] = {}
    for k in ks:
        if k < 1:
            raise ValueError(f"ks must be >= 1, got {k}")
        out[f"t2i_R@{k}"] = (t2i < k).float().mean().item()
        out[f"i2t_R@{k}"] = (i2t < k).float().mean().item()
    out["rsum"] = sum(out.values())
    return out


def zero_shot_accuracy(logits: Any, labels: Sequence[int] | Any, ks: Sequence[int] = (1, 5)) -> dict[str, float]:
    """{'top{k}': share of rows whose true class is among the k highest logits}; ties count against."""
    z = _as_tensor(logits, "logits", 2).float()  # (N, C)
    y = _as_tensor(labels, "labels", 1).long()  # (N,)
    if y.numel() != z.shape[0]:
        raise ValueError(f"labels has {y.numel()} entries but logits has {z.shape[0]} rows")
    if y.numel() == 0:
        raise ValueError("logits and labels are empty")
    if y.min() < 0 or y.max() >= z.shape[1]:
        raise ValueError(f"labels must lie in [0, {z.shape[1]}); got range [{int(y.min())}, {int(y.max())}]")
    correct = z.gather(1, y.unsqueeze(1))  # (N, 1)
    rank = (z >= correct).sum(dim=1) - 1  # (N,) other classes scoring >= the true one
    out = {}
    for k in ks:
        if k < 1:
            raise ValueError(f"ks must be >= 1, got {k}")
        out[f"top{k}"] = (rank < k).float().mean().item()
    return out
