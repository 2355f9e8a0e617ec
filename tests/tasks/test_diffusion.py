"""Training noise levels of the diffusion task: uniform (the scheduler's) or logit-normal."""
import pytest
import torch

from lingvis.diffusion.schedulers import make_scheduler
from lingvis.tasks.diffusion import DiffusionTask, logit_normal_timesteps

FLOW = {"_class_name": "FlowMatchEulerDiscreteScheduler", "shift": 1.0}
VP = {"_class_name": "DDIMScheduler", "beta_schedule": "squaredcos_cap_v2", "prediction_type": "v_prediction"}


class ZeroDenoiser(torch.nn.Module):
    """Pixels as latents, zero text states, a zero prediction; records the timesteps it is called at."""

    def __init__(self):
        super().__init__()
        self.seen: list[torch.Tensor] = []

    def to_latents(self, x, g=None):
        return x

    def encode_text(self, ids, mask):
        return torch.zeros(len(ids), 2, 4), None

    def forward(self, x_t, t, s, m):
        self.seen.append(t)
        return torch.zeros_like(x_t)


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
    probe = ZeroDenoiser()
    task = DiffusionTask(lambda x: x, FLOW, timesteps="logit_normal")
    batch = {"pixel_values": torch.zeros(4096, 1, 1, 1), "input_ids": torch.zeros(4096, 2), "attention_mask": None}
    loss = task._loss(probe, batch, torch.Generator().manual_seed(0))
    assert torch.isfinite(loss) and _middle(probe.seen[0]) == pytest.approx(0.727, abs=0.03)


def test_logit_normal_mean_moves_the_noise_levels_down():
    sched = make_scheduler(FLOW)
    g = torch.Generator().manual_seed(2)
    t = logit_normal_timesteps(sched, 20000, g, "cpu", mean=-1.0)
    # median sigmoid(-1) = 0.269; P(sigma < 0.5) = P(N(-1, 1) < 0) = 0.841
    assert float(t.median()) == pytest.approx(269, abs=10)
    assert float((t < 500).float().mean()) == pytest.approx(0.841, abs=0.02)
    with pytest.raises(ValueError, match="timestep_mean"):
        DiffusionTask(lambda x: x, FLOW, timesteps="uniform", timestep_mean=-0.5)


def test_logit_normal_mixture_splits_the_noise_levels_between_its_means():
    sched = make_scheduler(FLOW)
    t = logit_normal_timesteps(sched, 20000, torch.Generator().manual_seed(4), "cpu", mean=(2.0, -2.0))
    # half at sigmoid(N(2, 1)), half at sigmoid(N(-2, 1)): P(sigma > 0.5) = 0.5 * (0.977 + 0.023) = 0.5,
    # P(sigma > sigmoid(2) = 0.881) = 0.5 * (0.5 + P(N(-2, 1) > 2) = 0.00003) = 0.25; a single mean 0 gives 0.023
    assert float((t > 500).float().mean()) == pytest.approx(0.5, abs=0.02)
    assert float((t > 880.8).float().mean()) == pytest.approx(0.25, abs=0.02)
    # P(|N(+-2, 1)| < 1) = Phi(-1) - Phi(-3) = 0.157 for either component
    assert float(((t > 268.9) & (t < 731.1)).float().mean()) == pytest.approx(0.157, abs=0.015)
    one = logit_normal_timesteps(sched, 4000, torch.Generator().manual_seed(5), "cpu", mean=1.0)
    assert torch.equal(one, logit_normal_timesteps(sched, 4000, torch.Generator().manual_seed(5), "cpu", mean=1.0))
    task = DiffusionTask(lambda x: x, FLOW, timesteps="logit_normal", timestep_mean=[2, 0])
    assert task.timestep_mean == (2.0, 0.0)
    assert DiffusionTask(lambda x: x, FLOW, timesteps="logit_normal", timestep_mean=(1.5,)).timestep_mean == 1.5
    with pytest.raises(ValueError, match="empty"):
        DiffusionTask(lambda x: x, FLOW, timesteps="logit_normal", timestep_mean=())
    with pytest.raises(ValueError, match="timestep_mean"):
        DiffusionTask(lambda x: x, FLOW, timesteps="uniform", timestep_mean=(2.0, 0.0))


def test_lowres_error_is_the_pooled_mse_per_sample():
    from lingvis.tasks.diffusion import lowres_error

    g = torch.Generator().manual_seed(3)
    pred, target = torch.randn(2, 3, 8, 8, generator=g), torch.randn(2, 3, 8, 8, generator=g)
    assert torch.equal(lowres_error(target, target, (1, 2, 4)), torch.zeros(2))
    err = pred - target  # size 1: the squared mean error per channel; size 2: 4x4 cells averaged
    want = err.mean((2, 3)).square().mean(1) + err.view(2, 3, 2, 4, 2, 4).mean((3, 5)).square().mean((1, 2, 3))
    assert torch.allclose(lowres_error(pred, target, (1, 2)), want, atol=1e-6)
    # a constant offset is all low frequency: each pooled size sees all of it; zero-mean checkerboard error: none
    assert torch.allclose(lowres_error(target + 0.5, target, (1, 2, 4)), torch.full((2,), 3 * 0.25))
    board = (torch.arange(8)[:, None] + torch.arange(8)[None]) % 2 * 2.0 - 1  # (8, 8) of +-1
    assert float(lowres_error(target + board, target, (1, 2, 4)).abs().max()) < 1e-6


def test_lowres_weight_adds_the_pooled_error_to_the_loss():
    with pytest.raises(ValueError, match="lowres_weight"):
        DiffusionTask(lambda x: x, FLOW, lowres_weight=-1.0)

    batch = {"pixel_values": torch.ones(8, 3, 32, 32), "input_ids": torch.zeros(8, 2), "attention_mask": None}
    plain = DiffusionTask(lambda x: x, FLOW)._loss(ZeroDenoiser(), batch, torch.Generator().manual_seed(0))
    multi = DiffusionTask(lambda x: x, FLOW, lowres_weight=2.0)._loss(ZeroDenoiser(), batch,
                                                                      torch.Generator().manual_seed(0))
    # target = noise - x0 with x0 = 1: the zero prediction misses every pooled cell by 1 (sizes 1, 2, 4, 8) plus the
    # pooled noise (variance 1 / pixels per cell: 1/1024 + 1/256 + 1/64 + 1/16)
    assert float(multi - plain) == pytest.approx(2.0 * (4 + 0.0830), rel=0.02)


def test_lowres_x0_scales_the_pooled_error_by_sigma_squared():
    with pytest.raises(ValueError, match="lowres_x0"):
        DiffusionTask(lambda x: x, VP, lowres_weight=1.0, lowres_x0=True)
    zero = ZeroDenoiser()
    batch = {"pixel_values": torch.ones(64, 3, 32, 32), "input_ids": torch.zeros(64, 2), "attention_mask": None}
    losses = {}
    for x0_units in (False, True):
        task = DiffusionTask(lambda x: x, FLOW, lowres_weight=1.0, lowres_x0=x0_units, lowres_sizes=(1,))
        plain = DiffusionTask(lambda x: x, FLOW)._loss(zero, batch, torch.Generator().manual_seed(0))
        losses[x0_units] = float(task._loss(zero, batch, torch.Generator().manual_seed(0)) - plain)
    sigma2 = float((zero.seen[-1] / 1000).square().mean())  # the same seeded noise levels in every call
    # the pooled error of the zero prediction is ~1 (the white image's mean) for every sample
    assert losses[False] == pytest.approx(1.0, rel=0.02)
    assert losses[True] == pytest.approx(sigma2, rel=0.05)


class _OffsetOracle(ZeroDenoiser):
    """The exact rectified-flow velocity toward known clean images x0, plus 1 on the pixels of `where`."""

    def __init__(self, x0, where):
        super().__init__()
        self.x0, self.where = x0, where  # (B, 3, H, W), (B, 1, H, W)

    def forward(self, x_t, t, s, m):
        sigma = (t / 1000)[:, None, None, None]
        noise = (x_t - (1 - sigma) * self.x0) / sigma
        return noise - self.x0 + self.where


def test_object_weight_weighs_the_error_on_object_pixels_only():
    from lingvis.tasks.diffusion import object_mask

    x0 = torch.ones(2, 3, 4, 4)  # white background in [-1, 1]
    x0[:, 1:, :, 3:] = -1.0  # a red column: 4 of 16 pixels are object
    batch = {"pixel_values": x0, "input_ids": torch.zeros(2, 2), "attention_mask": None}
    obj = object_mask(x0)
    assert obj.shape == (2, 1, 4, 4) and float(obj.mean()) == 0.25
    for where, plain_loss, weighted in ((obj, 0.25, 0.25 * 4), (1 - obj, 0.75, 0.75)):
        den = _OffsetOracle(x0, where)
        plain = DiffusionTask(lambda x: x, FLOW, timesteps="logit_normal")._loss(den, batch,
                                                                                 torch.Generator().manual_seed(0))
        heavy = DiffusionTask(lambda x: x, FLOW, timesteps="logit_normal", object_weight=3.0)._loss(
            den, batch, torch.Generator().manual_seed(0))
        assert float(plain) == pytest.approx(plain_loss, abs=1e-4)
        assert float(heavy) == pytest.approx(weighted, abs=1e-4)
    with pytest.raises(ValueError, match="object_weight"):
        DiffusionTask(lambda x: x, FLOW, object_weight=-1.0)


def test_edge_weight_charges_the_rough_error_not_the_smooth_one():
    x0 = torch.ones(2, 3, 4, 4)
    x0[:, 1:, :, 3:] = -1.0
    batch = {"pixel_values": x0, "input_ids": torch.zeros(2, 2), "attention_mask": None}
    flat = torch.ones(2, 1, 4, 4)  # the same error on every pixel: no edge error
    checker = (torch.arange(4)[:, None] + torch.arange(4)[None, :]) % 2 * 2.0 - 1.0  # (4, 4) of +-1
    for where, weighted in ((flat, 1.0), (checker.expand(2, 1, 4, 4), 1.0 + 0.5 * (4.0 + 4.0))):
        den = _OffsetOracle(x0, where)
        plain = DiffusionTask(lambda x: x, FLOW, timesteps="logit_normal")._loss(den, batch,
                                                                                 torch.Generator().manual_seed(0))
        edged = DiffusionTask(lambda x: x, FLOW, timesteps="logit_normal", edge_weight=0.5)._loss(
            den, batch, torch.Generator().manual_seed(0))
        assert float(plain) == pytest.approx(1.0, abs=1e-4)  # both errors have MSE 1
        assert float(edged) == pytest.approx(weighted, abs=1e-4)  # neighbour differences of 2 in x and y: 4 + 4
    with pytest.raises(ValueError, match="edge_weight"):
        DiffusionTask(lambda x: x, FLOW, edge_weight=-1.0)
