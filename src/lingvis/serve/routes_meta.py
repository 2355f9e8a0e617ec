"""GET /v1/models, GET /health, GET /metrics (Prometheus), and the vLLM-style tokenizer endpoints (/tokenize,
/detokenize, /tokenizer_info) that lm-evaluation-harness's "remote" tokenizer backend uses."""
from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response

from .adapters.base import TOKENIZE
from .errors import bad_request, model_not_found
from .metrics import CONTENT_TYPE
from .schemas import DetokenizeRequest, TokenizeRequest
from .security import require_api_key

open_router = APIRouter()
router = APIRouter(dependencies=[Depends(require_api_key)])


@open_router.get("/health")
async def health(request: Request):
    hub = request.app.state.hub
    return {"status": "ok", "models": {name: a.stats() for name, a in hub.adapters.items()}}


@open_router.get("/metrics", include_in_schema=False)
async def metrics(request: Request):
    """Prometheus text format; open like /health (scrapers on the operator's network)."""
    return Response(request.app.state.metrics.render(), media_type=CONTENT_TYPE)


@router.get("/v1/models")
async def list_models(request: Request):
    return request.app.state.hub.listing()


@router.get("/v1/models/{name}")
async def get_model(name: str, request: Request):
    hub = request.app.state.hub
    if name not in hub.adapters:
        raise model_not_found(name, hub.names())
    return next(m for m in hub.listing()["data"] if m["id"] == name)


@router.post("/tokenize")
async def tokenize(req: TokenizeRequest, request: Request):
    a = request.app.state.hub.get(req.model, TOKENIZE)
    ids = a.tokenizer.encode(req.prompt, add_special_tokens=req.add_special_tokens)
    return {"tokens": ids, "count": len(ids), "max_model_len": a.context_length}


@router.post("/detokenize")
async def detokenize(req: DetokenizeRequest, request: Request):
    a = request.app.state.hub.get(req.model, TOKENIZE)
    try:
        return {"prompt": a.tokenizer.decode(req.tokens, skip_special_tokens=False)}
    except ValueError as e:
        raise bad_request(str(e), "tokens") from e


@router.get("/tokenizer_info")
async def tokenizer_info(request: Request, model: str | None = None):
    a = request.app.state.hub.get(model, TOKENIZE)
    tok = a.tokenizer
    cfg = tok.config()
    return {"tokenizer_class": cfg.get("tokenizer_class"), "chat_template": cfg.get("chat_template"),
            "eos_token": cfg.get("eos_token"), "bos_token": cfg.get("bos_token"),
            "pad_token": cfg.get("pad_token"), "unk_token": cfg.get("unk_token"),
            "model_max_length": a.context_length, "vocab_size": tok.vocab_size}
