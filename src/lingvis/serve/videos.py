"""Videos in requests: base64 data URLs (or bare base64) within a byte limit, or http(s) URLs of the hosts the
operator allows for images (`--allow-image-hosts`), decoded with PyAV from a private temporary file. A video
that cannot be decoded is a 400 naming the request field; nothing is kept after the request."""
from __future__ import annotations

import base64
import binascii
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

from .config import ServeConfig
from .errors import APIError, bad_request

T = TypeVar("T")
_DATA_URL = re.compile(r"^data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?:;[\w-]+=[\w.-]+)*(?P<b64>;base64)?,", re.I)


def decode_video_bytes(data: str, param: str, limit: int) -> bytes:
    """A data: URL or bare base64 -> the file's bytes (remote URLs are handled by `load_video_part`)."""
    text = data.strip()
    if text.startswith(("http://", "https://", "file:")):
        raise bad_request(f"{param}: remote video URLs are not fetched here; send the video as a "
                          "data:video/...;base64 URL", param, "unsupported_video_url")
    m = _DATA_URL.match(text)
    if m:
        if not m.group("b64"):
            raise bad_request(f"{param}: only base64 data URLs are accepted", param, "invalid_video")
        text = text[m.end():]
    if len(text) * 3 // 4 > limit:
        raise _too_large(param, limit)
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as e:
        raise bad_request(f"{param}: not valid base64 video data ({e})", param, "invalid_video") from e
    if not raw:
        raise bad_request(f"{param}: the video is empty", param, "invalid_video")
    return raw


async def load_video_part(url: str, param: str, config: ServeConfig) -> bytes:
    """The bytes of a video_url part: a data: URL, or a remote URL of a host allowed for images."""
    from .image_fetch import _fetch, host_allowed

    text = url.strip()
    if not text.lower().startswith(("http://", "https://")):
        return decode_video_bytes(text, param, config.max_video_bytes)
    host = urlsplit(text).hostname
    if not host_allowed(host, config.allow_image_hosts):
        allowed = ", ".join(config.allow_image_hosts) or "none"
        raise bad_request(f"{param}: remote video URLs are not fetched from host {host!r} (allowed hosts: {allowed}; "
                          "the operator sets them with --allow-image-hosts); send the video as a "
                          "data:video/...;base64 URL", param, "unsupported_video_url")
    return await _fetch(text, param, config.max_video_bytes)


def with_video_file(raw: bytes, param: str, fn: Callable[[Path], T]) -> T:
    """Run `fn(path)` on the bytes written to a private temporary file; decoding errors become a 400."""
    from ..video.dataset import VIDEO_ERRORS

    with tempfile.TemporaryDirectory(prefix="lingvis-video-") as tmp:
        path = Path(tmp) / "video"
        path.write_bytes(raw)
        try:
            return fn(path)
        except VIDEO_ERRORS as e:
            raise bad_request(f"{param}: the video cannot be decoded: {str(e).replace(str(path), 'the video')}",
                              param, "invalid_video") from e


def video_frame_images(raw: bytes, param: str, n: int) -> list:
    """`n` frames from the centres of equal segments of the video, as PIL images in time order."""
    from ..video.clips import frame_images

    return with_video_file(raw, param, lambda p: frame_images(p, n))


def media_parts(messages) -> list[tuple[str, str, str]]:
    """(kind 'image' | 'video', param name, url) of every image and video part of chat messages, in order."""
    out = []
    for i, m in enumerate(messages):
        if isinstance(m.content, list):
            for j, p in enumerate(m.content):
                if p.type == "image_url":
                    out.append(("image", f"messages[{i}].content[{j}].image_url", p.image_url.url))
                elif p.type == "video_url":
                    out.append(("video", f"messages[{i}].content[{j}].video_url", p.video_url.url))
    return out


def _too_large(param: str, limit: int) -> APIError:
    return APIError(413, f"{param}: the video is larger than the server's video limit of {limit} bytes",
                    "invalid_request_error", param, "video_too_large")
