"""lingvis: Transformer language and vision-language models in one small codebase."""
from . import models  # noqa: F401  (registers families)
from .models import video_captioner, video_classifier, video_clip, video_frames  # noqa: F401  (video families)
from ._version import __version__
from .api import load, load_tokenizer, resolve_checkpoint, save
from .embeddings import embed
from .models import build, list_presets
from .text_generation import generate
from .zeroshot import zero_shot_classify

__all__ = ["__version__", "load", "save", "load_tokenizer", "resolve_checkpoint", "build", "list_presets", "generate",
           "zero_shot_classify", "embed"]
