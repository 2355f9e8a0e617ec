"""Flow matching / rectified flow (SD3): x_t = (1 - s) x0 + s noise, the model predicts the velocity
noise - x0, and sampling integrates it with Euler steps; matches diffusers' `FlowMatchEulerDiscreteScheduler`."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .base import Scheduler
from .dpm_solver import _flow_sigma, flow_training_timesteps


@dataclass
class FlowMatchConfig:
    num_train_timesteps: int = 1000
    shift: float = 1.0
    use_dynamic_shifting: bool = False
    base_shift: float | None = 0.5
    max_shift: float | None = 1.15
    base_image_seq_len: int = 256
    max_image_seq_len: int = 4096
    invert_sigmas: bool = False
    shift_terminal: float | None = None
    time_shift_type: str = "exponential"
    stochastic_sampling: bool = False


class FlowMatchEulerDiscreteScheduler(Scheduler):
    class_name = "FlowMatchEulerDiscreteScheduler"
    config_cls = FlowMatchConfig
    prediction_type = "flow"

    def __init__(self, config=None, **fields):
        super().__init__(config, **fields)
        c = self.config
        if c.use_dynamic_shifting:
            raise ValueError("use_dynamic_shifting (resolution-dependent shift) is not supported; set `shift` instead")
        if c.invert_sigmas:
            raise ValueError("invert_sigmas is not supported")
        if c.shift <= 0:
            raise ValueError(f"shift must be > 0, got {c.shift}")
        T = c.num_train_timesteps
        ts = torch.from_numpy(np.linspace(1, T, T, dtype=np.float32)[::-1].copy())
        s = ts / T
        s = c.shift * s / (1 + (c.shift - 1) * s)
        self.sigma_min, self.sigma_max = s[-1].item(), s[0].item()
        self.sigmas = torch.empty(0)

    def set_timesteps(self, num_inference_steps: int) -> None:
        self._check_steps(num_inference_steps)
        c, T = self.config, self.config.num_train_timesteps
        s = np.linspace(self.sigma_max * T, self.sigma_min * T, num_inference_steps) / T
        s = c.shift * s / (1 + (c.shift - 1) * s)
        if c.shift_terminal:
            one_minus = 1 - s
            s = 1 - one_minus / (one_minus[-1] / (1 - c.shift_terminal))
        sigmas = torch.from_numpy(s).to(torch.float32)
        self.timesteps = sigmas * T
        self.sigmas = torch.cat([sigmas, torch.zeros(1)])  # (n + 1,)
        self.num_inference_steps = num_inference_steps

    def step(self, model_output, index, sample, generator=None, noise=None):
        self._require_timesteps()
        sample = sample.to(torch.float32)
        sigma, nxt = self.sigmas[index], self.sigmas[index + 1]
        if self.config.stochastic_sampling:
            x0 = sample - sigma * model_output
            if noise is None:
                noise = torch.randn(sample.shape, generator=generator, dtype=sample.dtype).to(sample.device)
            prev = (1.0 - nxt) * x0 + nxt * noise
        else:
            prev = sample + (nxt - sigma) * model_output
        return prev.to(model_output.dtype)

    # ---- training ------------------------------------------------------------------------------
    def sample_training_timesteps(self, batch, generator=None, device="cpu"):
        return flow_training_timesteps(batch, self.config.num_train_timesteps, self.config.shift, generator, device)

    def q_sample(self, x0, noise, t):
        s = _flow_sigma(t, x0, self.config.num_train_timesteps)
        return (1 - s) * x0 + s * noise

    def training_target(self, x0, noise, t):
        return noise - x0
