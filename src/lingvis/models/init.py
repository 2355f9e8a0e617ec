"""Weight initialisation shared by the families trained from scratch."""
from __future__ import annotations

from torch import nn


def init_normal(m: nn.Module, std: float = 0.02) -> None:
    """GPT-2 / BERT style: linear, convolution and embedding weights ~ N(0, std), biases zero
    (use with `model.apply`)."""
    if isinstance(m, (nn.Linear, nn.Conv2d, nn.Embedding)):
        nn.init.normal_(m.weight, std=std)
        if not isinstance(m, nn.Embedding) and m.bias is not None:
            nn.init.zeros_(m.bias)
