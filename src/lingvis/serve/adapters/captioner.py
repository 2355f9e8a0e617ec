"""Image captioners (image tower + GPT decoder with cross-attention): /v1/images/captions and chat with
an image. Concurrent caption requests with the same decoding settings share one batched generate call."""
from __future__ import annotations

from ...recipes.caption import caption_images
from ..images import decode_image
from ..microbatch import MicroBatcher
from ..schemas import CaptionRequest, ChatCompletionRequest
from .base import CAPTION, CHAT, Adapter
from .registry import register_adapter
from .vision_chat import chat_reply


@register_adapter("captioner", lambda m: getattr(m, "family", None) == "captioner")
class CaptionerAdapter(Adapter):
    capabilities = frozenset({CAPTION, CHAT})

    def __init__(self, name, model, tokenizer, path, config):
        super().__init__(name, model, tokenizer, path, config)
        self.batcher = MicroBatcher(self._caption_batch, config.max_batch, config.max_queue, name)

    def describe(self) -> dict:
        return {**super().describe(), "context_length": self.model.context_length}

    def stats(self) -> dict:
        return self.batcher.stats()

    def queue_depth(self) -> int:
        return len(self.batcher.pending)

    def batch_sizes(self) -> dict[int, int]:
        return dict(self.batcher.sizes)

    def _caption_batch(self, key: tuple[int, int], images: list) -> list[str]:
        num_beams, max_tokens = key
        return caption_images(self.model, self.tokenizer, images, num_beams=num_beams, max_new_tokens=max_tokens)

    async def captions(self, image, num_beams: int, max_tokens: int) -> str:
        return await self.batcher.submit((num_beams, min(max_tokens, self.model.context_length - 1)), image)

    async def caption(self, req: CaptionRequest) -> dict:
        image = decode_image(req.image, "image", self.config.max_image_pixels)
        text = await self.captions(image, req.num_beams, req.max_tokens)
        return {"object": "image.caption", "model": self.name, "caption": text}

    async def chat_answer(self, req: ChatCompletionRequest, request) -> object:
        """A captioner does not read questions: the reply is the caption of the last image."""
        limit = req.max_completion_tokens or req.max_tokens or 32

        async def produce(image, text: str) -> str:
            return await self.captions(image, 3, limit)

        return await chat_reply(self, req, produce)
