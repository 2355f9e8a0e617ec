"""POST /v1/embeddings and the vision endpoints OpenAI has no shape for: zero-shot classification,
text-to-image search over a folder, captioning and visual question answering."""
from __future__ import annotations

from fastapi import APIRouter, Request

from .adapters.base import CAPTION, EMBEDDINGS, IMAGE_SEARCH, VQA, ZERO_SHOT
from .schemas import CaptionRequest, EmbeddingRequest, ImageSearchRequest, VQARequest, ZeroShotRequest

router = APIRouter()


@router.post("/v1/embeddings")
async def embeddings(req: EmbeddingRequest, request: Request):
    return await request.app.state.hub.get(req.model, EMBEDDINGS).embeddings(req)


@router.post("/v1/images/zero-shot")
async def zero_shot(req: ZeroShotRequest, request: Request):
    return await request.app.state.hub.get(req.model, ZERO_SHOT).zero_shot(req)


@router.post("/v1/images/search")
async def image_search(req: ImageSearchRequest, request: Request):
    return await request.app.state.hub.get(req.model, IMAGE_SEARCH).search(req)


@router.post("/v1/images/captions")
async def captions(req: CaptionRequest, request: Request):
    return await request.app.state.hub.get(req.model, CAPTION).caption(req)


@router.post("/v1/images/answers")
async def answers(req: VQARequest, request: Request):
    return await request.app.state.hub.get(req.model, VQA).answer(req)
