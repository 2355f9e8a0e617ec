"""DDP and FSDP2 on 2 CPU (gloo) ranks launched by torchrun, against one process with the same global
batch; distributed checkpoints resumed at another world size.

Tolerance: losses and gradient norms agree to 1e-5 (relative + absolute); the observed gap is ~2e-7,
the fp32 rounding of summing the same gradients in another order."""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

HERE = Path(__file__).parent
_spec = importlib.util.spec_from_file_location("dist_worker", HERE / "dist_worker.py")
worker = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(worker)
TOL = dict(rel=1e-5, abs=1e-5)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One single-process reference run, then one torchrun launch of 2 ranks doing every 2-rank scenario."""
    root = tmp_path_factory.mktemp("dist")
    worker.train(root / "single", "none")
    shutil.copytree(root / "single", root / "plain_resume")
    worker.rewind(root / "plain_resume", 2)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(_free_port()), str(HERE / "dist_worker.py"), str(root)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return root


def _assert_same(got: dict, want: dict, steps) -> None:
    for step in steps:
        assert got[step][0] == pytest.approx(want[step][0], **TOL), f"loss at step {step}"
        assert got[step][1] == pytest.approx(want[step][1], **TOL), f"grad norm at step {step}"


@pytest.mark.parametrize("mode", ["ddp", "fsdp"])
def test_two_ranks_match_one_process(runs, mode):
    single, multi = worker.train_log(runs / "single"), worker.train_log(runs / mode)
    assert sorted(multi) == list(range(1, worker.STEPS + 1))
    assert single[1][0] != pytest.approx(single[worker.STEPS][0], abs=1e-2)  # the model did learn
    _assert_same(multi, single, range(1, worker.STEPS + 1))


@pytest.mark.parametrize("mode", ["ddp", "fsdp"])
def test_checkpoint_of_two_ranks_resumes_on_one(runs, mode, tmp_path):
    out = tmp_path / mode
    shutil.copytree(runs / mode, out)
    assert (out / "checkpoints" / "step-0000002" / "dcp").is_dir()
    state = json.loads((out / "checkpoints" / "step-0000002" / "trainer_state.json").read_text())
    assert state["world_size"] == 2
    worker.rewind(out, 2)
    summary = worker.train(out, "none", resume=True)
    assert summary["step"] == worker.STEPS
    _assert_same(worker.train_log(out), worker.train_log(runs / mode), range(1, worker.STEPS + 1))


def test_ddp_skips_gradient_sync_on_intermediate_accumulation_steps(runs):
    syncs = json.loads((runs / "ddp-syncs.json").read_text())
    assert syncs, "the DDP comm hook never ran"
    assert all(n % 2 == 0 for n in syncs), f"all-reduce after an odd micro-batch: {syncs}"
    assert sorted(set(syncs)) == [2 * s for s in range(1, worker.STEPS + 1)]


def test_single_process_checkpoint_resumes_on_two_fsdp_ranks(runs):
    _assert_same(worker.train_log(runs / "plain_resume"), worker.train_log(runs / "single"),
                 range(1, worker.STEPS + 1))


def test_distributed_checkpoint_opens_with_plain_load(runs):
    import lingvis

    model = lingvis.load(runs / "fsdp")
    reference = lingvis.load(runs / "single")
    x = torch.randint(0, 32, (2, 16))
    torch.testing.assert_close(model(x), reference(x), rtol=1e-4, atol=1e-4)


def test_gather_features_concatenates_ranks_and_routes_gradients(runs):
    weights = torch.arange(12.0).view(4, 3)
    for rank in (0, 1):
        got = json.loads((runs / f"gather-rank{rank}.json").read_text())
        assert got["gathered"] == [[1.0] * 3] * 2 + [[2.0] * 3] * 2
        # both ranks compute the same loss over the gathered batch: the local slice gets their sum
        assert got["grad"] == (2 * weights[2 * rank:2 * rank + 2]).tolist()


def test_activation_checkpointing_keeps_the_trajectory(runs, tmp_path):
    from lingvis.train import distributed

    wrapped = []
    worker.train(tmp_path / "ac", "none", activation_checkpointing=True,
                 setup=lambda t: wrapped.extend(getattr(b.forward, "func", None) for b in t.model.blocks))
    assert wrapped == [distributed._checkpointed_forward] * 2  # both blocks recompute in backward
    _assert_same(worker.train_log(tmp_path / "ac"), worker.train_log(runs / "single"), range(1, worker.STEPS + 1))
    block_model = torch.nn.Sequential(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="no transformer layers"):
        distributed.checkpoint_activations(block_model)


def test_bad_settings_are_named():
    from lingvis.train import distributed
    from lingvis.train.config import TrainConfig

    with pytest.raises(ValueError, match="distributed must be"):
        TrainConfig(distributed="horovod")
    with pytest.raises(ValueError, match="not divisible by the 2 ranks"):
        distributed.rank_batch(3, distributed.DistContext(mode="ddp", world_size=2))
    os.environ["WORLD_SIZE"] = "2"
    try:
        with pytest.raises(ValueError, match="--distributed is 'none'"):
            distributed.setup("none", "cpu")
    finally:
        del os.environ["WORLD_SIZE"]


def test_mode_resolution():
    from lingvis.train.distributed import resolve_mode

    for mode in ("auto", "none", "ddp", "fsdp"):
        assert resolve_mode(mode, 1) == "none"  # a single process ignores the flag
    assert resolve_mode("auto", 2) == "ddp"
    assert resolve_mode("auto", 2, need_bytes=10, have_bytes=100) == "ddp"
    assert resolve_mode("auto", 2, need_bytes=60, have_bytes=100) == "fsdp"  # a replica would not fit
    assert resolve_mode("ddp", 2, need_bytes=60, have_bytes=100) == "ddp"  # asked for: kept
    assert resolve_mode("fsdp", 2) == "fsdp"
    with pytest.raises(ValueError, match="--distributed is 'none'"):
        resolve_mode("none", 4)
    with pytest.raises(ValueError, match="distributed must be one of"):
        resolve_mode("horovod", 1)


def test_replica_size_counts_gradients_and_adam_states_of_trained_parameters():
    from lingvis.train.distributed import available_bytes, replica_bytes

    model = torch.nn.Linear(10, 10)  # 110 fp32 parameters
    assert replica_bytes(model) == 110 * 4 * 4
    assert replica_bytes(model, lora=True) == 110 * 4
    model.bias.requires_grad_(False)
    assert replica_bytes(model) == 100 * 16 + 10 * 4
    assert available_bytes(torch.device("cpu")) > 0


def _pretrain_argv(corpus: Path, out: Path) -> list[str]:
    return ["pretrain", "gpt", "--data", str(corpus), "--out", str(out), "--preset", "gpt-nano", "--block-size",
            "16", "--dropout", "0", "--max-steps", "3", "--batch-size", "4", "--warmup-steps", "1", "--lr", "0.01",
            "--eval-every", "3", "--eval-batches", "1", "--log-every", "1", "--samples", "0", "--no-progress",
            "--device", "cpu"]


def test_torchrun_without_the_flag_trains_ddp_like_one_process(tmp_path):
    """`torchrun -m lingvis pretrain gpt ...` with no --distributed flag: DDP on 2 gloo ranks, the same
    losses as the same command in one process (where the default does nothing)."""
    from lingvis.cli import main
    from lingvis.data.corpus import shakespeare_text

    corpus = tmp_path / "plays.txt"
    corpus.write_text(shakespeare_text()[:8_000], encoding="utf-8")
    assert main(_pretrain_argv(corpus, tmp_path / "one")) == 0
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(_free_port()), "-m", "lingvis", *_pretrain_argv(corpus, tmp_path / "two")]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    one = json.loads((tmp_path / "one" / "train_config.json").read_text())
    two = json.loads((tmp_path / "two" / "train_config.json").read_text())
    assert (one["distributed"], two["distributed"]) == ("none", "ddp")
    state = json.loads((tmp_path / "two" / "checkpoints" / "step-0000003" / "trainer_state.json").read_text())
    assert state["world_size"] == 2
    _assert_same(worker.train_log(tmp_path / "two"), worker.train_log(tmp_path / "one"), range(1, 4))
