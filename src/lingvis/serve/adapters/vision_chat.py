"""Chat completions for vision-language models: the last image in the conversation plus the last user
text go to the model (caption or answer); the reply comes back whole, or as one SSE content chunk."""
from __future__ import annotations

from collections.abc import Awaitable, Callable

from .. import responses as R
from ..errors import bad_request
from ..images import decode_image, image_parts
from ..schemas import ChatCompletionRequest
from ..sse import event_stream


def last_user_text(req: ChatCompletionRequest) -> str:
    for m in reversed(req.messages):
        if m.role == "user":
            if isinstance(m.content, list):
                return " ".join(p.text for p in m.content if p.type == "text").strip()
            return (m.content or "").strip()
    return ""


async def chat_reply(adapter, req: ChatCompletionRequest, produce: Callable[..., Awaitable[str]]) -> object:
    """`produce(image, text)` returns the assistant's reply for the conversation's last image."""
    if any(p.type == "video_url" for m in req.messages if isinstance(m.content, list) for p in m.content):
        raise bad_request(f"model {adapter.name!r} reads images, not videos: send image_url parts (video_url "
                          "parts need a video model or an image-chat model)", "messages", "unsupported_content")
    images = image_parts(req.messages)
    if not images:
        raise bad_request(f"model {adapter.name!r} answers about images: add an image_url part "
                          "(a data: URL) to a user message", "messages", "image_required")
    if req.n != 1:
        raise bad_request("vision-language chat gives one answer (n must be 1)", "n", "unsupported_parameter")
    param, url = images[-1]
    text = last_user_text(req)
    reply = await produce(decode_image(url, param, adapter.config.max_image_pixels), text)
    rid = R.new_id("chatcmpl")
    asked, said = len(adapter.tokenizer.encode(text)), len(adapter.tokenizer.encode(reply))  # image not counted
    usage = {"prompt_tokens": asked, "completion_tokens": said, "total_tokens": asked + said}
    if not req.stream:
        return {"id": rid, "object": "chat.completion", "created": R.now(), "model": adapter.name, "usage": usage,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": reply, "refusal": None},
                             "logprobs": None, "finish_reason": "stop"}]}

    async def chunks():
        yield R.chat_chunk(rid, adapter.name, 0, {"role": "assistant", "content": ""}, None)
        yield R.chat_chunk(rid, adapter.name, 0, {"content": reply}, None)
        yield R.chat_chunk(rid, adapter.name, 0, {}, "stop")
        if req.stream_options and req.stream_options.include_usage:
            yield R.usage_chunk(rid, adapter.name, "chat.completion.chunk", usage)

    return event_stream(chunks(), lambda: None)
