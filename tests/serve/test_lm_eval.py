"""lm-evaluation-harness (`lm-eval` from PyPI, `local-completions` model) scores a small local JSON task
against a running lingvis server; its numbers must equal the ones computed here from the model itself."""
import glob
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import lingvis

pytest.importorskip("lm_eval", reason="pip install 'lm-eval[api]'")
pytest.importorskip("tenacity", reason="lm-eval's API models need lm-eval[api] (tenacity)")
TASKS = Path(__file__).parent / "lm_eval_task"


def write_tasks(folder: Path) -> None:
    data = TASKS / "smoke.jsonl"
    for yaml in TASKS.glob("*.yaml"):
        (folder / yaml.name).write_text(yaml.read_text().replace("test: smoke.jsonl", f"test: {data}"))


def read_jsonl(out: Path, pattern: str) -> list[dict]:
    path = Path(glob.glob(str(out / "*" / pattern))[0])
    return [json.loads(line) for line in path.read_text().splitlines()]


def loglik(model, tok, context: str, continuation: str) -> float:
    ctx, whole = tok.encode(context), tok.encode(context + continuation)
    with torch.no_grad():
        lp = model(torch.tensor([whole]))[0].log_softmax(-1)  # (T, V)
    return sum(lp[t - 1, whole[t]].item() for t in range(len(ctx), len(whole)))


def test_lm_eval_local_completions(lm_server, lm_dir, tmp_path):
    write_tasks(tmp_path)
    args = (f"base_url={lm_server.url}/v1/completions,model={lm_dir.name},num_concurrent=4,max_length=1024,"
            "max_retries=1")
    env = {**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    cmd = [sys.executable, "-m", "lm_eval", "--model", "local-completions", "--model_args", args,
           "--tasks", "lingvis_smoke,lingvis_smoke_gen", "--include_path", str(tmp_path),
           "--output_path", str(tmp_path / "out"), "--log_samples"]
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    results = json.loads(Path(glob.glob(str(tmp_path / "out" / "*" / "results_*.json"))[0]).read_text())
    acc = results["results"]["lingvis_smoke"]["acc,none"]
    exact = results["results"]["lingvis_smoke_gen"]["exact_match,none"]

    model, tok = lingvis.load(lm_dir), lingvis.load_tokenizer(lm_dir)
    docs = [json.loads(line) for line in (TASKS / "smoke.jsonl").read_text().splitlines()]
    samples = read_jsonl(tmp_path / "out", "samples_lingvis_smoke_2*.jsonl")
    correct = 0
    for s in samples:
        doc = docs[s["doc_id"]]
        ours = [loglik(model, tok, doc["question"], " " + c) for c in doc["choices"]]
        theirs = [float(r[0][0]) for r in s["resps"]]
        assert max(abs(a - b) for a, b in zip(ours, theirs)) < 1e-3
        correct += int(max(range(len(ours)), key=ours.__getitem__) == doc["answer"])
    assert acc == pytest.approx(correct / len(docs))

    gens = read_jsonl(tmp_path / "out", "samples_lingvis_smoke_gen_*.jsonl")
    for s in gens:
        want = lingvis.generate(model, tok, docs[s["doc_id"]]["question"], max_new_tokens=8, stop=["\n"])
        assert s["resps"][0][0] == want
    assert exact == pytest.approx(sum(g["resps"][0][0] == docs[g["doc_id"]]["target"] for g in gens) / len(gens))
    print(f"lm-eval scores: lingvis_smoke acc={acc:.3f}, lingvis_smoke_gen exact_match={exact:.3f}")
