"""VQA examples for fine-tuning: the training split, and a validation split (given, a folder's `val`, or
10% of the training data)."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ..data.vqa import VQAExample, read_vqa
from .fusion_common import ensure_shapes

if TYPE_CHECKING:
    from .vqa import VQAFinetuneArgs


def load_examples(args: VQAFinetuneArgs) -> tuple[list[VQAExample], list[VQAExample], Path | None]:
    """(train, val, folder) where folder holds further splits when the data is a split folder."""
    data = Path(args.data) if args.data else ensure_shapes(Path(args.out) / "data", args.shapes_train,
                                                          args.shapes_eval)
    train = read_vqa(data, "train", args.image_root, args.skip_bad)
    if args.val_data:
        return train, read_vqa(args.val_data, "val", args.image_root, args.skip_bad), None
    if data.is_dir():
        return train, read_vqa(data, "val", args.image_root, args.skip_bad), data
    g = torch.Generator().manual_seed(0)
    perm = torch.randperm(len(train), generator=g).tolist()
    n_val = max(1, len(train) // 10)
    return [train[i] for i in perm[n_val:]], [train[i] for i in perm[:n_val]], None
