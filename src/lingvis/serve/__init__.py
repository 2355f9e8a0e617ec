"""HTTP serving: an OpenAI-compatible API with continuous batching, vision endpoints and a web page."""
from .app import create_app, load_models, parse_model_arg
from .config import ServeConfig

__all__ = ["ServeConfig", "create_app", "load_models", "parse_model_arg"]
