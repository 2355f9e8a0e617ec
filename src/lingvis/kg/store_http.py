"""The same store interface over a SPARQL 1.1 server: queries by the SPARQL 1.1 Protocol (`POST /query`),
updates by `POST /update`, loads and dumps by the Graph Store Protocol (`/store`). Defaults fit the Oxigraph
server (`oxigraph serve --location DIR --bind HOST:PORT`); other servers (Fuseki: /ds/query, /ds/update,
/ds/data) take the endpoint paths as arguments. Standard library HTTP only."""
from __future__ import annotations

import json
import socket
import urllib.error
import urllib.parse
import urllib.request

from .store import FORMATS, KGStore, QueryResult, QueryTimeout, StoreError, format_name

RESULTS_JSON = "application/sparql-results+json"


class HTTPStore(KGStore):
    def __init__(self, base: str, query_path: str = "query", update_path: str = "update",
                 data_path: str = "store", read_only: bool = False, timeout: float = 300.0,
                 union_param: str | None = "union-default-graph"):
        self.base = base.rstrip("/") + "/"
        self.location = self.base
        self.query_url = urllib.parse.urljoin(self.base, query_path)
        self.update_url = urllib.parse.urljoin(self.base, update_path)
        self.data_url = urllib.parse.urljoin(self.base, data_path)
        self.read_only, self.timeout = read_only, timeout
        self.union_param = union_param  # Oxigraph: query the union of all graphs as the default graph

    def _request(self, url: str, data: bytes | None, headers: dict, method: str = "POST",
                 timeout: float | None = None) -> tuple[bytes, str]:
        req = urllib.request.Request(url, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(req, timeout=timeout or self.timeout) as resp:
                return resp.read(), resp.headers.get("Content-Type", "")
        except urllib.error.HTTPError as e:
            body = e.read().decode("utf-8", "replace")[:500]
            if e.code == 400:
                raise ValueError(f"{url}: the server rejected the request: {body}") from e
            raise StoreError(f"{url}: HTTP {e.code}: {body}") from e
        except (socket.timeout, TimeoutError) as e:
            raise QueryTimeout(f"{url}: no answer within {timeout or self.timeout:g} s") from e
        except urllib.error.URLError as e:
            if isinstance(e.reason, (socket.timeout, TimeoutError)):
                raise QueryTimeout(f"{url}: no answer within {timeout or self.timeout:g} s") from e
            raise StoreError(f"cannot reach the SPARQL server at {self.base}: {e.reason}") from e

    def _check_writable(self) -> None:
        if self.read_only:
            raise StoreError(f"{self.location} is open read-only: writes are refused")

    def query(self, sparql: str, *, timeout: float | None = None, limit: int | None = None) -> QueryResult:
        url = self.query_url + (f"?{self.union_param}" if self.union_param else "")
        body, ctype = self._request(url, sparql.encode("utf-8"), {
            "Content-Type": "application/sparql-query",
            "Accept": f"{RESULTS_JSON}, application/n-triples;q=0.9"}, timeout=timeout)
        if ctype.startswith("application/n-triples"):
            lines = body.decode("utf-8").splitlines()
            truncated = limit is not None and len(lines) > limit
            return QueryResult("graph", graph="\n".join(lines[:limit] if truncated else lines) + ("\n" if lines else ""),
                               truncated=truncated)
        try:
            doc = json.loads(body)
        except json.JSONDecodeError as e:
            raise StoreError(f"{url}: expected SPARQL JSON results, got {ctype!r}") from e
        if "boolean" in doc:
            return QueryResult("boolean", boolean=bool(doc["boolean"]))
        rows = doc["results"]["bindings"]
        truncated = limit is not None and len(rows) > limit
        return QueryResult("bindings", list(doc["head"].get("vars", [])), rows[:limit] if truncated else rows,
                           truncated=truncated)

    def update(self, sparql: str) -> None:
        self._check_writable()
        self._request(self.update_url, sparql.encode("utf-8"), {"Content-Type": "application/sparql-update"})

    def load(self, data: bytes, fmt: str, graph: str | None = None, bulk: bool = False,
             lenient: bool = False) -> None:
        self._check_writable()
        name = format_name(fmt)
        params = []
        if graph and not FORMATS[name][2]:
            params.append(urllib.parse.urlencode({"graph": graph}))
        elif not FORMATS[name][2]:
            params.append("default")
        if bulk:
            params.append("no_transaction")  # Oxigraph's bulk loader (other servers ignore the flag)
        if lenient:
            params.append("lenient")  # Oxigraph: skip IRI validation
        url = self.data_url + ("?" + "&".join(params) if params else "")
        self._request(url, data, {"Content-Type": FORMATS[name][1]})

    def dump(self, fmt: str) -> bytes:
        name = format_name(fmt)
        if FORMATS[name][2]:
            body, _ = self._request(self.data_url, None, {"Accept": FORMATS[name][1]}, method="GET")
            return body
        url = self.query_url + (f"?{self.union_param}" if self.union_param else "")
        body, _ = self._request(url, b"CONSTRUCT { ?s ?p ?o } WHERE { ?s ?p ?o }",
                                {"Content-Type": "application/sparql-query", "Accept": FORMATS[name][1]})
        return body

    def __len__(self) -> int:
        # counted without the union flag: the default graph is then the real default graph, and named-graph
        # quads are counted once
        url = self.query_url
        q = "SELECT (COUNT(*) AS ?n) WHERE { { ?s ?p ?o } UNION { GRAPH ?g { ?s ?p ?o } } }"
        body, _ = self._request(url, q.encode(), {"Content-Type": "application/sparql-query", "Accept": RESULTS_JSON})
        return int(json.loads(body)["results"]["bindings"][0]["n"]["value"])
