"""The GPT command line end to end: pretrain (config file + overrides) -> generate -> chat -> convert,
tokenizer training, --help everywhere, and clear errors for bad input."""
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import lingvis
from lingvis.cli import main
from lingvis.data.corpus import shakespeare_text

transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "plays.txt"
    path.write_text(shakespeare_text()[:15_000], encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def run(corpus, tmp_path_factory):
    """One tiny pretraining run; the YAML config sets values that command-line flags partly override."""
    root = tmp_path_factory.mktemp("run")
    cfg = root / "train.yaml"
    cfg.write_text("max-steps: 50\nlr: 0.004\neval_every: 3\nbatch_size: 4\npreset: gpt-micro\n")
    out = root / "run"
    argv = ["pretrain", "gpt", "--config", str(cfg), "--data", str(corpus), "--out", str(out), "--preset",
            "gpt-nano", "--block-size", "32", "--max-steps", "6", "--eval-batches", "2", "--samples", "1",
            "--no-progress"]
    buf = io.StringIO()
    sys_stdout, sys.stdout = sys.stdout, buf
    try:
        assert main(argv) == 0
    finally:
        sys.stdout = sys_stdout
    return out, buf.getvalue()


def cli(capsys, *argv, stdin: str | None = None, monkeypatch=None) -> tuple[int, str, str]:
    if stdin is not None:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_pretrain_writes_a_loadable_run_and_honours_config_precedence(run):
    out, printed = run
    cfg = json.loads((out / "train_config.json").read_text())
    assert cfg["max_steps"] == 6            # flag beats the file's max-steps: 50
    assert cfg["lr"] == 0.004 and cfg["eval_every"] == 3 and cfg["batch_size"] == 4  # from the file
    summary = json.loads(printed[:printed.index("--- sample 1 ---")])
    assert summary["step"] == 6 and summary["stopped_by"] == "max_steps" and "loss" in summary["eval"]
    model = lingvis.load(out)
    assert model.config.n_layer == 2 and model.config.block_size == 32  # --preset gpt-nano beat the file
    for name in ("metrics.jsonl", "loss.png", "checkpoints/best.json", "checkpoints/last.json"):
        assert (out / name).is_file(), name


def test_generate_prints_the_continuation(run, capsys):
    out, _ = run
    code, text, _ = cli(capsys, "generate", "--model", out, "--prompt", "KING", "--max-new-tokens", 12,
                        "--temperature", 0)
    model, tok = lingvis.load(out), lingvis.load_tokenizer(out)
    want = lingvis.generate(model, tok, "KING", max_new_tokens=12)
    assert code == 0 and text == want + "\n"
    code, streamed, _ = cli(capsys, "generate", "--model", out, "--prompt", "KING", "--max-new-tokens", 12,
                            "--stream")
    assert streamed == text
    code, compiled, _ = cli(capsys, "generate", "--model", out, "--prompt", "KING", "--max-new-tokens", 12,
                            "--compile")  # the torch.compile'd static-cache decode step: the same greedy text
    assert code == 0 and compiled == text
    code, two, _ = cli(capsys, "generate", "--model", out, "--prompt", "KING", "--prompt", "To be",
                       "--max-new-tokens", 12)
    assert two == lingvis.generate(model, tok, ["KING", "To be"], max_new_tokens=12)[0] + "\n" + \
        lingvis.generate(model, tok, "To be", max_new_tokens=12) + "\n"


@pytest.mark.parametrize("mode,activations", [("weights", "float"), ("w8a8", "int8")])
def test_generate_int8(run, capsys, mode, activations):
    from lingvis.quant import fbgemm_available, quantize_int8

    if activations == "int8" and not fbgemm_available():
        pytest.skip("torch build without fbgemm/x86 int8")
    out, _ = run
    code, text, _ = cli(capsys, "generate", "--model", out, "--prompt", "KING", "--max-new-tokens", 12,
                        "--int8", mode)
    q = quantize_int8(lingvis.load(out), activations=activations)
    assert code == 0 and text == lingvis.generate(q, lingvis.load_tokenizer(out), "KING", max_new_tokens=12) + "\n"


def test_chat_reads_turns_from_stdin_and_resets(run, capsys, monkeypatch):
    out, _ = run
    args = ["chat", "--model", out, "--max-new-tokens", 8, "--temperature", 0, "--system", "Be brief."]
    code, text, _ = cli(capsys, *args, stdin="hello\n/reset\nhello\n/quit\nnever read\n",
                        monkeypatch=monkeypatch)
    replies = [chunk[:-1] for chunk in text.split("assistant> ")[1:]]  # each turn: reply + "\n"
    assert code == 0 and len(replies) == 2
    assert replies[0] == replies[1]  # /reset dropped the first exchange from the history
    tok, model = lingvis.load_tokenizer(out), lingvis.load(out)
    prompt = tok.apply_chat_template([{"role": "system", "content": "Be brief."},
                                      {"role": "user", "content": "hello"}], add_generation_prompt=True)
    assert replies[0] == lingvis.generate(model, tok, prompt, max_new_tokens=8, overflow="slide")
    # the 32-token context cannot hold the whole history: the oldest turns are dropped, the system message
    # stays; a message that cannot fit even alone is refused and the chat goes on; EOF ends the chat
    code, text, err = cli(capsys, *args, stdin="one\ntwo\nthree\n" + "far too long " * 5 + "\nfour\n",
                          monkeypatch=monkeypatch)
    assert code == 0 and text.count("assistant> ") == 4
    assert "that message does not fit in the model's context (32 tokens)" in err


def test_fit_chat_prompt_drops_oldest_turns_but_keeps_system(run):
    from lingvis.cli.gpt import fit_chat_prompt

    tok = lingvis.load_tokenizer(run[0])
    msg = lambda role, text: {"role": role, "content": text}  # noqa: E731
    short = [msg("system", "S"), msg("user", "c")]
    budget = len(tok.encode(tok.apply_chat_template(short, add_generation_prompt=True)))
    history = [msg("system", "S"), msg("user", "a"), msg("assistant", "b"), msg("user", "c")]
    whole = tok.apply_chat_template(history, add_generation_prompt=True)
    assert fit_chat_prompt(tok, list(history), len(tok.encode(whole)), keep=1) == whole  # fits as it is
    prompt = fit_chat_prompt(tok, history, len(tok.encode(whole)) - 1, keep=1)
    assert history == short and len(tok.encode(prompt)) == budget
    assert fit_chat_prompt(tok, [msg("user", "x" * 40)], budget=30) is None


def test_convert_to_hf_and_back(run, tmp_path, capsys):
    out, _ = run
    code, _, _ = cli(capsys, "convert", out, tmp_path / "hf")
    assert code == 0 and {"config.json", "model.safetensors", "tokenizer.json"} <= {
        p.name for p in (tmp_path / "hf").iterdir()}
    ours = lingvis.load(out)
    hf = transformers.GPT2LMHeadModel.from_pretrained(tmp_path / "hf").eval()
    x = torch.randint(0, ours.config.vocab_size, (2, 10))
    with torch.no_grad():
        assert (ours(x) - hf(x).logits).abs().max() <= 1e-4
    assert cli(capsys, "convert", tmp_path / "hf", tmp_path / "native", "--to", "lingvis")[0] == 0
    assert (tmp_path / "native" / "lingvis.json").is_file()
    back = lingvis.load(tmp_path / "native")
    with torch.no_grad():
        assert torch.allclose(back(x), ours(x), atol=1e-5)
    assert lingvis.load_tokenizer(tmp_path / "native").encode("KING") == lingvis.load_tokenizer(out).encode("KING")


@pytest.mark.parametrize("kind, size", [("char", 0), ("bpe", 300)])
def test_tokenizer_train(corpus, tmp_path, capsys, kind, size):
    args = ["tokenizer", "train", corpus, "--kind", kind, "--out", tmp_path / "tok"]
    code, text, _ = cli(capsys, *args, *(["--vocab-size", size] if size else []))
    assert code == 0 and f"trained {kind} tokenizer" in text
    tok = lingvis.load_tokenizer(tmp_path / "tok")
    sample = "ROMEO: What light through yonder window?"
    assert tok.decode(tok.encode(sample)) == sample
    if kind == "bpe":
        assert tok.vocab_size <= 300 and len(tok.encode(sample)) < len(sample)


@pytest.mark.parametrize("argv, words", [
    ([], "pretrain"), (["pretrain"], "gpt"),
    (["pretrain", "gpt"], "--max-minutes"), (["generate"], "--temperature"), (["chat"], "/reset"),
    (["convert"], "--to"), (["tokenizer", "train"], "--vocab-size"),
])
def test_help(capsys, argv, words):
    with pytest.raises(SystemExit) as e:
        main([*argv, "--help"])
    assert e.value.code == 0 and words in capsys.readouterr().out


def test_console_script_runs():
    exe = Path(sys.executable).with_name("lingvis")
    cmd = [str(exe)] if exe.is_file() else [sys.executable, "-m", "lingvis"]
    proc = subprocess.run([*cmd, "generate", "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "--max-new-tokens" in proc.stdout


# ---- bad input -----------------------------------------------------------------------------------

def pretrain_err(capsys, data, out) -> str:
    code, _, err = cli(capsys, "pretrain", "gpt", "--data", data, "--out", out, "--preset", "gpt-nano",
                       "--max-steps", 1, "--no-progress", "--samples", 0)
    assert code == 2
    return err


def test_empty_corpus(tmp_path, capsys):
    (tmp_path / "empty.txt").write_text("  \n\n")
    assert "error: empty corpus" in pretrain_err(capsys, tmp_path / "empty.txt", tmp_path / "o")
    (tmp_path / "dir").mkdir()
    assert "no .txt" in pretrain_err(capsys, tmp_path / "dir", tmp_path / "o")
    assert "training text not found" in pretrain_err(capsys, tmp_path / "missing.txt", tmp_path / "o")


def test_non_utf8_text_names_file_and_offset(tmp_path, capsys):
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("Ol\u00e1 mundo, cora\u00e7\u00e3o".encode("latin-1") * 40)
    err = pretrain_err(capsys, bad, tmp_path / "o")
    assert "latin1.txt: not valid UTF-8 at byte offset 2" in err


def test_generate_errors(run, tmp_path, capsys):
    out, _ = run
    code, _, err = cli(capsys, "generate", "--model", tmp_path / "nothing", "--prompt", "x")
    assert code == 2 and "checkpoint not found" in err
    code, _, err = cli(capsys, "generate", "--model", out, "--prompt", "x" * 40, "--overflow", "error")
    assert code == 2 and "prompt of 40 tokens leaves no room in the model's context length 32" in err
    code, _, err = cli(capsys, "generate", "--model", out, "--prompt", "KING", "--max-new-tokens", 40,
                       "--overflow", "error")
    assert code == 2 and "prompt of 4 tokens + max_new_tokens 40 = 44 exceeds the model's context length 32" in err


def test_config_file_errors(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("max_steps: 2\nlearning_rate: 0.1\n")
    with pytest.raises(SystemExit, match="unknown option 'learning_rate'"):
        main(["pretrain", "gpt", "--out", str(tmp_path / "o"), "--config", str(cfg)])
    cfg.write_text("- just\n- a list\n")
    with pytest.raises(SystemExit, match="must hold a mapping"):
        main(["pretrain", "gpt", "--out", str(tmp_path / "o"), "--config", str(cfg)])
    with pytest.raises(SystemExit, match="config file not found"):
        main(["pretrain", "gpt", "--out", str(tmp_path / "o"), "--config", str(tmp_path / "nope.json")])


def test_out_may_come_from_the_config_file(corpus, tmp_path, capsys):
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"out": str(tmp_path / "from-config"), "max_steps": 1, "eval_every": 1,
                               "eval_batches": 1, "batch_size": 2, "block_size": 16}))
    code, _, _ = cli(capsys, "pretrain", "gpt", "--config", cfg, "--data", corpus, "--preset", "gpt-nano",
                     "--no-progress", "--samples", 0)
    assert code == 0 and (tmp_path / "from-config" / "checkpoints" / "last.json").is_file()
    with pytest.raises(SystemExit):
        main(["pretrain", "gpt", "--data", str(corpus), "--max-steps", "1"])
    assert "--out is required" in capsys.readouterr().err
