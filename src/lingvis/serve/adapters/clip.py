"""CLIP dual encoders: zero-shot image classification, text-to-image search over a folder, text embeddings."""
from __future__ import annotations

import threading
from pathlib import Path

from ... import zeroshot
from ..embedding_format import embedding_response, text_inputs
from ..errors import APIError, bad_request
from ..images import decode_image, thumbnail_url
from ..schemas import EmbeddingRequest, ImageSearchRequest, ZeroShotRequest
from .base import EMBEDDINGS, IMAGE_SEARCH, ZERO_SHOT, Adapter
from .registry import register_adapter


def _is_clip(model) -> bool:
    return hasattr(model, "encode_image") and hasattr(model, "encode_text")


class FolderIndex:
    """Image embeddings (and gallery thumbnails) of a folder, rebuilt when its files change."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.signature = None
        self.index: zeroshot.EmbeddingIndex | None = None
        self.thumbs: dict[Path, str] = {}
        self.skipped: list[str] = []
        self._lock = threading.Lock()

    def _scan(self) -> tuple[list[Path], tuple]:
        paths = zeroshot.list_images(self.folder)
        return paths, tuple((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in paths)

    def get(self, model) -> zeroshot.EmbeddingIndex:
        with self._lock:
            paths, sig = self._scan()
            if sig != self.signature:
                errors: list[str] = []
                self.index = zeroshot.EmbeddingIndex.build(model, paths, errors=errors)
                self.thumbs = {p: thumbnail_url(p) for p in self.index.paths}
                self.signature, self.skipped = sig, errors
            return self.index


@register_adapter("clip", _is_clip)
class CLIPAdapter(Adapter):
    capabilities = frozenset({ZERO_SHOT, EMBEDDINGS})

    def __init__(self, name, model, tokenizer, path, config):
        super().__init__(name, model, tokenizer, path, config)
        self.folder = FolderIndex(Path(config.image_folder)) if config.image_folder else None
        if self.folder is not None:
            self.capabilities = self.capabilities | {IMAGE_SEARCH}

    def describe(self) -> dict:
        return {**super().describe(), "image_folder": str(self.folder.folder) if self.folder else None}

    async def zero_shot(self, req: ZeroShotRequest) -> dict:
        if "{}" not in req.template:
            raise bad_request("template must contain '{}' where the label goes", "template")
        image = decode_image(req.image, "image", self.config.max_image_pixels)

        def work():
            img = zeroshot.embed_images(self.model, [image])  # (1, P)
            cls = zeroshot.class_embeddings(self.model, self.tokenizer, req.labels, [req.template])  # (L, P)
            return zeroshot.zero_shot_probs(self.model, img, cls)[0].tolist()

        probs = await self.blocking(work)
        ranked = sorted(zip(req.labels, probs), key=lambda x: -x[1])
        return {"object": "zero_shot_classification", "model": self.name, "label": ranked[0][0],
                "data": [{"label": lab, "score": p} for lab, p in ranked]}

    async def search(self, req: ImageSearchRequest) -> dict:
        if self.folder is None:
            raise APIError(400, "the server has no image folder; start it with --image-folder DIR",
                           "invalid_request_error", None, "no_image_folder")

        def work():
            try:
                index = self.folder.get(self.model)
            except (FileNotFoundError, ValueError) as e:
                raise APIError(500, f"cannot index the image folder: {e}", "server_error", None,
                               "image_folder_error") from e
            return zeroshot.search_images(self.model, self.tokenizer, index, req.query, req.top_k)

        hits = await self.blocking(work)
        root = self.folder.folder
        return {"object": "list", "model": self.name, "query": req.query,
                "data": [{"file": str(p.relative_to(root)) if p.is_relative_to(root) else p.name,
                          "score": s, "thumbnail": self.folder.thumbs.get(p, "")} for p, s in hits]}

    async def embeddings(self, req: EmbeddingRequest) -> dict:
        texts = text_inputs(req.input)
        vectors = await self.blocking(lambda: zeroshot.embed_texts(self.model, self.tokenizer, texts))
        used = int(self.model.tokenize(self.tokenizer, texts)[1].sum())  # tokens the text tower saw
        return embedding_response(self.name, vectors, req.encoding_format, used, req.dimensions)
