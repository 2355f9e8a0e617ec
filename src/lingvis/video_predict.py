"""Using trained video models: classify files (several clips averaged), embed videos and search them by text,
and evaluate classification (top-1/top-5) and text<->video retrieval (R@K, median rank)."""
from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import torch

from .eval.classification import precision_recall_f1
from .eval.video import topk_accuracy, video_retrieval_metrics
from .recipes.video_data import sampling_for, transform_for_video
from .video.clips import load_clips
from .video.dataset import VIDEO_ERRORS
from .video.records import VideoRecord
from .zeroshot import EmbeddingIndex, embed_texts


def _device(model) -> torch.device:
    return next(model.parameters()).device


def video_batches(model, paths: Sequence[str | Path], clips: int = 1, batch_size: int = 8,
                  errors: list[str] | dict[int, str] | None = None, short: str = "error"
                  ) -> Iterator[tuple[list[int], torch.Tensor]]:
    """(positions in `paths`, (B, K, T, C, H, W) clips) per batch of readable videos, sampled and transformed
    as the model was trained. Unreadable videos go to `errors` (a list of messages, or a dict position ->
    message), or raise, naming the file."""
    spec, tf = sampling_for(model, clips, short), transform_for_video(model)
    kept, tensors = [], []
    for i, p in enumerate(paths):
        try:
            tensors.append(load_clips(p, spec, tf))  # (K, T, C, H, W)
            kept.append(i)
        except VIDEO_ERRORS as e:
            if errors is None:
                raise
            if isinstance(errors, dict):
                errors[i] = str(e)
            else:
                errors.append(str(e))
        if len(tensors) == batch_size:
            yield kept, torch.stack(tensors)
            kept, tensors = [], []
    if tensors:
        yield kept, torch.stack(tensors)


@torch.no_grad()
def classify_videos(model, paths: Sequence[str | Path], clips: int = 1, top_k: int = 5, batch_size: int = 8,
                    errors: list[str] | dict[int, str] | None = None) -> list[dict]:
    """[{"file", "label", "score", "top5": [{"label", "score"}]}] for the readable videos, in order."""
    if model.family != "video_classifier":
        raise ValueError(f"a {model.family} model does not classify videos; pass a video classifier run")
    out = []
    for idx, batch in video_batches(model, paths, clips, batch_size, errors):
        for i, top in zip(idx, model.predict(batch.to(_device(model)), top_k)):
            out.append({"file": str(paths[i]), "label": top[0][0], "score": round(top[0][1], 6),
                        "top5": [{"label": lab, "score": round(s, 6)} for lab, s in top]})
    return out


@torch.no_grad()
def evaluate_video_classifier(model, records: Sequence[VideoRecord], clips: int = 1, batch_size: int = 8,
                              reverse: Mapping[str, str] | None = None) -> dict:
    """Top-1 / top-5 accuracy and macro-F1 over labelled videos (unreadable ones are counted and skipped).
    `reverse` (label -> its time-reversed label) adds "order_accuracy": the share of videos whose true class
    scores above its time reversal (0.5 = blind to order)."""
    index = {name: i for i, name in enumerate(model.config.labels)}
    unknown = sorted({r.label for r in records if r.label not in index})
    if unknown:
        raise ValueError(f"labels {unknown[:5]} are not among the model's classes {model.config.labels[:10]}")
    errors: list[str] = []
    probs, golds = [], []
    for idx, batch in video_batches(model, [r.path for r in records], clips, batch_size, errors):
        probs.append(model.probabilities(batch.to(_device(model))).cpu())
        golds += [index[records[i].label] for i in idx]
    if not golds:
        raise ValueError("none of the videos could be read: " + "; ".join(errors[:3]))
    p, y = torch.cat(probs), torch.tensor(golds)
    order = {}
    if reverse is not None:
        rev = torch.tensor([index[reverse[model.config.labels[g]]] for g in golds])
        order["order_accuracy"] = float((p.gather(1, y[:, None]) > p.gather(1, rev[:, None])).float().mean())
    return {**topk_accuracy(p, y, (1, 5)), **order,
            "macro_f1": float(precision_recall_f1(golds, p.argmax(-1).tolist(), average="macro").f1),
            "videos": len(golds), "clips_per_video": clips, "skipped": len(errors), "skip_reasons": errors[:5]}


@torch.no_grad()
def embed_videos(model, paths: Sequence[str | Path], clips: int = 1, batch_size: int = 8,
                 errors: list[str] | None = None) -> tuple[list[int], torch.Tensor]:
    """(positions of the readable videos, (N, P) normalised embeddings; several clips are averaged)."""
    if not hasattr(model, "encode_video"):
        raise ValueError(f"a {model.family} model cannot embed videos; pass a video CLIP run")
    kept, embs = [], []
    for idx, batch in video_batches(model, paths, clips, batch_size, errors):
        B, K = batch.shape[:2]
        z = model.encode_video(batch.flatten(0, 1).to(_device(model))).view(B, K, -1).mean(1)  # (B, P)
        embs.append(torch.nn.functional.normalize(z, dim=-1).cpu())
        kept += idx
    if not kept:
        raise ValueError("none of the videos could be read" + (": " + "; ".join(errors[:3]) if errors else ""))
    return kept, torch.cat(embs)


def build_video_index(model, paths: Sequence[str | Path], clips: int = 1, batch_size: int = 8,
                      errors: list[str] | None = None) -> EmbeddingIndex:
    kept, emb = embed_videos(model, paths, clips, batch_size, errors)
    return EmbeddingIndex([Path(paths[i]) for i in kept], emb)


def search_videos(model, tokenizer, index: EmbeddingIndex, query: str, k: int = 10) -> list[tuple[Path, float]]:
    return index.search(embed_texts(model, tokenizer, [query])[0].cpu(), k)


@torch.no_grad()
def evaluate_video_retrieval(model, tokenizer, records: Sequence[VideoRecord], clips: int = 1,
                             first_caption_only: bool = False, ks: Sequence[int] = (1, 5, 10)) -> dict:
    """Text->video and video->text R@K, median and mean rank: every caption is a query; a video is correct
    for its own captions. Unreadable videos (and their captions) are skipped and counted."""
    errors: list[str] = []
    kept, vid = embed_videos(model, [r.path for r in records], clips, errors=errors)
    texts, owner = [], []
    for j, i in enumerate(kept):
        caps = records[i].captions[:1] if first_caption_only else records[i].captions
        texts += caps
        owner += [j] * len(caps)
    if not texts:
        raise ValueError("the readable videos have no captions")
    txt = embed_texts(model, tokenizer, texts).cpu()
    return {**video_retrieval_metrics(vid @ txt.t(), owner, ks), "videos": len(kept), "texts": len(texts),
            "skipped": len(errors), "skip_reasons": errors[:5]}
