"""A detector for the shapes world: pixels are assigned to the nearest palette colour (along the white ->
colour line that anti-aliasing mixes on), connected regions become objects, and each region's shape is the
template (circle, square, triangle, star, cross), drawn by the scene renderer at the region's centroid and
area, that best matches the region's coverage. Validated on ground-truth renders (`validate_detector`)
before it scores generated images."""
from __future__ import annotations

import math
import random
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from ..data.shapes_render import _polygon, render_scene
from ..data.shapes_scene import COLOURS, SHAPES, SIZES, ShapeObject, make_scene

WHITE = np.array([255.0, 255.0, 255.0])
NAMES = list(COLOURS)
PALETTE = np.array([COLOURS[c] for c in NAMES], dtype=np.float64)  # (K, 3)
# area of each template in units of r^2 (circle pi r^2; the polygons of `shapes_render._polygon`)
UNIT_AREA = {"circle": math.pi, "square": 1.5 ** 2, "triangle": 3 * math.sqrt(3) / 4,
             "star": 10 * 0.5 * 0.45 * math.sin(math.radians(36)), "cross": 8 * 0.95 / 3 - 4 / 9}


@dataclass(frozen=True)
class Detection:
    colour: str
    shape: str
    cx: float        # centre, normalised to [0, 1] (x right, y down)
    cy: float
    r: float         # radius estimated from the area, normalised
    area: float      # coverage in pixels
    error: float     # template mismatch per pixel (0 = exact)

    @property
    def size(self) -> str:
        return "small" if self.r < (SIZES["small"] + SIZES["large"]) / 2 else "large"


def colour_coverage(img: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per pixel: palette index (H, W), coverage alpha in [0, 1] and distance from that colour's white line."""
    p = img.astype(np.float64)  # (H, W, 3)
    d = WHITE - PALETTE  # (K, 3)
    alpha = np.clip(np.einsum("hwc,kc->hwk", WHITE - p, d) / (d ** 2).sum(1), 0.0, 1.0)  # (H, W, K)
    recon = WHITE - alpha[..., None] * d  # (H, W, K, 3)
    resid = np.linalg.norm(recon - p[:, :, None, :], axis=-1)  # (H, W, K)
    best = resid.argmin(-1)
    rows, cols = np.indices(best.shape)
    return best, alpha[rows, cols, best], resid[rows, cols, best]


def components(mask: np.ndarray) -> list[np.ndarray]:
    """Boolean masks of the 8-connected regions of `mask`."""
    H, W = mask.shape
    seen = np.zeros_like(mask, dtype=bool)
    out = []
    for y0, x0 in zip(*np.nonzero(mask)):
        if seen[y0, x0]:
            continue
        region = np.zeros_like(mask, dtype=bool)
        stack = [(y0, x0)]
        seen[y0, x0] = True
        while stack:
            y, x = stack.pop()
            region[y, x] = True
            for dy in (-1, 0, 1):
                for dx in (-1, 0, 1):
                    v, u = y + dy, x + dx
                    if 0 <= v < H and 0 <= u < W and mask[v, u] and not seen[v, u]:
                        seen[v, u] = True
                        stack.append((v, u))
        out.append(region)
    return out


def template(shape: str, cx: float, cy: float, r: float, side: int, supersample: int = 4) -> np.ndarray:
    """Coverage (side, side) in [0, 1] of one shape drawn as the scene renderer draws it."""
    big = side * supersample
    canvas = Image.new("L", (big, big), 0)
    draw = ImageDraw.Draw(canvas)
    o = ShapeObject(shape, "red", "small", cx, cy, r)
    if shape == "circle":
        draw.ellipse((( cx - r) * big, (cy - r) * big, (cx + r) * big, (cy + r) * big), fill=255)
    else:
        draw.polygon(_polygon(o, big), fill=255)
    return np.asarray(canvas.resize((side, side), Image.Resampling.BOX), dtype=np.float64) / 255.0


def classify_region(cover: np.ndarray, side: int) -> tuple[str, float, float, float, float]:
    """(shape, cx, cy, r, error) of the template that best explains a coverage map of one region."""
    total = cover.sum()
    ys, xs = np.indices(cover.shape)
    cx, cy = (xs * cover).sum() / total + 0.5, (ys * cover).sum() / total + 0.5  # pixel centres
    best = None
    for shape in SHAPES:
        r = math.sqrt(total / UNIT_AREA[shape]) / side
        err = np.abs(template(shape, cx / side, cy / side, r, side) - cover).sum() / total
        if best is None or err < best[4]:
            best = (shape, cx / side, cy / side, r, err)
    return best


def detect_shapes(image, min_alpha: float = 0.5, max_resid: float = 60.0, min_area: float | None = None
                  ) -> list[Detection]:
    """Objects in a shapes-world image (PIL image or (H, W, 3) uint8 array), largest first. Regions covering
    less than `min_area` pixels (default: a third of the smallest shape's area) are ignored as specks."""
    img = np.asarray(image.convert("RGB") if isinstance(image, Image.Image) else image)
    H, W, _ = img.shape
    if H != W:
        raise ValueError(f"the shapes detector expects square images, got {W}x{H}")
    idx, alpha, resid = colour_coverage(img)
    fg = (alpha >= min_alpha) & (resid <= max_resid)
    if min_area is None:
        min_area = UNIT_AREA["triangle"] * (SIZES["small"] - 0.01) ** 2 * H * W / 3
    found = []
    for k, name in enumerate(NAMES):
        for region in components(fg & (idx == k)):
            grown = _grow(region) & (idx == k) & (resid <= max_resid)
            cover = np.where(grown, alpha, 0.0)
            if cover.sum() < min_area:
                continue
            shape, cx, cy, r, err = classify_region(cover, H)
            found.append(Detection(name, shape, cx, cy, r, float(cover.sum()), float(err)))
    return sorted(found, key=lambda d: -d.area)


def _grow(mask: np.ndarray) -> np.ndarray:
    """The region plus its 8-neighbours (the anti-aliased rim below the alpha threshold)."""
    out = mask.copy()
    out[1:] |= mask[:-1]
    out[:-1] |= mask[1:]
    out[:, 1:] |= out[:, :-1].copy()
    out[:, :-1] |= out[:, 1:].copy()
    return out


def scene_matches(detections: list[Detection], objects: list[ShapeObject], pos_tol: float = 0.06) -> bool:
    """Exactly the scene's objects: same count, and each object found with its colour and shape near its centre."""
    if len(detections) != len(objects):
        return False
    left = list(detections)
    for o in objects:
        hit = next((d for d in left if d.colour == o.colour and d.shape == o.shape
                    and math.hypot(d.cx - o.cx, d.cy - o.cy) <= pos_tol), None)
        if hit is None:
            return False
        left.remove(hit)
    return True


def validate_detector(n: int = 500, size: int = 32, seed: int = 0) -> dict:
    """Accuracy of `detect_shapes` on ground-truth renders of random 1-3 object scenes (exact scene match),
    and per-object colour / shape accuracy."""
    rng = random.Random(f"detector/{seed}")
    exact = objects = colour_ok = shape_ok = 0
    failures = []
    for i in range(n):
        scene = make_scene(rng, 1, 3, "allow")
        dets = detect_shapes(render_scene(scene, size))
        ok = scene_matches(dets, scene.objects)
        exact += ok
        if not ok and len(failures) < 5:
            failures.append({"scene": [o.name for o in scene.objects], "found": [f"{d.colour} {d.shape}" for d in dets]})
        for o in scene.objects:
            objects += 1
            near = min(dets, key=lambda d: math.hypot(d.cx - o.cx, d.cy - o.cy), default=None)
            colour_ok += near is not None and near.colour == o.colour
            shape_ok += near is not None and near.shape == o.shape
    return {"images": n, "size": size, "scene_accuracy": exact / n, "colour_accuracy": colour_ok / objects,
            "shape_accuracy": shape_ok / objects, "failures": failures}
