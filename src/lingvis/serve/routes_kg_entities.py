"""What the web page's knowledge-graph panel reads (read-only, behind the API key like every /v1 route):
`GET /v1/kg/summary` (counts), `GET /v1/kg/entities?q=` (search), `GET /v1/kg/entities/{id}` (the entity page:
attributes, source sentences with mention spans, image mentions, triples with provenance, linked entities) and
`GET /v1/kg/crops/{mention}` (the PNG crop of an image mention's box). Crops are cut only from images the graph
registers (an image source's kg:fileName), looked up by mention key, inside the served image folder: a
request never names a path."""
from __future__ import annotations

import io
from pathlib import Path

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from .errors import APIError

router = APIRouter()


def kg_store(request: Request):
    """The served graph's store (404 when the server has none)."""
    store = getattr(request.app.state, "kg_store", None)
    if store is None:
        raise APIError(404, "this server has no knowledge graph (start it with one)", "invalid_request_error",
                       None, "not_found")
    return store


def _not_found(message: str, param: str | None = None) -> APIError:
    return APIError(404, message, "invalid_request_error", param, "not_found")


@router.get("/v1/kg/summary")
async def summary(request: Request):
    from ..kg.entity_view import graph_summary

    store = kg_store(request)
    out = await run_in_threadpool(graph_summary, store)
    return {**out, "crops": request.app.state.config.kg.images is not None}


@router.get("/v1/kg/entities")
async def search(request: Request, q: str = Query("", max_length=200, description="words to match"),
                 limit: int = Query(50, ge=1, le=500)):
    from ..kg.entity_view import search_entities

    store = kg_store(request)
    return {"query": q, "data": await run_in_threadpool(search_entities, store, q, limit)}


@router.get("/v1/kg/entities/{entity_id:path}")
async def entity(entity_id: str, request: Request):
    from ..kg.entity_view import EntityNotFound, entity_page

    store = kg_store(request)
    try:
        return await run_in_threadpool(entity_page, store, entity_id)
    except EntityNotFound as e:
        raise _not_found(str(e), "entity") from e


def _crop_png(root: Path, file: str, box, max_pixels: int, margin: float = 0.1) -> bytes:
    """The PNG of `box` (normalised, widened by `margin` of its size, clamped to the image) of `root/file`;
    `file` must stay inside `root` (it comes from the graph, which may have been imported from anywhere)."""
    from ..data.images import ImageError, load_image

    root = root.resolve()
    path = (root / file).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        raise _not_found(f"the image {file!r} of this mention is not in the served image folder", "mention")
    try:
        im = load_image(path, max_pixels=max_pixels)
    except ImageError as e:
        raise APIError(422, str(e), "invalid_request_error", "mention", "invalid_image") from e
    W, H = im.size
    x0, y0, x1, y1 = box
    mx, my = (x1 - x0) * margin, (y1 - y0) * margin
    px = (max(0, int((x0 - mx) * W)), max(0, int((y0 - my) * H)),
          min(W, round((x1 + mx) * W)), min(H, round((y1 + my) * H)))
    if px[2] <= px[0] or px[3] <= px[1]:
        raise APIError(422, f"the box {list(box)} of this mention is empty in {file!r} ({W}x{H})",
                       "invalid_request_error", "mention", "invalid_box")
    buf = io.BytesIO()
    im.crop(px).save(buf, format="PNG")
    return buf.getvalue()


@router.get("/v1/kg/crops/{mention}")
async def crop(mention: str, request: Request):
    from ..kg.entity_view import mention_crop

    store = kg_store(request)
    cfg = request.app.state.config
    if cfg.kg.images is None:
        raise _not_found("this server has no image folder for the graph's images (start it with --images DIR)")
    found = await run_in_threadpool(mention_crop, store, mention)
    if found is None:
        raise _not_found(f"no image mention {mention!r} with a box in the graph", "mention")
    file, box = found
    png = await run_in_threadpool(_crop_png, Path(cfg.kg.images), file, box, cfg.max_image_pixels)
    return Response(png, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})
