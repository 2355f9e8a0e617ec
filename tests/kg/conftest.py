"""Knowledge-graph fixtures: the store tests run against the embedded pyoxigraph store AND a real Oxigraph
SPARQL server (`oxigraph serve`, from the PyPI package `oxigraph` of the test extra) started here on a free
loopback port over a temporary directory. Only a missing binary skips the server half."""
from __future__ import annotations

import pytest

pytest.importorskip("pyoxigraph")


@pytest.fixture(scope="session")
def oxigraph_server(tmp_path_factory):
    """Base URL of a running `oxigraph serve` (stopped at the end of the session)."""
    from lingvis.kg.oxigraph_server import oxigraph_binary, oxigraph_server

    if oxigraph_binary() is None:
        pytest.skip("the oxigraph server binary is not installed (pip install oxigraph)")
    with oxigraph_server(tmp_path_factory.mktemp("oxigraph") / "db") as url:
        yield url


@pytest.fixture(params=["embedded", "server"])
def store(request, tmp_path):
    """An empty store of each kind."""
    from lingvis.kg.stores import open_store

    if request.param == "embedded":
        s = open_store(tmp_path / "kg")
    else:
        s = open_store(request.getfixturevalue("oxigraph_server"))
        s.update("DROP SILENT ALL")
    yield s
    s.close()
