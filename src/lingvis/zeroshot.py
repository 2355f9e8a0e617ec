"""Using a trained CLIP: zero-shot classification with prompt templates, image-text retrieval evaluation,
and text -> image search over a folder with a saved embedding index."""
from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from .data.images import ImageError, load_image
from .eval.retrieval import retrieval_recall
from .progress import progress
from .recipes.clip_data import transform_for

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")
DEFAULT_TEMPLATES = ("{}",)


def _check_clip(model) -> None:
    if not (hasattr(model, "encode_image") and hasattr(model, "encode_text")):
        raise ValueError(f"a {getattr(model, 'family', type(model).__name__)} model cannot embed both images and "
                         "text; pass a CLIP checkpoint")


@torch.no_grad()
def embed_texts(model, tokenizer, texts: Sequence[str], batch_size: int = 256) -> torch.Tensor:
    """(N, P) L2-normalised text embeddings."""
    _check_clip(model)
    out = []
    device = next(model.parameters()).device
    for i in range(0, len(texts), batch_size):
        ids, mask = model.tokenize(tokenizer, list(texts[i:i + batch_size]))
        out.append(model.encode_text(ids.to(device), mask.to(device)))
    return torch.cat(out)


@torch.no_grad()
def embed_images(model, images: Sequence, batch_size: int = 64, encoder=None) -> torch.Tensor:
    """(N, P) L2-normalised image embeddings of PIL images or preprocessed (3, H, W) tensors.
    `encoder` (e.g. `models.fast_encode.FastImageEncoder(model)`) replaces `model.encode_image`."""
    _check_clip(model)
    tf = transform_for(model)
    device = next(model.parameters()).device
    encode = encoder or model.encode_image
    out = []
    for i in range(0, len(images), batch_size):
        chunk = [im if isinstance(im, torch.Tensor) else tf(im) for im in images[i:i + batch_size]]
        out.append(encode(torch.stack(chunk).to(device)))
    return torch.cat(out)


def load_images(paths: Sequence[str | Path], errors: list[str] | None = None) -> tuple[list, list[Path]]:
    """Open image files; with an `errors` list bad files are recorded there and skipped, otherwise the
    first bad file raises ImageError naming it."""
    images, kept = [], []
    for p in paths:
        try:
            images.append(load_image(p))
            kept.append(Path(p))
        except ImageError as e:
            if errors is None:
                raise
            errors.append(str(e))
    return images, kept


def class_embeddings(model, tokenizer, labels: Sequence[str], templates: Sequence[str] = DEFAULT_TEMPLATES
                     ) -> torch.Tensor:
    """(L, P): per label, the normalised mean of its prompt embeddings over all templates."""
    if not labels:
        raise ValueError("zero-shot classification needs at least one label")
    for t in templates:
        if "{}" not in t:
            raise ValueError(f"prompt template {t!r} has no '{{}}' placeholder for the label")
    prompts = [t.format(label) for label in labels for t in templates]
    emb = embed_texts(model, tokenizer, prompts).view(len(labels), len(templates), -1).mean(dim=1)
    return torch.nn.functional.normalize(emb, dim=-1)


@torch.no_grad()
def zero_shot_probs(model, image_emb: torch.Tensor, class_emb: torch.Tensor) -> torch.Tensor:
    """(N, L) label probabilities: softmax of the scaled cosine similarities."""
    return (model.scale() * image_emb @ class_emb.t()).softmax(dim=-1)


def zero_shot_classify(model, tokenizer, images: Sequence, labels: Sequence[str],
                       templates: Sequence[str] = DEFAULT_TEMPLATES) -> list[dict]:
    """[{"label": best label, "scores": {label: probability}}] per image."""
    probs = zero_shot_probs(model, embed_images(model, images), class_embeddings(model, tokenizer, labels, templates))
    return [{"label": labels[int(p.argmax())], "scores": {lab: round(float(q), 6) for lab, q in zip(labels, p)}}
            for p in probs]


def zero_shot_accuracy(model, tokenizer, images: Sequence, targets: Sequence[int], labels: Sequence[str],
                       templates: Sequence[str] = DEFAULT_TEMPLATES) -> dict[str, float]:
    """Top-1 (and top-5 when there are more than 5 labels) accuracy against class indices."""
    from .eval.retrieval import zero_shot_accuracy as acc

    logits = embed_images(model, images) @ class_embeddings(model, tokenizer, labels, templates).t()
    return acc(logits, list(targets), ks=(1, 5) if len(labels) > 5 else (1,))


def evaluate_retrieval(model, tokenizer, groups: Sequence[Sequence], ks: Sequence[int] = (1, 5, 10),
                       first_caption_only: bool = False) -> dict[str, float]:
    """Image<->text recall@K over image groups (records sharing one image, e.g. from
    `recipes.clip_data.load_groups`): every caption is a text query; an image is correct for its own captions."""
    images = [g[0].load() for g in groups]
    texts, owner = [], []
    for i, g in enumerate(groups):
        for r in (g[:1] if first_caption_only else g):
            texts.append(r.text)
            owner.append(i)
    sim = embed_images(model, images) @ embed_texts(model, tokenizer, texts).t()  # (I, T)
    return {**retrieval_recall(sim, owner, ks), "images": float(len(images)), "texts": float(len(texts))}


def list_images(folder: str | Path) -> list[Path]:
    root = Path(folder)
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise FileNotFoundError(f"image folder not found: {root}")
    paths = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTS)
    if not paths:
        raise ValueError(f"{root}: no images with extensions {IMAGE_EXTS}")
    return paths


class EmbeddingIndex:
    """Normalised image embeddings (N, P) of files, searchable by text; saved as safetensors + JSON list."""

    def __init__(self, paths: list[Path], embeddings: torch.Tensor):
        if len(paths) != len(embeddings):
            raise ValueError(f"{len(paths)} paths but {len(embeddings)} embeddings")
        self.paths, self.embeddings = [Path(p) for p in paths], embeddings

    @classmethod
    def build(cls, model, paths: Sequence[str | Path], batch_size: int = 64, errors: list[str] | None = None,
              int8: bool = False, precision: str | None = None):
        """Embed the readable images of `paths` (bad files go to `errors`, or raise); `int8` (or
        `precision="int8"`) encodes with dynamic int8 linear layers (faster on CPU, embeddings within ~1e-3
        cosine of fp32), `precision="bf16"` in bfloat16 (fast on CPUs with AMX / AVX512-BF16)."""
        from .models.fast_encode import FastImageEncoder

        encoder = FastImageEncoder(model, int8, precision)  # "fp32": the model itself, under inference mode
        kept, embs = [], []
        batches = range(0, len(paths), batch_size)
        for i in progress(batches, desc="index images", unit="batch", delay=2, leave=False):
            imgs, ok = load_images(paths[i:i + batch_size], errors)
            if imgs:
                embs.append(embed_images(model, imgs, batch_size, encoder))
                kept += ok
        if not kept:
            raise ValueError("no readable images to index")
        return cls(kept, torch.cat(embs))

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file({"embeddings": self.embeddings.contiguous().cpu()}, str(path))
        path.with_suffix(".json").write_text(json.dumps([str(p) for p in self.paths], indent=0))
        return path

    @classmethod
    def load(cls, path: str | Path) -> "EmbeddingIndex":
        path = Path(path)
        names = path.with_suffix(".json")
        if not path.is_file() or not names.is_file():
            raise FileNotFoundError(f"embedding index not found: {path} (+ {names.name})")
        return cls([Path(p) for p in json.loads(names.read_text())], load_file(str(path))["embeddings"])

    def search(self, query_emb: torch.Tensor, k: int = 10) -> list[tuple[Path, float]]:
        """Top-k (path, cosine similarity) for one normalised (P,) query."""
        if query_emb.shape[-1] != self.embeddings.shape[-1]:
            raise ValueError(f"query width {query_emb.shape[-1]} != index width {self.embeddings.shape[-1]}: "
                             "the index was built with another model")
        scores = self.embeddings @ query_emb.reshape(-1)  # (N,)
        top = scores.topk(min(k, len(scores)))
        return [(self.paths[i], float(s)) for s, i in zip(top.values.tolist(), top.indices.tolist())]


def search_images(model, tokenizer, index: EmbeddingIndex, query: str, k: int = 10) -> list[tuple[Path, float]]:
    return index.search(embed_texts(model, tokenizer, [query])[0], k)


def save_grid(hits: Sequence[tuple[Path, float]], out: str | Path, title: str = "", thumb: int = 128,
              cols: int = 5) -> Path:
    """A PNG contact sheet of the hits (thumbnail + rank and score under each)."""
    from PIL import Image, ImageDraw

    if not hits:
        raise ValueError("no hits to draw")
    rows = (len(hits) + cols - 1) // cols
    label_h, head = 16, 20 if title else 0
    sheet = Image.new("RGB", (cols * thumb, head + rows * (thumb + label_h)), "white")
    draw = ImageDraw.Draw(sheet)
    if title:
        draw.text((4, 4), title[:120], fill="black")
    for n, (path, score) in enumerate(hits):
        r, c = divmod(n, cols)
        x, y = c * thumb, head + r * (thumb + label_h)
        try:
            im = load_image(path)
            im.thumbnail((thumb, thumb))
            sheet.paste(im, (x + (thumb - im.width) // 2, y + (thumb - im.height) // 2))
        except ImageError as e:
            print(f"warning: {e}", file=sys.stderr)
        draw.text((x + 3, y + thumb + 2), f"#{n + 1} {score:.3f} {Path(path).name}"[:26], fill="black")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out)
    return out
