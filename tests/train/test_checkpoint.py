import random

import numpy as np
import torch

from lingvis.train.checkpoint import CheckpointManager, resumable, rng_state, set_rng_state


def test_rng_state_round_trips_through_torch_save(tmp_path):
    torch.manual_seed(3)
    random.seed(3)
    np.random.seed(3)
    torch.save(rng_state(), tmp_path / "rng.pt")
    want = (torch.rand(3), random.random(), np.random.rand(2), random.gauss(0, 1))
    torch.manual_seed(99)
    random.seed(99)
    np.random.seed(99)
    set_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True))
    got = (torch.rand(3), random.random(), np.random.rand(2), random.gauss(0, 1))
    assert torch.equal(want[0], got[0]) and want[1] == got[1] and np.array_equal(want[2], got[2])
    assert want[3] == got[3]


def test_resumable_only_with_checkpoints_and_when_asked(tmp_path):
    assert not resumable(tmp_path / "fresh") and not resumable(tmp_path, True)
    assert CheckpointManager(tmp_path).root == tmp_path / "checkpoints"
    (tmp_path / "checkpoints").mkdir()
    assert resumable(tmp_path) and resumable(str(tmp_path), True)
    assert not resumable(tmp_path, False)
