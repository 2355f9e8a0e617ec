"""Images in requests (data URLs or bare base64, with byte and pixel limits) and gallery thumbnails."""
from __future__ import annotations

import base64
import binascii
import io
import re

from PIL import Image

from ..data.images import ImageError, load_image, load_image_bytes
from .errors import bad_request

_DATA_URL = re.compile(r"^data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?:;[\w-]+=[\w.-]+)*(?P<b64>;base64)?,", re.I)


def decode_image(data: str, param: str, max_pixels: int) -> Image.Image:
    """A data: URL (or bare base64) -> RGB image. Remote URLs are refused: the server fetches nothing."""
    text = data.strip()
    if text.startswith(("http://", "https://", "file:")):
        raise bad_request(f"{param}: remote image URLs are not fetched (image chats may use the hosts an operator "
                          "allows with --allow-image-hosts); send the image as a data:image/...;base64 URL", param,
                          "unsupported_image_url")
    m = _DATA_URL.match(text)
    if m:
        if not m.group("b64"):
            raise bad_request(f"{param}: only base64 data URLs are accepted", param, "invalid_image")
        text = text[m.end():]
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as e:
        raise bad_request(f"{param}: not valid base64 image data ({e})", param, "invalid_image") from e
    if not raw:
        raise bad_request(f"{param}: the image is empty", param, "invalid_image")
    try:
        return load_image_bytes(raw, param, max_pixels=max_pixels)
    except ImageError as e:
        code = "image_too_large" if "max_pixels" in str(e) or "decompression" in str(e).lower() else "invalid_image"
        raise bad_request(str(e), param, code) from e


def image_parts(messages) -> list[tuple[str, str]]:
    """(param name, url) of every image part in chat messages."""
    out = []
    for i, m in enumerate(messages):
        if isinstance(m.content, list):
            for j, p in enumerate(m.content):
                if p.type == "image_url":
                    out.append((f"messages[{i}].content[{j}].image_url", p.image_url.url))
    return out


def thumbnail_url(path, size: int = 160) -> str:
    """A small JPEG of an image file as a data URL (for the search gallery)."""
    try:
        im = load_image(path)
    except ImageError:
        return ""
    im.thumbnail((size, size), Image.Resampling.BICUBIC)
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()
