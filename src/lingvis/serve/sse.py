"""Server-sent events: `data: {json}` lines, `data: [DONE]` at the end, and cleanup when the client
goes away (Starlette closes the generator, whose `finally` cancels the generation)."""
from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable

from fastapi.responses import StreamingResponse

from .errors import APIError, error_body

DONE = "data: [DONE]\n\n"


def sse(obj: dict) -> str:
    return f"data: {json.dumps(obj, ensure_ascii=False)}\n\n"


def event_stream(chunks: AsyncIterator[dict | list[dict]], on_close: Callable[[], None]) -> StreamingResponse:
    """Stream `chunks` as SSE (a list of chunks goes out in one write); an error while streaming becomes a
    final `{"error": ...}` event."""
    async def body() -> AsyncIterator[str]:
        try:
            async for chunk in chunks:
                yield "".join(map(sse, chunk)) if isinstance(chunk, list) else sse(chunk)
        except APIError as e:
            yield sse(e.body())
        except Exception as e:  # the status line is already sent: report in-band
            yield sse(error_body(f"internal error: {type(e).__name__}: {e}", "server_error", None, "internal_error"))
        else:
            yield DONE
        finally:
            on_close()

    return StreamingResponse(body(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
