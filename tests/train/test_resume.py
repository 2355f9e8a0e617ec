"""Exact resume of `lingvis pretrain gpt` after SIGKILL, and crash safety of checkpoint writes."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import lingvis
from lingvis.data.corpus import shakespeare_text
from lingvis.io import read_safetensors

DRIVER = Path(__file__).with_name("pausing_cli.py")
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}


def train_args(data: Path, out: Path) -> list[str]:
    # dropout > 0 so the restored RNG state matters; eval/checkpoint every 5 steps
    return ["pretrain", "gpt", "--preset", "gpt-nano", "--block-size", "32", "--data", str(data), "--out", str(out),
            "--max-steps", "14", "--eval-every", "5", "--eval-batches", "2", "--log-every", "1",
            "--batch-size", "4", "--warmup-steps", "3", "--lr", "3e-3", "--dropout", "0.1", "--samples", "0",
            "--no-progress"]


def lingvis_cli(args: list[str]) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "lingvis", *args], env=ENV, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def run_until_paused(point: str, args: list[str], marker: Path, env: dict = ENV) -> None:
    """Start the CLI with a pause point, wait until it pauses there, then SIGKILL it."""
    proc = subprocess.Popen([sys.executable, str(DRIVER), point, str(marker), *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not marker.exists():
        if proc.poll() is not None:
            raise AssertionError(f"run ended before pausing at {point}: {proc.stderr.read()[-3000:]}")
        assert time.monotonic() < deadline, "timed out waiting for the pause point"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL


def logged(out: Path, split: str) -> list[tuple]:
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [(r["step"], r["loss"]) for r in rows if r["split"] == split]


def pointer(out: Path, name: str) -> dict:
    return json.loads((out / "checkpoints" / f"{name}.json").read_text())


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "plays.txt"
    path.write_text(shakespeare_text()[:12_000], encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def reference(corpus, tmp_path_factory) -> Path:
    """The uninterrupted run."""
    out = tmp_path_factory.mktemp("reference")
    lingvis_cli(train_args(corpus, out))
    return out


def test_sigkill_mid_run_then_resume_logs_identical_losses(corpus, reference, tmp_path):
    out = tmp_path / "run"
    args = train_args(corpus, out)
    run_until_paused("step:8", args, tmp_path / "paused")
    assert pointer(out, "last")["step"] == 5  # killed 3 steps after the step-5 checkpoint
    assert max(s for s, _ in logged(out, "train")) == 7  # paused inside step 8, before its log row
    lingvis_cli([*args, "--resume"])
    ref_train = logged(reference, "train")
    assert [s for s, _ in ref_train] == list(range(1, 15))
    assert logged(out, "train") == ref_train  # bit for bit: floats round-trip exactly through JSON
    assert logged(out, "val") == logged(reference, "val")
    assert pointer(out, "last")["step"] == 14


def test_sigkill_during_checkpoint_write_keeps_previous_checkpoint(corpus, reference, tmp_path):
    out = tmp_path / "run"
    args = train_args(corpus, out)
    run_until_paused("checkpoint:10", args, tmp_path / "paused")
    ckpts = out / "checkpoints"
    assert list(ckpts.glob(".step-0000010.tmp-*")), "the kill should have hit a half-written checkpoint"
    assert not (ckpts / "step-0000010").exists()
    assert pointer(out, "last") == {"dir": "step-0000005", "step": 5}
    model = lingvis.load(out)  # the run folder still opens, at the previous checkpoint
    saved = read_safetensors(ckpts / "step-0000005" / "model.safetensors")
    assert all(torch.equal(model.state_dict()[k], v) for k, v in saved.items())
    lingvis_cli([*args, "--resume"])
    assert logged(out, "train") == logged(reference, "train")
    assert not list(ckpts.glob(".step-*")), "leftovers of the crashed write are cleaned up"
    assert pointer(out, "last")["step"] == 14


def driven_cli(args: list[str], env: dict) -> None:
    """The CLI through the pausing driver without a pause (for its fake clock)."""
    proc = subprocess.run([sys.executable, str(DRIVER), "step:0", "unused", *args], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_sigkill_mid_budgeted_run_then_resume_keeps_the_horizon(corpus, tmp_path):
    # a 0.5-minute budget on a fake clock (every step takes 1 s): the horizon is fixed after the first
    # timed steps, recorded in each checkpoint, and the resumed run follows it to the same losses
    env = {**ENV, "FAKE_STEP_SECONDS": "1.0"}
    budget = ["--max-steps", "1000", "--max-minutes", "0.5", "--warmup-steps", "3", "--log-every", "1",
              "--batch-size", "4", "--lr", "3e-3", "--dropout", "0.1", "--samples", "0", "--no-progress",
              "--preset", "gpt-nano", "--block-size", "32", "--data", str(corpus)]
    ref = tmp_path / "ref"
    driven_cli(["pretrain", "gpt", "--out", str(ref), *budget], env)
    horizon = pointer(ref, "last")["step"]
    assert 20 <= horizon <= 30  # 30 s of 1-second steps (evaluations take no time on this clock)
    out = tmp_path / "run"
    args = ["pretrain", "gpt", "--out", str(out), *budget]
    run_until_paused(f"step:{horizon - 2}", args, tmp_path / "paused", env)
    state = json.loads((out / "checkpoints" / pointer(out, "last")["dir"] / "trainer_state.json").read_text())
    assert state["horizon"] is not None and state["horizon_fixed_at"] < state["step"] < horizon - 2
    driven_cli([*args, "--resume"], env)
    assert logged(out, "train") == logged(ref, "train")
    assert logged(out, "val") == logged(ref, "val")
    assert pointer(out, "last")["step"] == horizon
