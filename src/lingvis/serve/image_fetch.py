"""Images of chat content parts: data: URLs decoded in place; http(s) URLs fetched only from the hosts the
operator allows (`--allow-image-hosts`), without redirects, within the byte and pixel limits."""
from __future__ import annotations

from urllib.parse import urlsplit

from PIL import Image

from ..data.images import ImageError, load_image_bytes
from .config import ServeConfig
from .errors import APIError, bad_request
from .images import decode_image

FETCH_TIMEOUT_S = 10.0


def host_allowed(host: str | None, allowed: list[str]) -> bool:
    return bool(host) and host.lower() in {h.lower() for h in allowed}


async def load_image_part(url: str, param: str, config: ServeConfig) -> Image.Image:
    """The RGB image of an image_url part: a data: URL, or a remote URL of an allowed host."""
    text = url.strip()
    if not text.lower().startswith(("http://", "https://")):
        return decode_image(text, param, config.max_image_pixels)
    host = urlsplit(text).hostname
    if not host_allowed(host, config.allow_image_hosts):
        allowed = ", ".join(config.allow_image_hosts) or "none"
        raise bad_request(f"{param}: remote image URLs are not fetched from host {host!r} (allowed image hosts: "
                          f"{allowed}; the operator sets them with --allow-image-hosts); send the image as a "
                          "data:image/...;base64 URL", param, "unsupported_image_url")
    raw = await _fetch(text, param, config.max_image_bytes)
    try:
        return load_image_bytes(raw, param, max_pixels=config.max_image_pixels)
    except ImageError as e:
        raise bad_request(str(e), param, "image_too_large" if "max_pixels" in str(e) else "invalid_image") from e


async def _fetch(url: str, param: str, limit: int) -> bytes:
    import httpx

    try:
        async with httpx.AsyncClient(follow_redirects=False, timeout=FETCH_TIMEOUT_S) as client:
            async with client.stream("GET", url) as response:
                if response.status_code != 200:
                    raise bad_request(f"{param}: fetching {url} gave HTTP {response.status_code} (redirects are not "
                                      "followed)", param, "image_fetch_failed")
                declared = response.headers.get("content-length")
                if declared and declared.isdigit() and int(declared) > limit:
                    raise _too_large(param, url, limit)
                chunks, size = [], 0
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > limit:
                        raise _too_large(param, url, limit)
                    chunks.append(chunk)
    except httpx.HTTPError as e:
        raise bad_request(f"{param}: fetching {url} failed: {type(e).__name__}: {e}", param,
                          "image_fetch_failed") from e
    if not size:
        raise bad_request(f"{param}: {url} returned an empty body", param, "invalid_image")
    return b"".join(chunks)


def _too_large(param: str, url: str, limit: int) -> APIError:
    return APIError(413, f"{param}: the image at {url} is larger than the server's image limit of {limit} bytes",
                    "invalid_request_error", param, "image_too_large")
