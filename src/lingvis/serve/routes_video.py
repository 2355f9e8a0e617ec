"""Video endpoints: POST /v1/videos/classify (video classifiers) and POST /v1/videos/search (text-to-video
search over the server's --video-folder with a video CLIP)."""
from __future__ import annotations

from fastapi import APIRouter, Request

from .adapters.video import VIDEO_CLASSIFY, VIDEO_SEARCH
from .schemas import VideoClassifyRequest, VideoSearchRequest

router = APIRouter()


@router.post("/v1/videos/classify")
async def classify(req: VideoClassifyRequest, request: Request):
    return await request.app.state.hub.get(req.model, VIDEO_CLASSIFY).classify(req)


@router.post("/v1/videos/search")
async def search(req: VideoSearchRequest, request: Request):
    return await request.app.state.hub.get(req.model, VIDEO_SEARCH).search(req)
