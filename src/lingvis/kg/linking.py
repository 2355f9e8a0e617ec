"""Cross-modal entity linking: caption mentions <-> image objects (and entities already in the graph) of the
same scene. A pair's score is the agreement of the attributes the mention states (type, colour, size;
weighted) and, with a CLIP model, the softmax over the scene's objects of the CLIP similarity between the
mention text and the object's crop (averaged with the agreement). Within one caption, mentions are assigned
to distinct candidates by the best total score; a link is kept when its score reaches `threshold`."""
from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

WEIGHTS = {"type": 1.0, "colour": 1.0, "size": 0.5}


@dataclass
class Candidate:
    """Something a mention can denote: an image object (with its crop) or an entity already stored."""
    key: str                                # entity id (existing) or a provisional id
    type: str
    attributes: dict[str, str] = field(default_factory=dict)
    crop: object | None = None              # PIL crop of the object (image objects only)
    clip: torch.Tensor | None = None        # (P,) normalised CLIP image embedding of the crop


@dataclass
class Link:
    mention: int                            # index of the mention
    candidate: int | None                   # index of the candidate, or None (a new entity)
    score: float


def agreement(stated: dict[str, str], cand_type: str, cand_attrs: dict[str, str]) -> float:
    """Weighted share of the stated attributes (including 'type') that the candidate has."""
    total = hit = 0.0
    for k, v in stated.items():
        w = WEIGHTS.get(k, 0.5)
        total += w
        have = cand_type if k == "type" else cand_attrs.get(k)
        hit += w * (have is not None and have == v)
    return hit / total if total else 0.0


def score_matrix(mentions: Sequence[dict[str, str]], candidates: Sequence[Candidate],
                 text_clip: torch.Tensor | None = None, clip_scale: float = 100.0) -> torch.Tensor:
    """(M, C) link scores in [0, 1]. `mentions` are stated attributes ({'type': ..., 'colour': ...}); with
    `text_clip` (M, P) normalised CLIP text embeddings, candidates with a `clip` embedding mix in the
    softmax over those candidates of the scaled cosine similarity."""
    M, C = len(mentions), len(candidates)
    s = torch.zeros(M, C)
    for i, m in enumerate(mentions):
        for j, c in enumerate(candidates):
            s[i, j] = agreement(m, c.type, c.attributes)
    if text_clip is not None:
        with_img = [j for j, c in enumerate(candidates) if c.clip is not None]
        if with_img:
            img = torch.stack([candidates[j].clip for j in with_img]).float()  # (C', P)
            p = (clip_scale * text_clip.float() @ img.T).softmax(-1)  # (M, C')
            s[:, with_img] = 0.5 * s[:, with_img] + 0.5 * p
    return s


def assign(scores: torch.Tensor, threshold: float = 0.5, distinct: bool = True) -> list[Link]:
    """Mentions -> candidates. `distinct`: no two mentions of the same caption share a candidate (the best
    total score over assignments; exhaustive for small scenes, greedy beyond). Links below `threshold`
    become None."""
    M, C = scores.shape
    if M == 0:
        return []
    if C == 0:
        return [Link(i, None, 0.0) for i in range(M)]
    if not distinct:
        best = scores.max(1)
        return [Link(i, int(j) if float(v) >= threshold else None, float(v))
                for i, (v, j) in enumerate(zip(best.values, best.indices))]
    if M <= 4 and C <= 8:
        best_total, best_perm = -1.0, None
        slots = list(range(C)) + [None] * M  # a mention may also stay unlinked
        for perm in itertools.permutations(slots, M):
            if any(p is not None and perm.count(p) > 1 for p in perm):
                continue
            total = sum(float(scores[i, p]) if p is not None and float(scores[i, p]) >= threshold else 0.0
                        for i, p in enumerate(perm))
            if total > best_total + 1e-9:
                best_total, best_perm = total, perm
        return [Link(i, p if p is not None and float(scores[i, p]) >= threshold else None,
                     float(scores[i, p]) if p is not None else 0.0) for i, p in enumerate(best_perm)]
    links, used = [None] * M, set()
    order = sorted(((float(scores[i, j]), i, j) for i in range(M) for j in range(C)), reverse=True)
    for v, i, j in order:
        if links[i] is None and j not in used and v >= threshold:
            links[i] = Link(i, j, v)
            used.add(j)
    return [l or Link(i, None, float(scores[i].max())) for i, l in enumerate(links)]


@torch.no_grad()
def clip_text_embeddings(clip, tokenizer, texts: Sequence[str], template: str = "a photo of a {}") -> torch.Tensor:
    from ..zeroshot import embed_texts

    return embed_texts(clip, tokenizer, [template.format(t) for t in texts])


@torch.no_grad()
def clip_image_embeddings(clip, crops: Sequence) -> torch.Tensor:
    from ..zeroshot import embed_images

    return embed_images(clip, list(crops))


def crop(image, box: Sequence[float], margin: float = 0.15):
    """The PIL crop of a normalised box, widened by `margin` of its longer side and made square."""
    W, H = image.size
    x0, y0, x1, y1 = box
    cx, cy = (x0 + x1) / 2 * W, (y0 + y1) / 2 * H
    half = max((x1 - x0) * W, (y1 - y0) * H) * (0.5 + margin)
    return image.crop((int(cx - half), int(cy - half), int(cx + half) + 1, int(cy + half) + 1))
