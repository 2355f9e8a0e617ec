"""Fixtures: tiny checkpoints saved to disk, and real uvicorn servers on free loopback ports."""
from __future__ import annotations

import socket
import threading
import time

import pytest
import torch

import lingvis
from lingvis.serve import ServeConfig, create_app, load_models

TEXT = ("To be, or not to be, that is the question: whether 'tis nobler in the mind to suffer "
        "the slings and arrows of outrageous fortune. ABCDEFGHIJKLMNOPQRSTUVWXYZ 0123456789 ?!;-\n")


def char_tokenizer():
    from lingvis.tokenizers import train_char

    return train_char(TEXT)


@pytest.fixture(scope="session")
def lm_dir(tmp_path_factory):
    """A gpt-nano with random weights, a char tokenizer and a 1024-token context."""
    torch.manual_seed(0)
    tok = char_tokenizer()
    model = lingvis.build("gpt-nano", vocab_size=tok.vocab_size, block_size=1024)
    return lingvis.save(model, tmp_path_factory.mktemp("models") / "nano-lm", tokenizer=tok)


class LiveServer:
    """uvicorn serving `app` in a thread on a free 127.0.0.1 port."""

    def __init__(self, app):
        import uvicorn

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> "LiveServer":
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)
        self.sock.close()


def start_server(model_dirs, **config) -> LiveServer:
    cfg = ServeConfig(**config)
    return LiveServer(create_app(load_models([str(d) for d in model_dirs], cfg), cfg))


@pytest.fixture(scope="module")
def lm_server(lm_dir):
    with start_server([lm_dir], max_body_bytes=256 * 1024, max_image_pixels=64 * 64) as srv:
        yield srv


def openai_client(server: LiveServer, api_key: str = "none"):
    import openai

    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=api_key, max_retries=0, timeout=60)
