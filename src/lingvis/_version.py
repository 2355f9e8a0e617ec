"""The one place the lingvis version is written (pyproject.toml reads it)."""
__version__ = "0.2.0"
