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


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Tiny models on a shared 2-core machine: one intra-op thread avoids OpenMP oversubscription."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


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
    """Models on the CPU unless asked (the server's default is `auto`): tests compare with CPU references."""
    cfg = ServeConfig(**{"device": "cpu", **config})
    return LiveServer(create_app(load_models([str(d) for d in model_dirs], cfg), cfg))


@pytest.fixture(scope="module")
def lm_server(lm_dir):
    with start_server([lm_dir], max_body_bytes=256 * 1024, max_image_pixels=64 * 64) as srv:
        yield srv


def openai_client(server: LiveServer, api_key: str = "none"):
    import openai

    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=api_key, max_retries=0, timeout=60)


def shape_image(color: str, shape: str, size: int = 48):
    from PIL import Image, ImageDraw

    im = Image.new("RGB", (size, size), "white")
    d = ImageDraw.Draw(im)
    box = (8, 8, size - 8, size - 8)
    (d.ellipse if shape == "circle" else d.rectangle)(box, fill=color)
    return im


@pytest.fixture(scope="session")
def clip_dir(tmp_path_factory):
    """A clip-nano (random weights) whose text tower fits the char tokenizer."""
    torch.manual_seed(0)
    tok = char_tokenizer()
    text = dict(vocab_size=tok.vocab_size, context_length=24, dim=32, depth=1, heads=4, mlp_hidden=64)
    model = lingvis.build("clip-nano", text=text, pad_token_id=tok.pad_id or 0, eos_token_id=tok.eos_id)
    return lingvis.save(model, tmp_path_factory.mktemp("models") / "nano-clip", tokenizer=tok)


@pytest.fixture(scope="session")
def image_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("gallery")
    (root / "sub").mkdir()
    for i, (color, shape) in enumerate([("red", "circle"), ("blue", "square"), ("green", "circle"),
                                        ("yellow", "square"), ("black", "circle")]):
        shape_image(color, shape).save(root / ("sub" if i % 2 else ".") / f"{color}_{shape}.png")
    (root / "broken.png").write_bytes(b"not an image")
    return root


def data_url(im, fmt: str = "PNG") -> str:
    import base64
    import io

    buf = io.BytesIO()
    im.save(buf, format=fmt)
    return f"data:image/{fmt.lower()};base64," + base64.b64encode(buf.getvalue()).decode()


BERT_ROLES = {"cls": "[CLS]", "sep": "[SEP]", "pad": "[PAD]", "unk": "[UNK]", "mask": "[MASK]"}
ANSWERS = ["red", "blue", "green", "circle", "square", "yes", "no"]


@pytest.fixture(scope="session")
def t2i_dir(tmp_path_factory):
    """A tiny text-to-image model (t2i-nano) with a word tokenizer, saved as a run folder."""
    from lingvis.recipes.clip_data import train_word_tokenizer

    torch.manual_seed(0)
    tok = train_word_tokenizer(["a small red circle above a large blue square", "two green stars"])
    model = lingvis.build("t2i-nano", text=dict(vocab_size=tok.vocab_size, context_length=16, dim=32, depth=1,
                                                 heads=4, mlp_hidden=64))
    return lingvis.save(model, tmp_path_factory.mktemp("models") / "nano-t2i", tokenizer=tok)


@pytest.fixture(scope="session")
def vqa_dir(tmp_path_factory):
    """A fusion-tiny VQA classifier (random weights) with a BERT-style char tokenizer."""
    from lingvis.tokenizers import train_char

    torch.manual_seed(0)
    tok = train_char(TEXT.lower(), special_tokens=BERT_ROLES)
    model = lingvis.build("fusion-tiny", vocab_size=tok.vocab_size, answers=ANSWERS, pad_token_id=tok.pad_id)
    return lingvis.save(model, tmp_path_factory.mktemp("models") / "nano-vqa", tokenizer=tok)


@pytest.fixture(scope="session")
def captioner_dir(tmp_path_factory):
    """A captioner-nano (random weights) whose decoder fits the char tokenizer."""
    from lingvis.models import registry

    torch.manual_seed(0)
    tok = char_tokenizer()
    fam, cfg = registry.preset_config("captioner-nano")
    cfg.decoder = {**cfg.decoder, "vocab_size": tok.vocab_size}
    cfg.bos_id, cfg.eos_id, cfg.pad_id = tok.bos_id, tok.eos_id, tok.pad_id
    model = registry.family(fam).model_cls(cfg)
    return lingvis.save(model, tmp_path_factory.mktemp("models") / "nano-captioner", tokenizer=tok, format="lingvis")


@pytest.fixture(scope="session")
def mt_run_dir(tmp_path_factory):
    """A lingvis translation run (`lingvis pretrain seq2seq --direction both`, transformer-nano, 120 steps: enough
    to write words of both languages): a run folder whose checkpoint meta holds the tags >>en<< and >>zh<<."""
    from lingvis.recipes.translate import TranslateArgs, train_translation
    from lingvis.train.config import TrainConfig

    out = tmp_path_factory.mktemp("models") / "nano-mt"
    args = TranslateArgs(out=str(out), direction="both", preset="transformer-nano", vocab_size=300, n_train=200,
                         n_val=20)
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train_translation(args, TrainConfig(max_steps=120, batch_size=16, eval_every=120, eval_batches=1,
                                            warmup_steps=5, lr=3e-3, device="cpu", progress=False, log_every=100))
    finally:
        torch.set_num_threads(n)
    return out


MARIAN_WORDS = ("the house is big and the small cat runs quickly over green fields while we were talking "
                "das haus ist groß und die kleine katze läuft schnell über grüne felder").split()
MARIAN_CODES = (">>deu<<", ">>fra<<")


@pytest.fixture(scope="session")
def marian_mt_dir(tmp_path_factory):
    """A Hugging Face Marian folder as opus-mt ships it (multilingual target: >>deu<< and >>fra<< codes):
    a tiny random MarianMTModel (eos made likely, so hypotheses end at different steps) beside a SentencePiece
    source.spm/target.spm + vocab.json tokenizer."""
    import json
    import random
    import shutil

    spm = pytest.importorskip("sentencepiece")
    transformers = pytest.importorskip("transformers")
    d = tmp_path_factory.mktemp("models") / "marian-mt"
    d.mkdir()
    rng = random.Random(0)
    lines = [" ".join(rng.choice(MARIAN_WORDS) for _ in range(rng.randint(3, 10))) for _ in range(300)]
    (d / "corpus.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    spm.SentencePieceTrainer.train(input=str(d / "corpus.txt"), model_prefix=str(d / "sp"), vocab_size=90,
                                   character_coverage=1.0, hard_vocab_limit=False, num_threads=1, minloglevel=2)
    sp = spm.SentencePieceProcessor(model_file=str(d / "sp.model"))
    vocab = {"</s>": 0, "<unk>": 1, **{c: i + 2 for i, c in enumerate(MARIAN_CODES)}}
    for i in range(sp.get_piece_size()):
        if not (sp.is_control(i) or sp.is_unknown(i)):
            vocab[sp.id_to_piece(i)] = len(vocab)
    vocab["<pad>"] = len(vocab)
    (d / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    for name in ("source.spm", "target.spm"):
        shutil.copy(d / "sp.model", d / name)
    (d / "tokenizer_config.json").write_text(json.dumps(
        {"source_lang": "en", "target_lang": "mul", "model_max_length": 512, "eos_token": "</s>",
         "unk_token": "<unk>", "pad_token": "<pad>", "separate_vocabs": False}))
    for name in ("corpus.txt", "sp.model", "sp.vocab"):
        (d / name).unlink()
    V = len(vocab)
    torch.manual_seed(0)
    cfg = transformers.MarianConfig(vocab_size=V, d_model=32, encoder_layers=2, decoder_layers=2,
                                    encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=64,
                                    decoder_ffn_dim=64, max_position_embeddings=64, pad_token_id=V - 1,
                                    decoder_start_token_id=V - 1, eos_token_id=0, init_std=0.3, scale_embedding=True)
    hf = transformers.MarianMTModel(cfg).eval()
    with torch.no_grad():
        hf.final_logits_bias.normal_()
        hf.final_logits_bias[0, 0] += 2.0  # eos likely: translations end at different lengths
    hf.save_pretrained(d)
    return d
