"""HTTP serving: an OpenAI-compatible API with continuous batching, vision endpoints and a web page."""
from .._optional import require

require("fastapi", "the server")  # a clear error naming the extra, before the imports below

from .app import create_app, load_models, parse_model_arg  # noqa: E402
from .config import ServeConfig  # noqa: E402

__all__ = ["ServeConfig", "create_app", "load_models", "parse_model_arg"]
