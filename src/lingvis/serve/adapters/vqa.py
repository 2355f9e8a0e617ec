"""Fusion (VL-BERT / ViLT style) models with an answer classifier: visual question answering."""
from __future__ import annotations

from ...tasks.vqa import answer_questions
from ..errors import bad_request
from ..images import decode_image
from ..schemas import ChatCompletionRequest, VQARequest
from .base import CHAT, VQA, Adapter
from .registry import register_adapter
from .vision_chat import chat_reply


def _is_vqa(model) -> bool:
    return getattr(model, "family", None) == "fusion" and bool(getattr(model.config, "answers", None))


@register_adapter("vqa", _is_vqa)
class VQAAdapter(Adapter):
    capabilities = frozenset({VQA, CHAT})

    def describe(self) -> dict:
        return {**super().describe(), "answers": len(self.model.config.answers)}

    async def _answers(self, image, question: str, top_k: int) -> list[tuple[str, float]]:
        if not question:
            raise bad_request("ask a question about the image", "question")
        return (await self.blocking(answer_questions, self.model, self.tokenizer, image, [question], top_k))[0]

    async def answer(self, req: VQARequest) -> dict:
        image = decode_image(req.image, "image", self.config.max_image_pixels)
        ranked = await self._answers(image, req.question.strip(), req.top_k)
        return {"object": "image.answer", "model": self.name, "question": req.question, "answer": ranked[0][0],
                "answers": [{"answer": a, "score": p} for a, p in ranked]}

    async def chat_answer(self, req: ChatCompletionRequest, request) -> object:
        async def produce(image, text: str) -> str:
            return (await self._answers(image, text, 1))[0][0]

        return await chat_reply(self, req, produce)
