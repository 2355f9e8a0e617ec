"""Image-chat models (llava): /v1/chat/completions with OpenAI image_url content parts (and video_url parts:
`video_frames` frames sampled evenly across the video, each an image, in time order), through the same
continuous-batching engine as text chats. The request's images are decoded (or fetched from an allowed
host) and preprocessed off the event loop; the engine computes their features once, at the prefill, and
the sequence then decodes with the other requests' rows."""
from __future__ import annotations

import anyio.to_thread

from ...data.llava_inputs import chat_prompt_ids, image_token, pixel_values
from ..errors import bad_request
from ..image_fetch import load_image_part
from ..videos import load_video_part, media_parts, video_frame_images
from ..runs import Run
from ..schemas import ChatCompletionRequest
from ..sequences import SeqSpec
from .base import CHAT, COMPLETIONS, TOKENIZE
from .causal_lm import CausalLMAdapter
from .registry import register_adapter

IMAGE_CHAT = "image_chat"  # capability: chat messages may hold images


@register_adapter("llava", lambda model: bool(getattr(model, "reads_images", False)))
class LlavaAdapter(CausalLMAdapter):
    capabilities = frozenset({COMPLETIONS, CHAT, TOKENIZE, IMAGE_CHAT})

    def __init__(self, name, model, tokenizer, path, config):
        super().__init__(name, model, tokenizer, path, config)
        self.placeholder = image_token(tokenizer, model)

    def describe(self) -> dict:
        c = self.model.image_config
        return {**super().describe(), "image_size": c.image_size, "tokens_per_image": self.model.tokens_per_image}

    def prompts(self, prompt) -> list[list[int]]:
        out = super().prompts(prompt)
        if any(self.model.config.image_token_id in p for p in out):
            raise bad_request(f"completions take no images: the prompt holds the image placeholder "
                              f"{self.placeholder!r}; send images as image_url parts to /v1/chat/completions",
                              "prompt", "unsupported_content")
        return out

    def _messages(self, req: ChatCompletionRequest) -> list[dict]:
        """Chat messages for the template; a video part stands for its frames, one image part each."""
        n, out = self.config.video_frames, []
        for m in req.messages:
            content = m.content if m.content is not None else ""
            if isinstance(content, list):
                content = [q for p in content for q in ([{"type": "image"}] * n if p.type == "video_url" else [p])]
            out.append({"role": "system" if m.role == "developer" else m.role, "content": content})
        return out

    def _prepare(self, req: ChatCompletionRequest, images: list) -> tuple[list[int], object]:
        """Prompt ids (placeholders expanded) and pixels; bad input is a 400 naming it."""
        try:
            ids = chat_prompt_ids(self.tokenizer, self.model, self._messages(req), len(images))
        except ValueError as e:
            raise bad_request(str(e), "messages") from e
        return ids, pixel_values(self.model, images)

    async def chat_run_async(self, req: ChatCompletionRequest) -> tuple[Run, list[int]]:
        self.check_n(req.n)
        self.check_top(req.top_logprobs, "top_logprobs")
        images = []
        for kind, param, url in media_parts(req.messages):
            if kind == "image":
                images.append(await load_image_part(url, param, self.config))
            else:
                raw = await load_video_part(url, param, self.config)
                images += await anyio.to_thread.run_sync(video_frame_images, raw, param, self.config.video_frames)
        ids, pixels = await anyio.to_thread.run_sync(self._prepare, req, images)
        return self._submit_chat(req, ids, pixels), ids

    def chat_run(self, req: ChatCompletionRequest) -> tuple[Run, list[int]]:
        """Synchronous variant for data: URLs only (remote images need `chat_run_async`)."""
        from ..images import decode_image
        from ..videos import decode_video_bytes

        self.check_n(req.n)
        self.check_top(req.top_logprobs, "top_logprobs")
        images = []
        for kind, param, url in media_parts(req.messages):
            if kind == "image":
                images.append(decode_image(url, param, self.config.max_image_pixels))
            else:
                raw = decode_video_bytes(url, param, self.config.max_video_bytes)
                images += video_frame_images(raw, param, self.config.video_frames)
        ids, pixels = self._prepare(req, images)
        return self._submit_chat(req, ids, pixels), ids

    def _submit_chat(self, req: ChatCompletionRequest, ids: list[int], pixels) -> Run:
        limit = req.max_completion_tokens if req.max_completion_tokens is not None else req.max_tokens
        param = "max_completion_tokens" if req.max_completion_tokens is not None else "max_tokens"
        max_tokens = limit if limit is not None else max(self.context_length - len(ids), 0)
        self.check_context(len(ids), max_tokens, param)
        k = (req.top_logprobs or 0) if req.logprobs else None
        return self.submit([SeqSpec(ids, self.sampling(req, max_tokens, j), k, images=pixels) for j in range(req.n)])
