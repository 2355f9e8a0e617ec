"""Trainer callbacks: hook order and payloads, TensorBoard events read back (and purged on resume),
offline W&B runs, the error naming the extra, and run_info.json (command line, options, versions)."""
from __future__ import annotations

import json
import shutil
import sys
from importlib.metadata import version
from pathlib import Path

import pytest
import torch

import lingvis
from lingvis._optional import MissingDependency
from lingvis.data.packing import PackedLMDataset
from lingvis.tasks.lm import CausalLMTask
from lingvis.train.callbacks import Callback
from lingvis.train.config import TrainConfig
from lingvis.train.trainer import Trainer

V = 23


def make_trainer(out: Path, callbacks=(), **cfg) -> Trainer:
    torch.manual_seed(0)
    model = lingvis.build("gpt-nano", vocab_size=V, block_size=16, dropout=0.0)
    ids = torch.randint(0, V, (1200,), generator=torch.Generator().manual_seed(0))
    base = dict(max_steps=4, eval_every=2, eval_batches=1, batch_size=4, log_every=1, warmup_steps=1, lr=3e-3,
                progress=False, device="cpu")
    return Trainer(model, CausalLMTask(), PackedLMDataset(ids[:1000], 16), PackedLMDataset(ids[1000:], 16),
                   TrainConfig(**{**base, **cfg}), out, callbacks=callbacks)


def metrics(out: Path, split: str) -> dict[int, dict]:
    rows = map(json.loads, (out / "metrics.jsonl").read_text().splitlines())
    return {r["step"]: r for r in rows if r["split"] == split}


class Recorder(Callback):
    def __init__(self):
        self.calls = []

    def on_start(self, trainer, step):
        self.calls.append(("start", step))

    def on_log(self, trainer, row):
        self.calls.append(("log", row["step"], row["loss"]))

    def on_eval(self, trainer, m):
        self.calls.append(("eval", trainer.step, m["loss"]))

    def on_checkpoint(self, trainer, path):
        self.calls.append(("checkpoint", trainer.step, path))

    def on_end(self, trainer, summary):
        self.calls.append(("end", summary["step"], summary["stopped_by"]))


def test_hooks_fire_in_order_with_what_the_log_holds(tmp_path):
    rec = Recorder()
    make_trainer(tmp_path, callbacks=[rec]).fit()
    train, val = metrics(tmp_path, "train"), metrics(tmp_path, "val")
    kinds = [c[0] for c in rec.calls]
    assert kinds == ["start", "log", "log", "eval", "checkpoint", "log", "log", "eval", "checkpoint", "end"]
    assert [(c[1], c[2]) for c in rec.calls if c[0] == "log"] == [(s, train[s]["loss"]) for s in (1, 2, 3, 4)]
    assert [(c[1], c[2]) for c in rec.calls if c[0] == "eval"] == [(s, val[s]["loss"]) for s in (2, 4)]
    for _, step, path in (c for c in rec.calls if c[0] == "checkpoint"):
        assert path == tmp_path / "checkpoints" / f"step-{step:07d}" and (path / "model.safetensors").is_file()
    assert rec.calls[-1] == ("end", 4, "max_steps")


def test_on_end_hears_about_a_failed_run(tmp_path):
    class Boom(Recorder):
        def on_log(self, trainer, row):
            if row["step"] == 2:
                raise RuntimeError("tracker down")

    rec = Boom()
    with pytest.raises(RuntimeError, match="tracker down"):
        make_trainer(tmp_path, callbacks=[rec]).fit()
    assert rec.calls[-1] == ("end", 2, "error")


def scalars(log_dir: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(log_dir))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_tensorboard_events_hold_the_logged_metrics_and_resume_cleanly(tmp_path):
    pytest.importorskip("tensorboard")
    make_trainer(tmp_path, log_to=("tensorboard",)).fit()
    train, val = metrics(tmp_path, "train"), metrics(tmp_path, "val")
    got = scalars(tmp_path / "tensorboard")
    assert {"train/loss", "train/lr", "train/grad_norm", "train/tokens_per_s", "val/loss"} <= set(got)
    assert [s for s, _ in got["train/loss"]] == [1, 2, 3, 4]
    for step, value in got["train/loss"]:
        assert value == pytest.approx(train[step]["loss"], rel=1e-6)
    assert [(s, pytest.approx(v, rel=1e-6)) for s, v in got["val/loss"]] == [(s, val[s]["loss"]) for s in (2, 4)]

    # rewind to the step-2 checkpoint and resume: events after step 2 are replaced, not duplicated
    shutil.rmtree(tmp_path / "checkpoints" / "step-0000004")
    (tmp_path / "checkpoints" / "last.json").write_text(json.dumps({"dir": "step-0000002", "step": 2}))
    (tmp_path / "checkpoints" / "best.json").write_text(json.dumps({"dir": "step-0000002", "step": 2}))
    make_trainer(tmp_path, log_to=("tensorboard",), max_steps=5).fit(resume=True)
    again = scalars(tmp_path / "tensorboard")
    assert [s for s, _ in again["train/loss"]] == [1, 2, 3, 4, 5]
    train = metrics(tmp_path, "train")
    for step, value in again["train/loss"]:
        assert value == pytest.approx(train[step]["loss"], rel=1e-6)


def test_wandb_writes_an_offline_run(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("WANDB_MODE", raising=False)
    make_trainer(tmp_path / "run", log_to=("wandb",), max_steps=2).fit()
    runs = list((tmp_path / "run" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    data = next(runs[0].glob("run-*.wandb")).read_bytes()  # protobuf records: metric names appear as keys
    assert b"train/loss" in data and b"val/loss" in data and b"max_steps" in data  # metrics and the config


def test_missing_tracker_package_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb -> ImportError
    with pytest.raises(MissingDependency, match=r"pip install 'lingvis\[track\]'"):
        make_trainer(tmp_path, log_to=("wandb",))
    with pytest.raises(ValueError, match="unknown tracker"):
        TrainConfig(log_to=("mlflow",))
    assert TrainConfig(log_to="tensorboard,wandb").log_to == ("tensorboard", "wandb")


def test_run_folder_records_command_options_and_versions(tmp_path):
    pytest.importorskip("tensorboard")
    from lingvis.cli import main
    from lingvis.data.corpus import shakespeare_text

    corpus = tmp_path / "plays.txt"
    corpus.write_text(shakespeare_text()[:5_000], encoding="utf-8")
    cfg = tmp_path / "train.yaml"
    cfg.write_text("lr: 0.004\n")
    argv = ["pretrain", "gpt", "--config", str(cfg), "--data", str(corpus), "--out", str(tmp_path / "run"),
            "--preset", "gpt-nano", "--block-size", "16", "--max-steps", "2", "--eval-every", "2",
            "--eval-batches", "1", "--samples", "0", "--no-progress", "--log-to", "tensorboard"]
    assert main(argv) == 0
    info = json.loads((tmp_path / "run" / "run_info.json").read_text())
    assert info["command"].startswith("lingvis pretrain gpt --config ")
    assert info["options"]["lr"] == 0.004 and info["options"]["max_steps"] == 2  # file and flags resolved
    assert info["train_config"]["lr"] == 0.004 and info["train_config"]["log_to"] == ["tensorboard"]
    assert info["versions"]["torch"] == version("torch")
    assert info["versions"]["lingvis"] == lingvis.__version__ and info["resumed_from_step"] is None
    assert "train/loss" in scalars(tmp_path / "run" / "tensorboard")
