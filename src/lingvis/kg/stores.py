"""Open a knowledge-graph store by its spec: a SPARQL server URL, a folder, or nothing (in memory)."""
from __future__ import annotations

from pathlib import Path

from .store import EmbeddedStore, KGStore
from .store_http import HTTPStore


def open_store(spec: str | Path | None, read_only: bool = False, create: bool = True) -> KGStore:
    """`http(s)://host:port[/path]` -> HTTPStore; a directory -> EmbeddedStore (created unless `create` is
    False or `read_only`); None -> an in-memory store."""
    if spec is None:
        return EmbeddedStore(None)
    s = str(spec)
    if s.startswith(("http://", "https://")):
        return HTTPStore(s, read_only=read_only)
    if (read_only or not create) and not Path(s).is_dir():
        raise FileNotFoundError(f"knowledge graph not found: {s} (build one with `lingvis kg build`)")
    return EmbeddedStore(s, read_only=read_only)
