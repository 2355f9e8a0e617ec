"""Render a `Scene` to a PIL image (drawn supersampled, then box-filtered for anti-aliasing)."""

from __future__ import annotations

import math

from PIL import Image, ImageDraw

from lingvis.data.shapes_scene import COLOURS, Scene, ShapeObject

BACKGROUND = (255, 255, 255)


def _polygon(o: ShapeObject, side: float) -> list[tuple[float, float]]:
    """Vertices (pixels) of a non-circle shape whose extent stays within radius ~r of its centre."""
    cx, cy, r = o.cx * side, o.cy * side, o.r * side
    if o.shape == "square":
        h = 0.75 * r
        return [(cx - h, cy - h), (cx + h, cy - h), (cx + h, cy + h), (cx - h, cy + h)]
    if o.shape == "triangle":  # equilateral, pointing up, inscribed in the circle
        return [(cx + r * math.cos(a), cy + r * math.sin(a))
                for a in (math.radians(-90), math.radians(30), math.radians(150))]
    if o.shape == "star":  # five points, inner radius 0.45 r
        pts = []
        for k in range(10):
            rad = r if k % 2 == 0 else 0.45 * r
            a = math.radians(-90 + 36 * k)
            pts.append((cx + rad * math.cos(a), cy + rad * math.sin(a)))
        return pts
    if o.shape == "cross":  # plus sign, arm half-width a third of r
        w, e = r / 3, 0.95 * r
        return [(cx - w, cy - e), (cx + w, cy - e), (cx + w, cy - w), (cx + e, cy - w),
                (cx + e, cy + w), (cx + w, cy + w), (cx + w, cy + e), (cx - w, cy + e),
                (cx - w, cy + w), (cx - e, cy + w), (cx - e, cy - w), (cx - w, cy - w)]
    raise ValueError(f"unknown shape {o.shape!r}")


def render_scene(
    scene: Scene, size: int = 64, supersample: int = 4,
    background: tuple[int, int, int] = BACKGROUND,
) -> Image.Image:
    """Draw the scene as an RGB image of `size` x `size` pixels."""
    if size <= 0 or supersample <= 0:
        raise ValueError(f"size and supersample must be positive, got {size}, {supersample}")
    side = size * supersample
    img = Image.new("RGB", (side, side), background)
    draw = ImageDraw.Draw(img)
    for o in scene.objects:
        if o.colour not in COLOURS:
            raise ValueError(f"unknown colour {o.colour!r}; known: {sorted(COLOURS)}")
        fill = COLOURS[o.colour]
        if o.shape == "circle":
            cx, cy, r = o.cx * side, o.cy * side, o.r * side
            draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)
        else:
            draw.polygon(_polygon(o, side), fill=fill)
    if supersample == 1:
        return img
    return img.resize((size, size), Image.Resampling.BOX)


def render_label_map(scene: Scene, size: int = 32, supersample: int = 4, shapes: tuple[str, ...] | None = None,
                     min_coverage: float = 0.5) -> list[list[int]]:
    """Per-pixel shape labels of the scene at `size` x `size`: 0 for background, 1 + the index of the object's
    shape in `shapes` (default `SHAPES`) where the object covers at least `min_coverage` of the pixel (the same
    supersampled outline `render_scene` draws; the scene's objects do not overlap). Rows of ints (H lists of W)."""
    from lingvis.data.shapes_scene import SHAPES

    shapes = shapes or SHAPES
    side = size * supersample
    labels = [[0] * size for _ in range(size)]
    for o in scene.objects:
        if o.shape not in shapes:
            raise ValueError(f"unknown shape {o.shape!r}; known: {list(shapes)}")
        mask = Image.new("L", (side, side), 0)
        draw = ImageDraw.Draw(mask)
        if o.shape == "circle":
            cx, cy, r = o.cx * side, o.cy * side, o.r * side
            draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=255)
        else:
            draw.polygon(_polygon(o, side), fill=255)
        cover = mask.resize((size, size), Image.Resampling.BOX) if supersample > 1 else mask
        px = cover.load()
        for y in range(size):
            for x in range(size):
                if px[x, y] >= 255 * min_coverage:
                    labels[y][x] = 1 + shapes.index(o.shape)
    return labels
