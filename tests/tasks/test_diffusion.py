"""Training noise levels of the diffusion task: uniform (the scheduler's) or logit-normal."""
import pytest
import torch

from lingvis.diffusion.schedulers import make_scheduler
from lingvis.tasks.diffusion import DiffusionTask, logit_normal_timesteps

FLOW = {"_class_name": "FlowMatchEulerDiscreteScheduler", "shift": 1.0}
VP = {"_class_name": "DDIMScheduler", "beta_schedule": "squaredcos_cap_v2", "prediction_type": "v_prediction"}


def _middle(t: torch.Tensor) -> float:
    return float(((t >= 250) & (t < 750)).float().mean())


def test_logit_normal_flow_timesteps_concentrate_in_the_middle():
    sched = make_scheduler(FLOW)
    g = torch.Generator().manual_seed(0)
    t = logit_normal_timesteps(sched, 20000, g, "cpu")
    assert t.dtype.is_floating_point and 0 < float(t.min()) and float(t.max()) < 1000
    # P(|N(0,1)| < logit(0.75)) = 0.727 against 0.5 for uniform
    assert _middle(t) == pytest.approx(0.727, abs=0.02)
    assert _middle(sched.sample_training_timesteps(20000, g)) == pytest.approx(0.5, abs=0.02)
    shifted = logit_normal_timesteps(make_scheduler({**FLOW, "shift": 3.0}), 20000, g, "cpu")
    assert float(shifted.median()) == pytest.approx(750, abs=15)  # shift 3 maps sigma 0.5 to 0.75


def test_logit_normal_discrete_timesteps_are_valid_indices():
    t = logit_normal_timesteps(make_scheduler(VP), 5000, torch.Generator().manual_seed(1), "cpu")
    assert t.dtype == torch.long and int(t.min()) >= 0 and int(t.max()) <= 999
    assert _middle(t) == pytest.approx(0.727, abs=0.03)


def test_task_uses_the_sampler_and_rejects_unknown_names():
    with pytest.raises(ValueError, match="timesteps"):
        DiffusionTask(lambda x: x, FLOW, timesteps="cosine")
    seen = []

    class Probe(torch.nn.Module):
        def to_latents(self, x, g=None):
            return x

        def encode_text(self, ids, mask):
            return torch.zeros(len(ids), 2, 4), None

        def forward(self, x_t, t, s, m):
            seen.append(t)
            return torch.zeros_like(x_t)

    task = DiffusionTask(lambda x: x, FLOW, timesteps="logit_normal")
    batch = {"pixel_values": torch.zeros(4096, 1, 1, 1), "input_ids": torch.zeros(4096, 2), "attention_mask": None}
    loss = task._loss(Probe(), batch, torch.Generator().manual_seed(0))
    assert torch.isfinite(loss) and _middle(seen[0]) == pytest.approx(0.727, abs=0.03)


def test_logit_normal_mean_moves_the_noise_levels_down():
    sched = make_scheduler(FLOW)
    g = torch.Generator().manual_seed(2)
    t = logit_normal_timesteps(sched, 20000, g, "cpu", mean=-1.0)
    # median sigmoid(-1) = 0.269; P(sigma < 0.5) = P(N(-1, 1) < 0) = 0.841
    assert float(t.median()) == pytest.approx(269, abs=10)
    assert float((t < 500).float().mean()) == pytest.approx(0.841, abs=0.02)
    with pytest.raises(ValueError, match="timestep_mean"):
        DiffusionTask(lambda x: x, FLOW, timesteps="uniform", timestep_mean=-0.5)
