"""`lingvis finetune chat` / `finetune dpo` / `data chat` / `evaluate chat` end to end on tiny runs:
learning a few conversations, exact resume (with packing), LoRA, DPO with each reference mode."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import lingvis
from lingvis.cli import main
from lingvis.data.chat import read_conversations, read_preferences

ROWS = [
    {"messages": [{"role": "user", "content": "reverse: abc"}, {"role": "assistant", "content": "cba"}]},
    {"conversations": [{"from": "human", "value": "count a in aab"}, {"from": "gpt", "value": "2"},
                       {"from": "human", "value": "sort: 3 1 2"}, {"from": "gpt", "value": "1 2 3"}]},
    {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "x=1 y=2; y?"},
                  {"role": "assistant", "content": "2"}]},
    {"prompt": "reverse: xyz", "completion": "zyx"},
]
PAIRS = [{"prompt": "reverse: abc", "chosen": "cba", "rejected": "The answer is cba."},
         {"prompt": "sort: 3 1 2", "chosen": "1 2 3", "rejected": "The answer is 1 2 3."},
         {"prompt": "x=1 y=2; y?", "chosen": "2", "rejected": "The answer is 2."}]
TINY = ["--preset", "gpt-nano", "--no-progress", "--batch-size", "4", "--warmup-steps", "5"]


def _jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _run(capsys, *argv) -> dict:
    assert main([str(a) for a in argv]) == 0
    out = capsys.readouterr().out
    return json.loads(out[out.index("{"):])


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("chat")
    return _jsonl(root / "conv.jsonl", ROWS), _jsonl(root / "prefs.jsonl", PAIRS), root


@pytest.fixture(scope="module")
def sft_run(files):
    """A tiny model that learns the four conversations (held-out = the same file)."""
    conv, _, root = files
    out = root / "sft"
    argv = ["finetune", "chat", "--data", conv, "--val-data", conv, "--out", out, *TINY, "--max-steps", "120",
            "--lr", "1e-2", "--eval-every", "120", "--samples", "2"]
    assert main([str(a) for a in argv]) == 0
    return out


def test_sft_learns_conversations(sft_run):
    rows = [json.loads(line) for line in (sft_run / "metrics.jsonl").read_text().splitlines()]
    val = [r for r in rows if r["split"] == "val"][-1]
    assert val["exact_match"] == 1.0 and val["loss"] < 0.1
    tok = lingvis.load_tokenizer(sft_run)
    assert tok.has_chat_template and "<|im_start|>" in tok.chat_template and tok.eos_ids == [tok.eos_id]


def test_evaluate_and_chat_use_the_template(sft_run, files, capsys, monkeypatch):
    conv, _, _ = files
    result = _run(capsys, "evaluate", "chat", "--model", sft_run, "--data", conv)
    assert result["exact_match"] == 1.0 and result["n"] == 4
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO("reverse: abc\nsort: 3 1 2\n"))
    assert main(["chat", "--model", str(sft_run), "--temperature", "0", "--max-new-tokens", "8"]) == 0
    out = capsys.readouterr().out
    assert "assistant> cba\n" in out and "assistant> 1 2 3\n" in out  # stops at <|im_end|>


def test_resume_is_exact_with_packing(files, tmp_path, capsys):
    conv, _, _ = files
    common = ["finetune", "chat", "--data", conv, "--val-data", conv, *TINY, "--packing", "--samples", "0",
              "--eval-every", "3", "--lr", "3e-3", "--batch-size", "2"]
    _run(capsys, *common, "--out", tmp_path / "straight", "--max-steps", "6")
    _run(capsys, *common, "--out", tmp_path / "resumed", "--max-steps", "3")
    summary = _run(capsys, *common, "--out", tmp_path / "resumed", "--max-steps", "6", "--resume")
    assert summary["step"] == 6 and summary["train_rows"] < summary["train_conversations"]
    a, b = (lingvis.load(tmp_path / name).state_dict() for name in ("straight", "resumed"))
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)


def test_lora_sft_from_a_model(sft_run, files, tmp_path, capsys):
    conv, _, _ = files
    out = tmp_path / "lora"
    summary = _run(capsys, "finetune", "chat", "--model", sft_run, "--data", conv, "--val-data", conv, "--out", out,
                   "--lora", "--max-steps", "3", "--samples", "0", "--no-progress", "--batch-size", "4")
    assert summary["step"] == 3
    meta = json.loads(next((out / "checkpoints").glob("step-*/lingvis.json")).read_text())
    assert meta["lora"]["rank"] == 8
    base, tuned = lingvis.load(sft_run).state_dict(), lingvis.load(out).state_dict()
    assert set(base) == set(tuned) and any(not torch.equal(base[k], tuned[k]) for k in base)


@pytest.mark.parametrize("mode", [["--reference", "precompute"], ["--reference", "live"],
                                  ["--reference", "live", "--lora"]])
def test_dpo_logs_rewards_and_accuracy(sft_run, files, tmp_path, capsys, mode):
    _, prefs, _ = files
    out = tmp_path / "dpo"
    summary = _run(capsys, "finetune", "dpo", "--model", sft_run, "--data", prefs, "--val-data", prefs, "--out", out,
                   "--max-steps", "4", "--eval-every", "2", "--batch-size", "3", "--beta", "0.2", "--lr", "1e-3",
                   "--warmup-steps", "1", "--no-progress", *mode)
    assert summary["train_pairs"] == 3 and summary["step"] == 4
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in rows if r["split"] == "train"]
    assert abs(train[0]["loss"] - 0.6931) < 1e-3  # policy == reference at the start: -log sigmoid(0)
    val = [r for r in rows if r["split"] == "val"][-1]
    for key in ("reward_margin", "reward_accuracy", "preference_accuracy", "loss"):
        assert key in val
    assert val["reward_margin"] > 0 and val["loss"] < 0.6931  # the chosen answers gained on the rejected ones


def test_dpo_rpo_alpha_adds_the_chosen_nll(sft_run, files, tmp_path, capsys):
    _, prefs, _ = files
    out = tmp_path / "rpo"
    _run(capsys, "finetune", "dpo", "--model", sft_run, "--data", prefs, "--val-data", prefs, "--out", out,
         "--max-steps", "2", "--eval-every", "2", "--batch-size", "3", "--lr", "1e-3", "--warmup-steps", "1",
         "--no-progress", "--rpo-alpha", "0.5")
    first = json.loads((out / "metrics.jsonl").read_text().splitlines()[0])
    assert first["nll_loss"] > 0
    assert first["loss"] == pytest.approx(0.693147 + 0.5 * first["nll_loss"], abs=1e-4)  # DPO at the start + NLL


def test_data_chat_writes_readable_files(tmp_path, capsys):
    paths = _run(capsys, "data", "chat", "--out", tmp_path, "--n-train", "30", "--n-test", "5", "--n-pairs", "6",
                 "--n-test-pairs", "2")
    assert len(read_conversations(paths["train"])) == 30 and len(read_conversations(paths["test"])) == 5
    assert len(read_preferences(paths["prefs_train"])) == 6 and len(read_preferences(paths["prefs_test"])) == 2


def test_bad_input_errors(files, tmp_path, capsys):
    _, prefs, _ = files
    bad = _jsonl(tmp_path / "bad.jsonl", [{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant"}]}])
    assert main(["finetune", "chat", "--data", str(bad), "--out", str(tmp_path / "x"), *TINY]) == 2
    assert "bad.jsonl:1: messages[1] has no 'content'" in capsys.readouterr().err
    assert main(["finetune", "dpo", "--data", str(prefs), "--out", str(tmp_path / "y")]) == 2
    assert "--model is required" in capsys.readouterr().err


def test_a_tokenizer_larger_than_the_embedding_is_named(files, tmp_path, capsys):
    from lingvis.tokenizers import train_char

    conv, _, _ = files
    tok = train_char(["reverse: abc count sort 0123456789 x=y? The answer is"])
    lingvis.save(lingvis.build("gpt-nano", vocab_size=tok.vocab_size - 3), tmp_path / "m", tokenizer=tok)
    assert main(["finetune", "chat", "--model", str(tmp_path / "m"), "--data", str(conv), "--out",
                 str(tmp_path / "x"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"has {tok.vocab_size} tokens but the model's embedding only {tok.vocab_size - 3}" in err


def test_builtin_mix_flag():
    import argparse

    from lingvis.cli.chat_train import _task_mix

    assert _task_mix("lookup=3,count=1.5") == {"reverse": 1.0, "sort": 1.0, "count": 1.5, "lookup": 3.0}
    with pytest.raises(argparse.ArgumentTypeError, match="'add=2': expected TASK=WEIGHT"):
        _task_mix("add=2")
    with pytest.raises(argparse.ArgumentTypeError, match="weight 'x' is not a number"):
        _task_mix("lookup=x")
