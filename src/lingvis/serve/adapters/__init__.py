"""Server adapters, one per model kind. Importing this package registers every kind (order matters:
the first adapter whose test matches a model serves it)."""
from . import video  # noqa: F401  (before clip: a video CLIP also encodes images and texts)
from . import captioner, causal_lm, clip, embedding, llava, translation, vqa  # noqa: F401
from . import text_to_image  # noqa: F401
from .base import Adapter, WorkGate
from .registry import adapter_class, adapter_kinds, open_model, register_adapter

__all__ = ["Adapter", "WorkGate", "adapter_class", "adapter_kinds", "open_model", "register_adapter"]
