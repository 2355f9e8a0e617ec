"""Optional dependencies: imported where used, with an error that names the extra to install."""
from __future__ import annotations

import importlib
from types import ModuleType

# import name -> (pip distribution, lingvis extra that installs it)
OPTIONAL = {
    "sacrebleu": ("sacrebleu", "eval"),
    "pycocoevalcap": ("pycocoevalcap", "test"),  # parity reference of lingvis.eval.captioning
    "sklearn": ("scikit-learn", "test"),          # parity reference of lingvis.eval.classification; digits
    "fastapi": ("fastapi", "serve"),
    "uvicorn": ("uvicorn", "serve"),
    "httpx": ("httpx", "serve"),
    "prometheus_client": ("prometheus-client", "serve"),
    "transformers": ("transformers", "ref"),
    "sentence_transformers": ("sentence-transformers", "ref"),
    "sentencepiece": ("sentencepiece", "ref"),
    "av": ("av", "video"),
    "pyoxigraph": ("pyoxigraph", "kg"),
    "gguf": ("gguf", "gguf"),
    "diffusers": ("diffusers", "ref"),
    "tensorboard": ("tensorboard", "track"),
    "wandb": ("wandb", "track"),
    "peft": ("peft", "ref"),
}


class MissingDependency(ImportError):
    """An optional library is not installed; the message names the pip extra that installs it."""


def require(name: str, feature: str = "") -> ModuleType:
    """Import `name` (e.g. 'sacrebleu' or 'sacrebleu.metrics'), or raise `MissingDependency` naming the
    lingvis extra to install."""
    try:
        return importlib.import_module(name)
    except ImportError as e:
        top = name.split(".")[0]
        dist, extra = OPTIONAL.get(top, (top, None))
        what = f" for {feature}" if feature else ""
        hint = f"pip install 'lingvis[{extra}]'" if extra else f"pip install {dist}"
        raise MissingDependency(f"{dist} is needed{what} but is not installed: {hint}") from e
