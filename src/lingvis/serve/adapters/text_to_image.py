"""Text-to-image diffusion models: POST /v1/images/generations (OpenAI's images API, plus seed, steps,
guidance_scale, negative_prompt and scheduler)."""
from __future__ import annotations

import base64
import io
import random
import time

from ...diffusion.sampling import MAX_STEPS, generate_images
from ..errors import bad_request
from .base import Adapter
from .registry import register_adapter

IMAGE_GENERATION = "image_generation"
MAX_IMAGES = 8  # images per request


def _param_of(message: str) -> str | None:
    """The request field a sampling error is about ('steps: ...' names steps; scheduler errors name no field)."""
    head = message.split(":", 1)[0]
    if head in ("prompt", "negative_prompt", "steps", "n", "size", "guidance_scale"):
        return head
    return "scheduler" if "scheduler" in message or "sampled with" in message else None


def _png_base64(image) -> str:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


@register_adapter("text_to_image", lambda m: getattr(m, "family", None) == "text_to_image")
class TextToImageAdapter(Adapter):
    capabilities = frozenset({IMAGE_GENERATION})

    def sizes(self) -> list[str]:
        """Square sizes served: the model's own and twice it (the UNet is convolutional)."""
        s = self.model.image_size
        return [f"{s}x{s}", f"{2 * s}x{2 * s}"]

    def describe(self) -> dict:
        return {**super().describe(), "sizes": self.sizes(), "max_images": MAX_IMAGES, "max_steps": MAX_STEPS,
                "scheduler": self.model.config.scheduler.get("_class_name")}

    def _side(self, size: str | None) -> int:
        if size in (None, "auto"):
            return self.model.image_size
        if size not in self.sizes():
            raise bad_request(f"size {size!r} is not supported by {self.name}; use one of {self.sizes()}", "size",
                              "unsupported_size")
        return int(size.split("x")[0])

    async def generate(self, req) -> dict:
        side = self._side(req.size)
        seed = req.seed if req.seed is not None else random.SystemRandom().randrange(2 ** 31)

        def work():
            return generate_images(self.model, self.tokenizer, req.prompt, negative_prompt=req.negative_prompt,
                                   n=req.n, steps=req.steps, guidance_scale=req.guidance_scale, seed=seed,
                                   height=side, width=side, scheduler=req.scheduler, progress=False)

        try:
            images = await self.blocking(work)
        except ValueError as e:  # left after the schema's checks: a scheduler that does not fit the model
            raise bad_request(str(e), _param_of(str(e))) from e
        pngs = [_png_base64(im) for im in images]
        data = [{"b64_json": p, "revised_prompt": req.prompt} if req.response_format == "b64_json" else
                {"url": f"data:image/png;base64,{p}", "revised_prompt": req.prompt} for p in pngs]
        return {"created": int(time.time()), "data": data, "model": self.name, "seed": seed,
                "size": f"{side}x{side}", "output_format": "png"}
