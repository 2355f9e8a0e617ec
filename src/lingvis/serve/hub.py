"""The served models by name; lookups raise the right API errors."""
from __future__ import annotations

import time

from .adapters.base import Adapter
from .errors import APIError, model_not_found


class ModelHub:
    def __init__(self, adapters: list[Adapter]):
        names = [a.name for a in adapters]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"two models are served under the name {sorted(dup)[0]!r}; "
                             "name them with --model NAME=DIR")
        self.adapters = {a.name: a for a in adapters}
        self.created = int(time.time())

    def names(self) -> list[str]:
        return list(self.adapters)

    def get(self, name: str | None, capability: str) -> Adapter:
        """The model called `name`, or (when no name is given) the first one that can do `capability`."""
        if not name:
            for a in self.adapters.values():
                if capability in a.capabilities:
                    return a
            raise APIError(404, f"no served model supports {capability}; served: "
                           f"{', '.join(f'{a.name} ({a.kind})' for a in self.adapters.values())}",
                           "invalid_request_error", "model", "model_not_found")
        if name not in self.adapters:
            raise model_not_found(name, self.names())
        adapter = self.adapters[name]
        if capability not in adapter.capabilities:
            raise APIError(400, f"model {name!r} is a {adapter.kind} model and does not support {capability} "
                           f"(it supports: {', '.join(sorted(adapter.capabilities))})",
                           "invalid_request_error", "model", "unsupported_model")
        return adapter

    def listing(self) -> dict:
        return {"object": "list", "data": [
            {"id": a.name, "object": "model", "created": self.created, "owned_by": "lingvis", **a.describe()}
            for a in self.adapters.values()]}

    def start(self) -> None:
        for a in self.adapters.values():
            a.start()

    def close(self) -> None:
        for a in self.adapters.values():
            a.close()
