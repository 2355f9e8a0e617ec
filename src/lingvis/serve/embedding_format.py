"""The /v1/embeddings response body: float lists or base64 of little-endian float32, as OpenAI sends."""
from __future__ import annotations

import base64

import torch

from .errors import bad_request


def embedding_response(model: str, vectors: torch.Tensor, encoding: str, prompt_tokens: int,
                       dimensions: int | None = None) -> dict:
    """`vectors` is (N, D)."""
    D = vectors.shape[-1]
    if dimensions is not None and dimensions != D:
        raise bad_request(f"model {model!r} gives {D}-dimensional embeddings; dimensions={dimensions} "
                          "is not supported", "dimensions", "unsupported_parameter")
    arr = vectors.detach().float().cpu().numpy()
    data = []
    for i, row in enumerate(arr):
        emb = base64.b64encode(row.astype("<f4").tobytes()).decode() if encoding == "base64" else row.tolist()
        data.append({"object": "embedding", "index": i, "embedding": emb})
    return {"object": "list", "data": data, "model": model,
            "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens}}


def text_inputs(inp, param: str = "input") -> list[str]:
    """The request's `input` as a list of strings (token-id inputs are refused: these models embed text)."""
    items = [inp] if isinstance(inp, str) else list(inp)
    if not items:
        raise bad_request(f"{param} is empty", param)
    for i, item in enumerate(items):
        if not isinstance(item, str):
            raise bad_request(f"{param}[{i}]: this model embeds text; send strings, not token ids", param)
        if not item:
            raise bad_request(f"{param}[{i}] is an empty string", param)
    return items


