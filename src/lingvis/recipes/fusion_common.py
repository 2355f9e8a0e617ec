"""Pieces shared by the fusion pretraining and VQA recipes: built-in shapes data and the tokenizer."""
from __future__ import annotations

import json
from pathlib import Path

from .. import api
from ..data.shapes import generate_shapes
from ..train.checkpoint import resumable

SHAPES_MARKER = "lingvis_shapes.json"


def ensure_shapes(root: Path, n_train: int = 4000, n_eval: int = 500, image_size: int = 64, seed: int = 0) -> Path:
    """Generate the synthetic shapes splits (captions + VQAv2 files) under `root` unless the same ones are
    already there (a marker file written last records the parameters)."""
    params = {"n_train": n_train, "n_eval": n_eval, "image_size": image_size, "seed": seed}
    marker = root / SHAPES_MARKER
    if marker.is_file() and json.loads(marker.read_text()) == params:
        return root
    generate_shapes(root, n_train=n_train, n_val=n_eval, n_test=n_eval, image_size=image_size, seed=seed)
    marker.write_text(json.dumps(params))
    return root


def make_tokenizer(out: str | Path, source: str | None, texts: list[str], vocab_size: int, resume: bool):
    """The run's tokenizer when resuming, else the one at `source` (a tokenizer or model folder), else a
    BERT-style WordPiece trained on `texts`."""
    run = Path(out)
    if resumable(run, resume):
        return api.load_tokenizer(run)
    if source:
        return api.load_tokenizer(source)
    from ..tokenizers.wordpiece import train_wordpiece

    return train_wordpiece(texts, vocab_size)
