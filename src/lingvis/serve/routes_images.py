"""POST /v1/images/generations in OpenAI's shape (`prompt`, `n`, `size`, `response_format`) with the
extensions `seed`, `steps`, `guidance_scale`, `negative_prompt` and `scheduler`. Bad values get a 400 that
names the field."""
from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field, StrictStr, field_validator

from ..diffusion.sampling import MAX_STEPS
from .adapters.text_to_image import IMAGE_GENERATION, MAX_IMAGES

router = APIRouter()


class ImageGenerationRequest(BaseModel):
    prompt: StrictStr = Field(..., max_length=4000)
    model: str | None = None
    n: int = Field(1, ge=1, le=MAX_IMAGES)
    size: str | None = None
    response_format: Literal["b64_json", "url"] = "b64_json"
    quality: str | None = None
    style: str | None = None
    user: str | None = None
    seed: int | None = Field(None, ge=0, le=2 ** 63 - 1, description="lingvis extension: same seed, same images")
    steps: int = Field(25, ge=1, le=MAX_STEPS, description="lingvis extension: sampling steps")
    guidance_scale: float = Field(4.0, ge=0.0, le=50.0, description="lingvis extension: classifier-free guidance")
    negative_prompt: StrictStr | None = Field(None, max_length=4000, description="lingvis extension")
    scheduler: str | None = Field(None, description="lingvis extension: ddim | dpm++ | euler | ddpm | flow-euler")

    @field_validator("prompt")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must be a non-empty prompt")
        return v


@router.post("/v1/images/generations")
async def generations(req: ImageGenerationRequest, request: Request):
    return await request.app.state.hub.get(req.model, IMAGE_GENERATION).generate(req)
