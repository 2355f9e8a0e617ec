"""Trainer behaviour in-process: NaN guard, wall-clock budget, best/last pointers, resume, accumulation."""
import json
import shutil

import pytest
import torch

import lingvis
from lingvis.data.packing import PackedLMDataset
from lingvis.io import read_safetensors
from lingvis.tasks.lm import CausalLMTask
from lingvis.train.config import TrainConfig
from lingvis.train.trainer import Trainer, TrainingDiverged

V = 23


def datasets():
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, V, (2000,), generator=g)
    return PackedLMDataset(ids[:1600], 16), PackedLMDataset(ids[1600:], 16)


def make_trainer(out, task=None, dropout=0.1, **cfg):
    torch.manual_seed(0)
    model = lingvis.build("gpt-nano", vocab_size=V, block_size=16, dropout=dropout)
    base = dict(max_steps=6, eval_every=2, eval_batches=2, batch_size=4, log_every=1, warmup_steps=2,
                lr=3e-3, progress=False, device="cpu")
    train, val = datasets()
    return Trainer(model, task or CausalLMTask(), train, val, TrainConfig(**{**base, **cfg}), out)


def rows(out, split):
    lines = (out / "metrics.jsonl").read_text().splitlines()
    return [(r["step"], r["loss"]) for r in map(json.loads, lines) if r["split"] == split]


class FailAt(CausalLMTask):
    """Raises `exc` (or returns a NaN loss) on the n-th training call to `loss`."""

    def __init__(self, n, exc=None):
        self.n, self.exc, self.calls = n, exc, 0

    def loss(self, model, batch):
        loss, m = super().loss(model, batch)
        if model.training:
            self.calls += 1
            if self.calls == self.n:
                if self.exc is not None:
                    raise self.exc
                return loss * float("nan"), m
        return loss, m


class Scripted(CausalLMTask):
    """Evaluation returns scripted metric values, to steer best-checkpoint selection."""

    def __init__(self, values, greater):
        self.values, self.greater_is_better = list(values), greater
        self.metric_for_best = "score"

    def evaluate(self, model, batches):
        return {"score": self.values.pop(0)}


def test_nan_guard_names_step_and_last_good_checkpoint(tmp_path):
    trainer = make_trainer(tmp_path, FailAt(3))
    with pytest.raises(TrainingDiverged, match=r"non-finite training loss \(nan\) at step 3; the last good "
                                               r"checkpoint is .*step-0000002.*Lower --lr"):
        trainer.fit()


def test_max_minutes_stops_evaluates_and_saves(tmp_path):
    summary = make_trainer(tmp_path, max_steps=1000, max_minutes=1e-6).fit()
    assert summary["stopped_by"] == "max_minutes" and summary["step"] == 1
    assert {"loss", "perplexity"} <= set(summary["eval"])
    assert rows(tmp_path, "val") == [(1, summary["eval"]["loss"])]
    assert (tmp_path / "checkpoints" / "step-0000001" / "model.safetensors").is_file()
    assert json.loads((tmp_path / "checkpoints" / "last.json").read_text())["step"] == 1
    assert (tmp_path / "loss.png").stat().st_size > 1000


@pytest.mark.parametrize("greater, values", [(False, [3.0, 1.0, 2.0]), (True, [1.0, 3.0, 2.0])])
def test_best_and_last_pointers_and_pruning(tmp_path, greater, values):
    summary = make_trainer(tmp_path, Scripted(values, greater), keep_last=1).fit()
    ck = tmp_path / "checkpoints"
    assert json.loads((ck / "best.json").read_text()) == {"dir": "step-0000004", "step": 4, "metric": values[1]}
    assert json.loads((ck / "last.json").read_text()) == {"dir": "step-0000006", "step": 6}
    assert sorted(p.name for p in ck.iterdir() if p.is_dir()) == ["step-0000004", "step-0000006"]
    assert summary["best"] == values[1]
    assert lingvis.resolve_checkpoint(tmp_path) == ck / "step-0000004"
    model = lingvis.load(tmp_path)
    best = read_safetensors(ck / "step-0000004" / "model.safetensors")
    assert all(torch.equal(model.state_dict()[k], v) for k, v in best.items())
    state = json.loads((ck / "step-0000006" / "trainer_state.json").read_text())
    assert state["step"] == 6 and state["best_metric"] == values[1] and state["metric_for_best"] == "score"
    for name in ("optimizer.pt", "rng.pt", "lingvis.json"):
        assert (ck / "step-0000006" / name).is_file()


def test_run_folder_falls_back_to_last_when_best_is_gone(tmp_path):
    make_trainer(tmp_path, Scripted([1.0, 2.0, 3.0], False), max_steps=4).fit()
    ck = tmp_path / "checkpoints"
    assert json.loads((ck / "best.json").read_text())["dir"] == "step-0000002"
    shutil.rmtree(ck / "step-0000002")
    assert lingvis.resolve_checkpoint(tmp_path) == ck / "step-0000004"


def test_in_process_resume_after_interrupt_is_exact(tmp_path):
    make_trainer(tmp_path / "ref").fit()
    with pytest.raises(KeyboardInterrupt):
        make_trainer(tmp_path / "run", FailAt(5, KeyboardInterrupt())).fit()
    assert rows(tmp_path / "run", "train")[-1][0] == 4
    summary = make_trainer(tmp_path / "run").fit(resume=True)
    assert summary["step"] == 6
    assert rows(tmp_path / "run", "train") == rows(tmp_path / "ref", "train")
    assert rows(tmp_path / "run", "val") == rows(tmp_path / "ref", "val")


def test_resume_without_checkpoint_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint found under"):
        make_trainer(tmp_path).fit(resume=True)


def test_gradient_accumulation_matches_one_big_batch(tmp_path):
    a = make_trainer(tmp_path / "a", dropout=0.0, max_steps=1, grad_accum=1)
    b = make_trainer(tmp_path / "b", dropout=0.0, max_steps=1, grad_accum=2)
    ra, rb = a._train_step(a._train_batches()), b._train_step(b._train_batches())
    assert ra["tokens"] == rb["tokens"] == 4 * 16
    # the clipped gradient norm sees the summed micro-batch gradients: equal only if each is scaled by 1/2
    assert abs(ra["loss"] - rb["loss"]) < 1e-5 and abs(ra["grad_norm"] - rb["grad_norm"]) < 1e-5
    for (name, p), q in zip(a.model.named_parameters(), b.model.parameters()):
        assert torch.allclose(p, q, atol=1e-4), name  # Adam's first step amplifies float noise of tiny grads


def test_training_reduces_loss(tmp_path):
    # a learnable stream: repeating pattern; 40 steps of a tiny model must beat the uniform baseline
    ids = torch.arange(2000) % 7
    torch.manual_seed(0)
    model = lingvis.build("gpt-nano", vocab_size=V, block_size=16)
    cfg = TrainConfig(max_steps=40, eval_every=40, eval_batches=2, batch_size=4, warmup_steps=5, lr=3e-3,
                      progress=False, device="cpu")
    summary = Trainer(model, CausalLMTask(), PackedLMDataset(ids[:1600], 16), PackedLMDataset(ids[1600:], 16),
                      cfg, tmp_path).fit()
    assert summary["eval"]["loss"] < 0.5 < torch.log(torch.tensor(float(V)))


def test_lr_scale_gives_a_parameter_group_its_own_learning_rate(tmp_path):
    trainer = make_trainer(tmp_path, dropout=0.0, max_steps=4, eval_every=4, lr_scale={"wte": 1e-6, "ln_f": 2.0})
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    trainer.fit()
    lrs = {g["lr_scale"]: g["lr"] for g in trainer.optimizer.param_groups}
    assert lrs[2.0] == pytest.approx(2 * lrs[1.0]) and lrs[1e-6] == pytest.approx(1e-6 * lrs[1.0])
    moved = {n: float((p.detach() - before[n]).abs().max()) for n, p in trainer.model.named_parameters()}
    assert moved["wte.weight"] < 1e-7 and min(moved["wpe.weight"], moved["ln_f.weight"]) > 1e-4
