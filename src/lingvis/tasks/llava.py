"""LLaVA training: conversations (with images or text-only) as (input ids, labels) with the loss on the
assistant's tokens only; batches of right-padded rows plus every image of the batch in row order."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import Dataset

from ..data.images import load_image
from ..data.llava_inputs import IGNORE, IMAGE_TOKEN, Encoded, encode_conversation
from ..train.task import Task


@dataclass
class LlavaSample:
    ids: list[int]
    labels: list[int]
    pixels: list[torch.Tensor]  # (3, S, S) per image, in placeholder order
    weights: list[float] | None = None  # loss weight per label (None: all 1)


class LlavaConversations(Dataset):
    """Conversations (`data.llava_json.Conversation`-like: `.images` paths or PIL loaders, `.messages`)
    encoded once with `tokenizer`'s chat template; images are loaded and transformed on access.
    Conversations with no assistant token left within `max_len` are dropped (counted in `dropped`)."""

    def __init__(self, conversations: Sequence, tokenizer, model, transform: Callable, max_len: int | None = None,
                 cache_images: bool = True):
        self.transform = transform
        self.cache: dict | None = {} if cache_images else None  # transformed images, by path or loader
        self.items: list[tuple[Encoded, list]] = []
        self.dropped = 0
        c = model.config
        placeholder = tokenizer.id_to_token(c.image_token_id) or IMAGE_TOKEN
        for conv in conversations:
            enc = encode_conversation(tokenizer, conv.messages, c.image_token_id, model.tokens_per_image,
                                      max_len or model.context_length, len(conv.images), placeholder)
            if enc is None:
                self.dropped += 1
                continue
            self.items.append((enc, list(conv.images)[:enc.n_images]))
        if not self.items:
            raise ValueError(f"no conversation fits the context of {max_len or model.context_length} tokens "
                             "with an assistant token to learn")

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> LlavaSample:
        enc, images = self.items[i]
        return LlavaSample(enc.ids, enc.labels, [self._pixels(im) for im in images], enc.weights)

    def _pixels(self, image) -> torch.Tensor:
        key = id(image) if callable(image) else str(image)
        if self.cache is not None and key in self.cache:
            return self.cache[key]
        pixels = self.transform(image() if callable(image) else load_image(image))  # (3, S, S)
        if self.cache is not None:
            self.cache[key] = pixels
        return pixels


def weighted_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """sum(w * ce) / sum(w) over the labelled tokens: logits (B, T, V), labels (B, T) (IGNORE = no loss),
    weights (B, T)."""
    ce = F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), ignore_index=IGNORE, reduction="none")
    w = weights.flatten().to(ce.dtype) * (labels.flatten() != IGNORE)  # (B * T,)
    return (ce * w).sum() / w.sum().clamp_min(1e-12)


class LlavaTask(Task):
    """Batches {'input_ids', 'labels', 'pixel_values' (or None), 'loss_weights' (or None)}; the loss is the LM's
    fused cross-entropy over assistant tokens (`labels` -100 elsewhere, right padding included), or, when a
    sample of the batch has weighted tokens, the weighted mean sum(w * ce) / sum(w) over the assistant tokens."""

    name = "llava"
    metric_for_best = "loss"

    def __init__(self, pad_id: int = 0):
        self.pad_id = pad_id

    def collate(self, samples: list[LlavaSample]) -> dict:
        samples = [s for s in samples if s is not None]
        T = max(len(s.ids) for s in samples)
        ids = torch.full((len(samples), T), self.pad_id, dtype=torch.long)
        labels = torch.full((len(samples), T), IGNORE, dtype=torch.long)
        for i, s in enumerate(samples):
            ids[i, :len(s.ids)] = torch.tensor(s.ids)
            labels[i, :len(s.labels)] = torch.tensor(s.labels)
        weights = None
        if any(s.weights is not None for s in samples):
            weights = torch.ones((len(samples), T))  # (B, T)
            for i, s in enumerate(samples):
                if s.weights is not None:
                    weights[i, :len(s.weights)] = torch.tensor(s.weights)
        pixels = [p for s in samples for p in s.pixels]
        return {"input_ids": ids, "labels": labels, "pixel_values": torch.stack(pixels) if pixels else None,
                "loss_weights": weights}

    def loss(self, model: nn.Module, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        # right padding needs no attention mask in a causal model: real tokens never attend to later pads
        weights = batch.get("loss_weights")
        if weights is None:
            loss = model(batch["input_ids"], labels=batch["labels"], pixel_values=batch["pixel_values"])
            return loss, {}
        logits = model(batch["input_ids"], pixel_values=batch["pixel_values"])  # (B, T, V)
        return weighted_cross_entropy(logits, batch["labels"], weights), {}

    def tokens_in(self, batch: dict) -> int:
        return int((batch["labels"] != IGNORE).sum())
