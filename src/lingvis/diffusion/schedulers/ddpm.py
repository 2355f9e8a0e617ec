"""DDPM ancestral sampling (Ho et al. 2020), matching diffusers' `DDPMScheduler`."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .base import VPScheduler, check_choice, clip_x0, spaced_timesteps

VARIANCE_TYPES = ("fixed_small", "fixed_small_log", "fixed_large")


@dataclass
class DDPMConfig:
    num_train_timesteps: int = 1000
    beta_start: float = 0.0001
    beta_end: float = 0.02
    beta_schedule: str = "linear"
    trained_betas: list[float] | None = None
    variance_type: str = "fixed_small"
    clip_sample: bool = True
    prediction_type: str = "epsilon"
    thresholding: bool = False
    dynamic_thresholding_ratio: float = 0.995
    clip_sample_range: float = 1.0
    sample_max_value: float = 1.0
    timestep_spacing: str = "leading"
    steps_offset: int = 0
    rescale_betas_zero_snr: bool = False


class DDPMScheduler(VPScheduler):
    class_name = "DDPMScheduler"
    config_cls = DDPMConfig

    def __init__(self, config=None, **fields):
        super().__init__(config, **fields)
        check_choice("variance_type", self.config.variance_type, VARIANCE_TYPES)

    def set_timesteps(self, num_inference_steps: int) -> None:
        self._check_steps(num_inference_steps)
        c = self.config
        self.num_inference_steps = num_inference_steps
        self.timesteps = torch.from_numpy(spaced_timesteps(c.timestep_spacing, c.num_train_timesteps,
                                                           num_inference_steps, c.steps_offset))

    def _prev(self, index: int) -> int:
        return int(self.timesteps[index + 1]) if index + 1 < len(self.timesteps) else -1

    def _variance(self, t: int, prev_t: int) -> torch.Tensor:
        abar_t = self.alphas_cumprod[t]
        abar_prev = self.alphas_cumprod[prev_t] if prev_t >= 0 else torch.tensor(1.0)
        beta_t = 1 - abar_t / abar_prev
        var = torch.clamp((1 - abar_prev) / (1 - abar_t) * beta_t, min=1e-20)
        kind = self.config.variance_type
        if kind == "fixed_small":
            return var ** 0.5
        if kind == "fixed_small_log":  # diffusers uses exp(0.5 log var) as the noise scale directly
            return torch.exp(0.5 * torch.log(var))
        return beta_t ** 0.5  # fixed_large

    def step(self, model_output, index, sample, generator=None, noise=None):
        self._require_timesteps()
        t, prev_t = int(self.timesteps[index]), self._prev(index)
        abar_t = self.alphas_cumprod[t]
        abar_prev = self.alphas_cumprod[prev_t] if prev_t >= 0 else torch.tensor(1.0)
        beta_t, beta_prev = 1 - abar_t, 1 - abar_prev
        alpha_t = abar_t / abar_prev
        x0, _ = self.predict_x0_eps(model_output, sample, abar_t)
        x0 = clip_x0(self.config, x0)
        mean = (abar_prev ** 0.5 * (1 - alpha_t)) / beta_t * x0 + alpha_t ** 0.5 * beta_prev / beta_t * sample
        if t > 0:
            if noise is None:
                noise = torch.randn(model_output.shape, generator=generator, dtype=model_output.dtype)
                noise = noise.to(model_output.device)
            mean = mean + self._variance(t, prev_t) * noise
        return mean
