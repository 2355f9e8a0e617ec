"""Load test of `lingvis serve` on loopback: 32 concurrent streaming clients send 200 chat requests
(none may be lost, no 5xx), against one client at a time. Prints throughput, the ratio (target >= 4x) and
p50/p99 latency. The server runs in its own process (`python -m lingvis serve`), as users run it.

    python -m benchmarks.serve_load [--quick] [--preset gpt-mini] [--max-tokens 32] [--threads 2]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from benchmarks._timing import row

PROMPTS = ["To be, or not to be", "Friends, Romans, countrymen", "Now is the winter of our discontent",
           "O Romeo, Romeo", "Once more unto the breach", "Double, double toil and trouble"]


def make_model(folder: Path, preset: str) -> Path:
    """A random-weight GPT of `preset` with a char tokenizer (speed does not depend on the weights)."""
    import torch

    import lingvis
    from lingvis.data.corpus import shakespeare_plays
    from lingvis.tokenizers import train_char

    torch.manual_seed(0)
    tok = train_char(shakespeare_plays()[0].text)
    model = lingvis.build(preset, vocab_size=tok.vocab_size)
    return lingvis.save(model, folder / preset, tokenizer=tok)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(model: Path, port: int, threads: int) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "lingvis", "serve", "--model", str(model), "--port", str(port),
           "--max-batch", "32", "--max-queue", "256", "--threads", str(threads), "--log-level", "warning"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {proc.stderr.read()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("server did not start within 120 s")


async def one_request(client: httpx.AsyncClient, url: str, model: str, i: int, max_tokens: int) -> dict:
    """Stream one chat completion; returns status, latency, time to first token and token count."""
    body = {"model": model, "messages": [{"role": "user", "content": PROMPTS[i % len(PROMPTS)]}],
            "max_tokens": max_tokens, "temperature": 0.8, "seed": i, "stream": True, "ignore_eos": True,
            "stream_options": {"include_usage": True}}
    t0 = time.perf_counter()
    first, tokens, done = None, 0, False
    async with client.stream("POST", url, json=body) as r:
        if r.status_code != 200:
            await r.aread()
            return {"status": r.status_code, "latency": time.perf_counter() - t0, "tokens": 0, "done": False}
        async for line in r.aiter_lines():
            if line == "data: [DONE]":
                done = True
            elif line.startswith("data: "):
                chunk = json.loads(line[6:])
                if chunk.get("usage"):
                    tokens = chunk["usage"]["completion_tokens"]
                elif first is None and chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
                    first = time.perf_counter() - t0
    return {"status": 200, "latency": time.perf_counter() - t0, "ttft": first, "tokens": tokens, "done": done}


async def drive(base: str, model: str, total: int, concurrency: int, max_tokens: int) -> tuple[list[dict], float]:
    """`concurrency` workers pull request numbers until `total` requests have been made."""
    url = f"{base}/v1/chat/completions"
    counter = iter(range(total))
    results: list[dict] = []
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=300, limits=limits) as client:
        async def worker():
            for i in counter:
                results.append(await one_request(client, url, model, i, max_tokens))

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return results, time.perf_counter() - t0


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process (Linux /proc), None elsewhere."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def engine_stats(base: str, model: str) -> dict:
    return httpx.get(f"{base}/health").json()["models"][model]


def measured(pid: int, base: str, model: str, total: int, concurrency: int, max_tokens: int):
    """Run a phase; also return the server's CPU seconds and the mean decode batch during it."""
    c0, e0 = cpu_seconds(pid), engine_stats(base, model)
    results, seconds = asyncio.run(drive(base, model, total, concurrency, max_tokens))
    c1, e1 = cpu_seconds(pid), engine_stats(base, model)
    steps = e1["steps"] - e0["steps"]
    batch = (e1["row_steps"] - e0["row_steps"]) / steps if steps else 0.0
    return results, seconds, (c1 - c0) if c0 is not None and c1 is not None else None, batch


def percentile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, round(q / 100 * (len(xs) - 1))))]


def summarise(name: str, results: list[dict], seconds: float, cpu: float | None, batch: float,
              max_tokens: int) -> dict:
    lost = [r for r in results if r["status"] != 200 or not r["done"] or r["tokens"] != max_tokens]
    five = sum(r["status"] >= 500 for r in results)
    lat = [r["latency"] for r in results if r["status"] == 200]
    ttft = [r["ttft"] for r in results if r.get("ttft") is not None]
    s = {"run": name, "requests": len(results), "lost": len(lost), "5xx": five, "seconds": round(seconds, 2),
         "req_per_s": len(results) / seconds, "tok_per_s": sum(r["tokens"] for r in results) / seconds,
         "p50_s": percentile(lat, 50), "p99_s": percentile(lat, 99),
         "ttft_p50_s": percentile(ttft, 50) if ttft else None,
         "server_cpu_s_per_req": cpu / len(results) if cpu else None, "mean_batch": round(batch, 2)}
    print(f"{name}: {s['requests']} requests in {seconds:.2f} s = {s['req_per_s']:.2f} req/s, "
          f"{s['tok_per_s']:.0f} tok/s; latency p50 {s['p50_s']:.3f} s, p99 {s['p99_s']:.3f} s, "
          f"first token p50 {s['ttft_p50_s'] or 0:.3f} s; lost {s['lost']}, 5xx {s['5xx']}; server CPU "
          f"{(s['server_cpu_s_per_req'] or 0) * 1000:.1f} ms/request; mean decode batch {s['mean_batch']}", flush=True)
    return s


def run(quick: bool = True, preset: str = "gpt-mini", max_tokens: int = 32, threads: int = 2) -> list[dict]:
    with tempfile.TemporaryDirectory() as tmp:
        model = make_model(Path(tmp), preset)
        port = free_port()
        proc = start_server(model, port, threads)
        try:
            base, name = f"http://127.0.0.1:{port}", model.name
            asyncio.run(drive(base, name, 4, 1, max_tokens))  # warm up
            seq = summarise("1 client", *measured(proc.pid, base, name, 10 if quick else 40, 1, max_tokens),
                            max_tokens)
            conc = summarise("32 clients", *measured(proc.pid, base, name, 200, 32, max_tokens), max_tokens)
        finally:
            proc.terminate()
            proc.wait(30)
    if conc["lost"] or conc["5xx"]:
        raise SystemExit(f"load test failed: {conc['lost']} requests lost, {conc['5xx']} 5xx responses")
    ratio = conc["req_per_s"] / seq["req_per_s"]
    cpu_ratio = (seq["server_cpu_s_per_req"] / conc["server_cpu_s_per_req"]
                 if seq["server_cpu_s_per_req"] and conc["server_cpu_s_per_req"] else None)
    print(f"throughput 32 clients / 1 client: {ratio:.2f}x (target >= 4x); server CPU per request "
          f"1 client / 32 clients: {cpu_ratio or float('nan'):.2f}x; mean decode batch {conc['mean_batch']}; "
          f"p50 {conc['p50_s']:.3f} s, p99 {conc['p99_s']:.3f} s", flush=True)
    r = row(f"serve_load_{preset}_32_clients_vs_1", conc["req_per_s"], seq["req_per_s"], "req/s")
    r.update(p50_s=round(conc["p50_s"], 3), p99_s=round(conc["p99_s"], 3), requests=conc["requests"], lost=0,
             five_xx=0, mean_batch=conc["mean_batch"], cpu_ratio=round(cpu_ratio, 2) if cpu_ratio else None)
    return [r]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer sequential requests")
    p.add_argument("--preset", default="gpt-mini")
    p.add_argument("--max-tokens", type=int, default=32)
    p.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    a = p.parse_args()
    print(json.dumps(run(a.quick, a.preset, a.max_tokens, a.threads)))


if __name__ == "__main__":
    main()
