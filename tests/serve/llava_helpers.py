"""A tiny random llava model folder for the server tests (char tokenizer with an <image> token)."""
from __future__ import annotations

import torch

import lingvis

from .conftest import char_tokenizer


def make_llava_dir(root, name: str = "nano-llava"):
    from lingvis.recipes.llava import with_image_token

    torch.manual_seed(0)
    tok = char_tokenizer()
    image_id = with_image_token(tok)
    base = lingvis.build("llava-nano").config
    model = lingvis.build("llava-nano", text={**base.text, "vocab_size": tok.vocab_size, "block_size": 160},
                          image_token_id=image_id)
    return lingvis.save(model, root / name, tokenizer=tok)
