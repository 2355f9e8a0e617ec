"""Budgeted runs: the horizon from measured step time, the evaluation plan, and exact resume (a fake
clock makes the timings, and so the plan, deterministic)."""
import json

import pytest
import torch

import lingvis
from lingvis.data.packing import PackedLMDataset
from lingvis.tasks.lm import CausalLMTask
from lingvis.train import budget as budget_mod
from lingvis.train.budget import RunBudget
from lingvis.train.config import TrainConfig
from lingvis.train.trainer import Trainer

V = 23


def test_without_a_budget_the_horizon_is_max_steps_and_the_cadence_is_fixed():
    b = RunBudget.from_config(TrainConfig(max_steps=50))
    assert (b.horizon, b.eval_every, b.eval_batches, b.lr_horizon) == (50, 200, 20, None)
    assert not b.calibrating and not b.should_eval(10)


def test_horizon_and_evaluation_plan_from_the_measured_step_time():
    b = RunBudget.from_config(TrainConfig(max_steps=10_000, max_minutes=2.0), checkpoint_bytes=0)
    assert b.calibrating and b.end == 10_000
    for _ in range(budget_mod.CALIBRATION_STEPS - 1):
        b.record_step(0.5)
        assert not b.calibration_done()
    b.record_step(0.5)
    assert b.calibration_done()
    b.fix(step=9, used=5.0, first_step_s=2.0)
    # 120 s budget, 5 s used, 8 evaluations of 2 batches (0.5/3 s each) + a 0.05 s checkpoint guess
    cycle = 2 * 0.5 / 3 + 0.05
    assert b.eval_batches == budget_mod.MIN_AUTO_EVAL_BATCHES
    assert b.horizon == 9 + int((120 - 5 - 8 * cycle) / 0.5)
    assert b.eval_every == round(b.horizon / 9) and b.lr_horizon == b.horizon
    # max_steps still caps the horizon
    c = RunBudget.from_config(TrainConfig(max_steps=100, max_minutes=2.0))
    c.record_step(0.5)
    c.record_step(0.5)
    c.fix(step=3, used=1.0, first_step_s=1.0)
    assert c.horizon == 100


def test_eval_batches_grow_with_the_budget_and_user_settings_are_kept():
    small, large = (RunBudget.from_config(TrainConfig(max_steps=10 ** 6, max_minutes=m)) for m in (2, 30))
    for b in (small, large):
        b.record_step(0.03)
        b.record_step(0.03)
        b.fix(step=3, used=0.1, first_step_s=0.1)
    assert small.eval_batches < large.eval_batches <= budget_mod.MAX_AUTO_EVAL_BATCHES
    user = RunBudget.from_config(TrainConfig(max_steps=10 ** 6, max_minutes=2, eval_every=7, eval_batches=3))
    user.record_step(0.03)
    user.fix(step=2, used=0.1, first_step_s=0.1)
    assert (user.eval_every, user.eval_batches, user.next_eval) == (7, 3, 7)


def test_a_user_cadence_counts_only_the_evaluations_within_the_budget():
    """eval_every set by the user and a far max_steps: the plan reserves time for the evaluations that fit
    in the budget, not for those up to max_steps (which once left a 2-minute run 10 steps)."""
    b = RunBudget.from_config(TrainConfig(max_steps=100_000, max_minutes=2, eval_every=200, eval_batches=10))
    b.record_step(0.1)
    b.record_step(0.1)
    b.fix(step=9, used=1.0, first_step_s=0.2)
    cycle = 10 * 0.1 / 3 + b.checkpoint_guess
    evals = b._evals_left(9, b.horizon)
    assert 1000 < b.horizon <= 9 + int(119 / 0.1)
    assert abs(9 + (119 - evals * cycle) / 0.1 - b.horizon) <= cycle / 0.1 + 1  # within one evaluation's time


def test_replan_moves_the_horizon_when_steps_get_slower_and_thins_costly_evaluations():
    b = RunBudget.from_config(TrainConfig(max_steps=10 ** 6, max_minutes=1.0))
    b.record_step(0.1)
    b.record_step(0.1)
    b.fix(step=3, used=0.5, first_step_s=0.1)
    h0 = b.horizon
    for _ in range(50):
        b.record_step(0.2)  # the machine got twice as slow
    b.replan(step=53, used=0.5 + 50 * 0.2)
    b.evaluated(53)
    assert b.horizon < h0 and b.horizon == pytest.approx(53 + (60 - 10.5) / 0.2, abs=15)
    every = b.eval_every
    # evaluations + checkpoints that cost 1 s each (1.7% of 60 s): once one such cycle is known (they are
    # used one cycle late, as a resumed run knows them), no further evaluation fits in 3% of the budget
    b.cycle_cost(1.0)
    for _ in range(10):
        b.record_step(0.2)
    b.replan(step=63, used=13.5)
    b.evaluated(63)
    assert b.eval_every <= every + 1  # still the planned cadence: no cost known yet
    b.cycle_cost(1.0)
    for _ in range(10):
        b.record_step(0.2)
    b.replan(step=73, used=16.5)
    b.evaluated(73)
    assert b.eval_every > b.horizon - 73 and not b.should_eval(b.horizon - 1)


class Clocked(CausalLMTask):
    """A fake clock: each training forward takes 1 s, each evaluation batch 0.25 s. Optionally raises
    KeyboardInterrupt at the n-th training call, like a killed process."""

    def __init__(self, interrupt_at=None):
        self.now, self.calls, self.interrupt_at = 0.0, 0, interrupt_at

    def clock(self):
        return self.now

    def loss(self, model, batch):
        if model.training:
            self.calls += 1
            if self.calls == self.interrupt_at:
                raise KeyboardInterrupt
        self.now += 1.0 if model.training else 0.25
        return super().loss(model, batch)


def budgeted(out, task, **cfg):
    torch.manual_seed(0)
    ids = torch.randint(0, V, (3000,), generator=torch.Generator().manual_seed(0))
    model = lingvis.build("gpt-nano", vocab_size=V, block_size=16, dropout=0.1)
    base = dict(max_steps=10_000, max_minutes=1.0, batch_size=4, log_every=1, warmup_steps=5, lr=3e-3,
                min_lr=3e-4, progress=False, device="cpu")
    return Trainer(model, task, PackedLMDataset(ids[:2400], 16), PackedLMDataset(ids[2400:], 16),
                   TrainConfig(**{**base, **cfg}), out, clock=task.clock)


def logged(out, split):
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [(r["step"], r["loss"], r.get("lr")) for r in rows if r["split"] == split]


def test_budgeted_run_decays_to_min_lr_at_the_end_of_the_budget(tmp_path):
    task = Clocked()
    summary = budgeted(tmp_path, task).fit()
    train = logged(tmp_path, "train")
    assert summary["stopped_by"] == "max_minutes" and summary["step"] == summary["horizon"] == train[-1][0]
    assert train[-1][2] == pytest.approx(3e-4, rel=0.05)  # the schedule ended where the budget did
    assert 55 <= summary["step"] <= 60 and task.now - summary["final_eval_seconds"] <= 60.0 + 1.0
    assert summary["eval_share"] <= 0.05 and summary["eval_seconds"] > 0
    state = json.loads((tmp_path / "checkpoints" / f"step-{summary['step']:07d}" / "trainer_state.json").read_text())
    assert state["horizon"] == summary["horizon"] and state["budget_seconds"] == 60.0
    val = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()
           if '"val"' in line]
    assert len(val) >= 2 and all("time" in r for r in val)


def test_a_budgeted_run_that_ends_while_calibrating_still_evaluates(tmp_path):
    summary = budgeted(tmp_path, Clocked(), max_steps=3).fit()  # fewer steps than the calibration times
    assert summary["step"] == 3 and summary["stopped_by"] == "max_steps"
    assert any('"val"' in line for line in (tmp_path / "metrics.jsonl").read_text().splitlines())


@pytest.mark.parametrize("optimizer", ["adamw", "muon"])
def test_budgeted_run_resumes_bit_for_bit(tmp_path, optimizer):
    ref = Clocked()
    budgeted(tmp_path / "ref", ref, optimizer=optimizer).fit()
    with pytest.raises(KeyboardInterrupt):
        budgeted(tmp_path / "run", Clocked(interrupt_at=40), optimizer=optimizer).fit()
    ckpt = json.loads((tmp_path / "run" / "checkpoints" / "last.json").read_text())
    assert 10 < ckpt["step"] < 39  # resumed from a checkpoint written after the horizon was fixed
    summary = budgeted(tmp_path / "run", Clocked(), optimizer=optimizer).fit(resume=True)
    assert logged(tmp_path / "run", "train") == logged(tmp_path / "ref", "train")
    assert logged(tmp_path / "run", "val") == logged(tmp_path / "ref", "val")
    assert summary["horizon"] == json.loads((tmp_path / "ref" / "checkpoints" / "last.json").read_text())["step"]



def test_budget_clock_picks_cpu_time_or_wall_time(tmp_path, monkeypatch):
    import time

    monkeypatch.setattr(time, "process_time", lambda: -1.0)
    monkeypatch.setattr(time, "perf_counter", lambda: -2.0)
    model = lingvis.build("gpt-nano", vocab_size=V, block_size=16)
    data = PackedLMDataset(torch.arange(200) % V, 16)
    for clock, reading in (("cpu", -1.0), ("wall", -2.0)):
        cfg = TrainConfig(max_steps=2, max_minutes=1.0, budget_clock=clock, progress=False, device="cpu")
        assert Trainer(model, CausalLMTask(), data, data, cfg, tmp_path / clock).clock() == reading
    with pytest.raises(ValueError, match="budget_clock"):
        TrainConfig(budget_clock="gpu")
