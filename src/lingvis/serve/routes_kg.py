"""A SPARQL endpoint over a knowledge graph (`lingvis kg build`): `/v1/kg/sparql` speaks the SPARQL 1.1
Protocol (GET ?query=, POST application/sparql-query, POST form query=) and answers SPARQL JSON results
(SELECT/ASK) or N-Triples (CONSTRUCT/DESCRIBE). Every query runs under a time limit and a result-row limit
(truncation is flagged by the `X-Lingvis-Truncated: true` header and a top-level `"truncated": true`).
Updates (POST application/sparql-update or form update=) are refused with 403 unless the server was started
with updates allowed. The store is an embedded graph directory (opened read-only unless updates are allowed)
or http://HOST:PORT of a SPARQL server."""
from __future__ import annotations

import json
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from .errors import APIError, bad_request
from .routes_kg_entities import kg_store
from .routes_kg_entities import router as entities_router

RESULTS_JSON = "application/sparql-results+json"


@dataclass
class KGEndpointConfig:
    store: str                         # graph directory or http://HOST:PORT
    allow_updates: bool = False
    timeout_s: float = 10.0            # per query
    max_results: int = 10_000          # SELECT rows / CONSTRUCT triples per answer
    images: str | None = None          # folder of the graph's images: entity pages show crops cut from them

    def validate(self) -> None:
        if self.timeout_s <= 0 or self.max_results < 1:
            raise ValueError(f"kg timeout must be > 0 and max results >= 1, got {self.timeout_s}, {self.max_results}")
        if self.images is not None and not Path(self.images).is_dir():
            raise FileNotFoundError(f"--images {self.images} is not a folder")


router = APIRouter()


def open_kg(cfg: KGEndpointConfig):
    from ..kg.stores import open_store

    cfg.validate()
    return open_store(cfg.store, read_only=not cfg.allow_updates, create=False)


async def _read(request: Request) -> tuple[str | None, str | None]:
    """(query, update) from the request as the SPARQL 1.1 Protocol sends them."""
    if request.method == "GET":
        return request.query_params.get("query"), request.query_params.get("update")
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    body = (await request.body()).decode("utf-8", "replace")
    if ctype == "application/sparql-query":
        return body, None
    if ctype == "application/sparql-update":
        return None, body
    if ctype == "application/x-www-form-urlencoded":
        form = urllib.parse.parse_qs(body)
        return (form.get("query") or [None])[0], (form.get("update") or [None])[0]
    raise APIError(415, f"unsupported Content-Type {ctype or '(none)'!r}: send application/sparql-query, "
                   "application/sparql-update or a form", "invalid_request_error", None, "unsupported_media_type")


@router.api_route("/v1/kg/sparql", methods=["GET", "POST"])
async def sparql(request: Request):
    from ..kg.store import QueryTimeout, StoreError

    store = kg_store(request)
    cfg: KGEndpointConfig = request.app.state.config.kg
    query, update = await _read(request)
    if update is not None:
        if not cfg.allow_updates:
            raise APIError(403, "SPARQL updates are refused: this endpoint is read-only (start the server with "
                           "updates allowed to change the graph)", "permission_error", "update", "read_only")
        try:
            await run_in_threadpool(store.update, update)
        except ValueError as e:
            raise bad_request(str(e), "update", "invalid_sparql") from e
        return Response(status_code=204)
    if not query:
        raise bad_request("give a SPARQL query: ?query=..., a form field query=, or an application/sparql-query "
                          "body", "query", "missing_query")
    try:
        res = await run_in_threadpool(lambda: store.query(query, timeout=cfg.timeout_s, limit=cfg.max_results))
    except ValueError as e:
        raise bad_request(str(e), "query", "invalid_sparql") from e
    except QueryTimeout as e:
        raise APIError(503, f"the query ran past this server's {cfg.timeout_s:g} s limit", "server_error",
                       "query", "query_timeout", {"Retry-After": "1"}) from e
    except StoreError as e:
        raise APIError(502, str(e), "server_error", None, "store_error") from e
    headers = {"X-Lingvis-Truncated": "true"} if res.truncated else {}
    if res.kind == "graph":
        return Response(res.graph, media_type="application/n-triples", headers=headers)
    body = res.to_json()
    if res.truncated:
        body["truncated"] = True
    return Response(json.dumps(body, ensure_ascii=False), media_type=RESULTS_JSON, headers=headers)


def mount_kg(app, cfg: KGEndpointConfig) -> None:
    """Open the graph and add the endpoint and the entity-page routes (behind the API key when one is set)."""
    from fastapi import Depends

    from .security import require_api_key

    app.state.kg_store = open_kg(cfg)
    for r in (router, entities_router):
        app.include_router(r, dependencies=[Depends(require_api_key)])
