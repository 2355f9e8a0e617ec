"""POST /v1/completions and /v1/chat/completions (whole answers or SSE streams)."""
from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import APIRouter, Request

from . import responses as R
from .adapters.base import CHAT, COMPLETIONS
from .adapters.text import TRANSLATION_FIELDS, reject_set
from .errors import APIError, bad_request
from .runs import ClientGone, unless_disconnected
from .schemas import ChatCompletionRequest, CompletionRequest, SamplingFields, unsupported_field
from .sse import event_stream
from .textjob import TextJob

router = APIRouter()


def _gone() -> APIError:
    return APIError(499, "client closed the request", "invalid_request_error", None, "client_closed")


def check_supported(req: SamplingFields) -> None:
    """A 400 naming the first OpenAI field that lingvis does not implement (tools, response_format, ...)."""
    name = unsupported_field(req)
    if name is not None:
        raise bad_request(f"{name} is not supported by lingvis", name, "unsupported_parameter")


def _job(request: Request, adapter, run, prompts: list[list[int]], req: SamplingFields) -> TextJob:
    observer = request.app.state.metrics.observer(adapter.name)
    return TextJob(adapter.tokenizer, run, prompts, req.n, req.stop_list(), observer)


@router.post("/v1/completions")
async def completions(req: CompletionRequest, request: Request):
    check_supported(req)
    adapter = request.app.state.hub.get(req.model, COMPLETIONS)
    run, prompts = adapter.completion_run(req)
    job = _job(request, adapter, run, prompts, req)
    texts = adapter.echo_texts(req, prompts)
    rid, want_lp = R.new_id("cmpl"), req.logprobs is not None
    if req.stream:
        return event_stream(_completion_chunks(job, adapter, rid, req, texts), run.cancel)
    try:
        choices = await unless_disconnected(request, job.collect(), run.cancel)
    except ClientGone:
        raise _gone() from None
    out = [R.completion_choice(adapter.tokenizer, c, req.echo, want_lp, texts[c.index // req.n]) for c in choices]
    return R.completion(rid, adapter.name, out, job.usage())


async def _completion_chunks(job: TextJob, adapter, rid: str, req: CompletionRequest,
                             texts: list[str]) -> AsyncIterator[dict | list[dict]]:
    tok = adapter.tokenizer
    if req.echo:
        for ch in job.choices:
            yield R.completion_chunk(rid, adapter.name, ch.index, texts[ch.index // req.n], None)
    async for updates in job.updates():
        out = []
        for ch, piece, had_token in updates:
            lp = None
            if had_token and req.logprobs is not None and ch.logprobs:
                lp = R.completion_logprobs(tok, ch.tokens[-1:], ch.logprobs[-1:], ch.tops[-1:], 0)
            if piece or lp is not None or ch.finish is not None:
                out.append(R.completion_chunk(rid, adapter.name, ch.index, piece, ch.finish, lp))
        if out:
            yield out
    if req.stream_options and req.stream_options.include_usage:
        yield R.usage_chunk(rid, adapter.name, "text_completion", job.usage())


@router.post("/v1/chat/completions")
async def chat_completions(req: ChatCompletionRequest, request: Request):
    check_supported(req)
    adapter = request.app.state.hub.get(req.model, CHAT)
    if hasattr(adapter, "chat_answer"):  # vision-language models answer about images in one piece
        reject_set(req, TRANSLATION_FIELDS, adapter.name, "for translation models")
        return await adapter.chat_answer(req, request)
    if hasattr(adapter, "chat_run_async"):  # image chats: images are decoded or fetched off the event loop
        run, prompt = await adapter.chat_run_async(req)
    else:
        run, prompt = adapter.chat_run(req)
    job = _job(request, adapter, run, [prompt], req)
    rid = R.new_id("chatcmpl")
    if req.stream:
        return event_stream(_chat_chunks(job, adapter, rid, req), run.cancel)
    try:
        choices = await unless_disconnected(request, job.collect(), run.cancel)
    except ClientGone:
        raise _gone() from None
    return R.chat_completion(rid, adapter.name, choices, adapter.tokenizer, req.logprobs, job.usage())


async def _chat_chunks(job: TextJob, adapter, rid: str, req: ChatCompletionRequest) -> AsyncIterator[dict | list[dict]]:
    tok = adapter.tokenizer
    for ch in job.choices:
        yield R.chat_chunk(rid, adapter.name, ch.index, {"role": "assistant", "content": ""}, None)
    async for updates in job.updates():
        out = []
        for ch, piece, had_token in updates:
            lp = None
            if had_token and req.logprobs and ch.logprobs:
                lp = R.chat_logprobs(tok, ch.tokens[-1:], ch.logprobs[-1:], ch.tops[-1:])
            if piece or lp is not None:
                out.append(R.chat_chunk(rid, adapter.name, ch.index, {"content": piece}, None, lp))
            if ch.finish is not None:
                out.append(R.chat_chunk(rid, adapter.name, ch.index, {}, ch.finish))
        if out:
            yield out
    if req.stream_options and req.stream_options.include_usage:
        yield R.usage_chunk(rid, adapter.name, "chat.completion.chunk", job.usage())
