"""Start and stop an Oxigraph SPARQL server (`oxigraph serve`, the PyPI package `oxigraph`) on a free
loopback port: for the store tests, the benchmarks and local scale-out experiments."""
from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path


def oxigraph_binary() -> str | None:
    """`oxigraph` on PATH, or beside the running Python (a virtualenv's bin/ that is not on PATH)."""
    found = shutil.which("oxigraph")
    if found:
        return found
    beside = Path(sys.executable).parent / ("oxigraph.exe" if os.name == "nt" else "oxigraph")
    return str(beside) if beside.is_file() else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def oxigraph_server(location: str | Path, port: int | None = None, timeout_s: float | None = None,
                    start_timeout: float = 60.0) -> Iterator[str]:
    """Run `oxigraph serve --location LOCATION --bind 127.0.0.1:PORT`; yields the base URL and stops the
    server on exit. Raises FileNotFoundError when the binary is not installed."""
    binary = oxigraph_binary()
    if binary is None:
        raise FileNotFoundError("the oxigraph server binary is not installed: pip install 'lingvis[kg]'")
    port = port or free_port()
    location = Path(location)
    location.mkdir(parents=True, exist_ok=True)
    cmd = [binary, "serve", "--location", str(location), "--bind", f"127.0.0.1:{port}"]
    if timeout_s:
        cmd += ["--timeout-s", str(int(timeout_s))]
    log_path = location.parent / f"{location.name}.oxigraph.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + start_timeout
            while True:
                try:
                    urllib.request.urlopen(url + "/query?query=ASK%7B%7D", timeout=2).read()
                    break
                except OSError:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"oxigraph serve did not start: {log_path.read_text()[-2000:]}") from None
                    time.sleep(0.1)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
