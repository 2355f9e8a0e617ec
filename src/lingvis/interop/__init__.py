"""Hugging Face checkpoint import/export: one module per family, each with an explicit weight-name map.
Importing this package registers every family's loader and exporter (interop/registry.py)."""
from . import gpt2  # noqa: F401  (registers loaders/exporters)
from . import llama  # noqa: F401
from . import bert  # noqa: F401
from . import vilt  # noqa: F401
from . import marian  # noqa: F401
from . import vit, clip  # noqa: F401
from . import vision_encoder_decoder  # noqa: F401
from . import video  # noqa: F401
from . import clip_text  # noqa: F401
from . import diffusers  # noqa: F401
from . import llava  # noqa: F401  (also registers the llava model family)
from .registry import (EXPORTERS, LOADERS, export_hf, export_problem, load_hf, read_hf_weights, register_exporter,
                       register_loader)

__all__ = ["EXPORTERS", "LOADERS", "export_hf", "export_problem", "load_hf", "read_hf_weights", "register_exporter",
           "register_loader"]
