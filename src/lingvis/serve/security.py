"""API-key check and the request-body size limit."""
from __future__ import annotations

import json
import secrets

from fastapi import Request

from .errors import APIError, error_body


def require_api_key(request: Request) -> None:
    """FastAPI dependency: when the server has an API key, demand `Authorization: Bearer KEY`."""
    key = request.app.state.config.api_key
    if not key:
        return
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not secrets.compare_digest(given.strip().encode(), key.encode()):
        what = "no API key was provided" if not header else "the API key is not valid"
        raise APIError(401, f"Unauthorized: {what}; send the header 'Authorization: Bearer <key>'",
                       "authentication_error", None, "invalid_api_key", {"WWW-Authenticate": "Bearer"})


class BodyLimit:
    """ASGI middleware: refuse bodies over `max_bytes` with 413. The body is read (up to the limit)
    before the app runs, so chunked uploads without a Content-Length are bounded too."""

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            return await self._refuse(send, int(declared))
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client left while sending
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_bytes:
                return await self._refuse(send, size)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()  # later calls wait for http.disconnect

        await self.app(scope, replay, send)

    async def _refuse(self, send, size: int) -> None:
        body = json.dumps(error_body(f"request body of {size}+ bytes exceeds the server's limit of "
                                     f"{self.max_bytes} bytes", "invalid_request_error", None,
                                     "request_too_large")).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
