"""POST /v1/completions and /v1/chat/completions (whole answers or SSE streams)."""
from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import APIRouter, Request

from . import responses as R
from .adapters.base import CHAT, COMPLETIONS
from .errors import APIError
from .runs import ClientGone, unless_disconnected
from .schemas import ChatCompletionRequest, CompletionRequest
from .sse import event_stream
from .textjob import TextJob

router = APIRouter()


def _gone() -> APIError:
    return APIError(499, "client closed the request", "invalid_request_error", None, "client_closed")


@router.post("/v1/completions")
async def completions(req: CompletionRequest, request: Request):
    adapter = request.app.state.hub.get(req.model, COMPLETIONS)
    run, prompts = adapter.completion_run(req)
    job = TextJob(adapter.tokenizer, run, prompts, req.n, req.stop_list())
    texts = [adapter.tokenizer.decode(p) for p in prompts]
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
    hub = request.app.state.hub
    adapter = hub.get(req.model, CHAT)
    if hasattr(adapter, "chat_answer"):  # vision-language models answer about images in one piece
        return await adapter.chat_answer(req, request)
    run, prompt = adapter.chat_run(req)
    job = TextJob(adapter.tokenizer, run, [prompt], req.n, req.stop_list())
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
