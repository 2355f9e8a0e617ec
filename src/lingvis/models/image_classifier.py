"""Image classifier: a ViT or CNN backbone + a linear head over its pooled embedding."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from .registry import family, make_config, register_family, register_preset


@dataclass
class ImageClassifierConfig:
    backbone_family: str = "vit"
    backbone: dict = field(default_factory=dict)   # fields of the backbone's config
    labels: list[str] = field(default_factory=lambda: ["0", "1"])  # class index -> name
    dropout: float = 0.0

    def __post_init__(self):
        self.labels = [str(x) for x in self.labels]
        if len(self.labels) < 2:
            raise ValueError(f"an image classifier needs at least 2 labels, got {self.labels}")
        if len(set(self.labels)) != len(self.labels):
            raise ValueError(f"duplicate label names in {self.labels}")

    @property
    def num_labels(self) -> int:
        return len(self.labels)


class ImageClassifier(nn.Module):
    """`forward(pixels (B, 3, H, W)) -> logits (B, L)`; `predict` gives label names and probabilities."""

    def __init__(self, config: ImageClassifierConfig):
        super().__init__()
        self.config = c = config
        self.backbone = family(c.backbone_family).model_cls(make_config(c.backbone_family, dict(c.backbone)))
        self.drop = nn.Dropout(c.dropout)
        self.head = nn.Linear(self.backbone.out_dim, c.num_labels)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    @property
    def image_config(self):
        return self.backbone.config

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.head(self.drop(self.backbone(pixels)))  # (B, L)

    @torch.no_grad()
    def predict(self, pixels: torch.Tensor, top_k: int = 1) -> list[list[tuple[str, float]]]:
        """Top-k (label, probability) per image."""
        probs = self.forward(pixels).softmax(-1)  # (B, L)
        p, idx = probs.topk(min(top_k, probs.shape[-1]), dim=-1)
        return [[(self.config.labels[j], float(q)) for q, j in zip(pr, ix)] for pr, ix in zip(p.tolist(), idx.tolist())]


def with_backbone(backbone: nn.Module, labels: list[str], dropout: float = 0.0) -> ImageClassifier:
    """A classifier whose backbone starts from a trained ViT/CNN (or a CLIP's image tower)."""
    import dataclasses

    cfg = ImageClassifierConfig(backbone_family=backbone.family, backbone=dataclasses.asdict(backbone.config),
                                labels=list(labels), dropout=dropout)
    model = ImageClassifier(cfg)
    model.backbone.load_state_dict(backbone.state_dict())
    return model


register_family("image_classifier", ImageClassifierConfig, ImageClassifier, "ViT/CNN + linear head")
register_preset("vit-tiny-classifier", "image_classifier", "vit-tiny backbone + linear head",
                backbone=dict(image_size=64, patch_size=8, dim=192, depth=4, heads=3, mlp_hidden=768))
register_preset("cnn-tiny-classifier", "image_classifier", "cnn-tiny backbone (mean pooling) + linear head",
                backbone_family="cnn", backbone=dict(image_size=64, stem_width=32, stem_stride=2,
                                                     widths=[32, 64, 128, 256], depths=[1, 1, 1, 1], pool="mean"))
