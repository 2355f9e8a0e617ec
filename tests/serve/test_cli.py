"""`lingvis serve` as users start it: a separate process on a free loopback port."""
import os
import socket
import subprocess
import sys
import time

import httpx

from .helpers import assert_error


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_lingvis_serve_process(lm_dir, clip_dir, mt_run_dir, image_folder):
    port = free_port()
    cmd = [sys.executable, "-m", "lingvis", "serve", "--model", f"poet={lm_dir}", "--model", str(clip_dir),
           "--model", f"mt={mt_run_dir}", "--port", str(port), "--api-key", "k3y", "--max-queue", "4",
           "--image-folder", str(image_folder), "--threads", "1", "--log-level", "warning", "--device", "cpu",
           "--allowed-origins", "https://app.example"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "LINGVIS_API_KEY": ""})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, proc.stderr.read()
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.2)
        assert_error(httpx.get(f"{url}/v1/models"), 401)
        auth = {"Authorization": "Bearer k3y"}
        models = httpx.get(f"{url}/v1/models", headers=auth).json()["data"]
        assert [m["id"] for m in models] == ["poet", clip_dir.name, "mt"]
        r = httpx.post(f"{url}/v1/completions", headers=auth, json={"model": "poet", "prompt": "To", "max_tokens": 3})
        assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] <= 3
        ask = {"model": "mt", "target_lang": "zh", "messages": [{"role": "user", "content": "a red circle"}]}
        r = httpx.post(f"{url}/v1/chat/completions", headers={**auth, "Origin": "https://app.example"}, json=ask)
        assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"]
        assert r.headers["access-control-allow-origin"] == "https://app.example"
        assert 'route="/v1/chat/completions"' in httpx.get(f"{url}/metrics").text
        assert httpx.get(f"{url}/health").json()["models"]["poet"]["max_queue"] == 4
        assert "<title>lingvis</title>" in httpx.get(url + "/").text
    finally:
        proc.terminate()
        proc.wait(30)
    err = proc.stderr.read()
    assert "serving poet (causal_lm)" in err and "mt (translation)" in err and "on cpu" in err


def test_serve_errors_name_the_problem(tmp_path):
    from lingvis.cli import main

    assert main(["serve", "--model", str(tmp_path / "missing")]) == 2
    (tmp_path / "empty").mkdir()
    assert main(["serve", "--model", str(tmp_path / "empty")]) == 2
