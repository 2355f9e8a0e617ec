"""DDIM (Song et al. 2021), deterministic at eta=0, matching diffusers' `DDIMScheduler`."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .base import VPScheduler, clip_x0, spaced_timesteps


@dataclass
class DDIMConfig:
    num_train_timesteps: int = 1000
    beta_start: float = 0.0001
    beta_end: float = 0.02
    beta_schedule: str = "linear"
    trained_betas: list[float] | None = None
    clip_sample: bool = True
    set_alpha_to_one: bool = True
    steps_offset: int = 0
    prediction_type: str = "epsilon"
    thresholding: bool = False
    dynamic_thresholding_ratio: float = 0.995
    clip_sample_range: float = 1.0
    sample_max_value: float = 1.0
    timestep_spacing: str = "leading"
    rescale_betas_zero_snr: bool = False


class DDIMScheduler(VPScheduler):
    class_name = "DDIMScheduler"
    config_cls = DDIMConfig

    def __init__(self, config=None, eta: float = 0.0, **fields):
        super().__init__(config, **fields)
        self.eta = eta  # 0: deterministic DDIM; 1: DDPM-like noise
        self.final_alpha_cumprod = torch.tensor(1.0) if self.config.set_alpha_to_one else self.alphas_cumprod[0]

    def set_timesteps(self, num_inference_steps: int) -> None:
        self._check_steps(num_inference_steps)
        c = self.config
        self.num_inference_steps = num_inference_steps
        self.timesteps = torch.from_numpy(spaced_timesteps(c.timestep_spacing, c.num_train_timesteps,
                                                           num_inference_steps, c.steps_offset))

    def step(self, model_output, index, sample, generator=None, noise=None):
        self._require_timesteps()
        t = int(self.timesteps[index])
        # diffusers steps back by the nominal stride whatever the spacing
        prev_t = t - self.config.num_train_timesteps // self.num_inference_steps
        abar_t = self.alphas_cumprod[t]
        abar_prev = self.alphas_cumprod[prev_t] if prev_t >= 0 else self.final_alpha_cumprod
        x0, eps = self.predict_x0_eps(model_output, sample, abar_t)
        x0 = clip_x0(self.config, x0)
        variance = (1 - abar_prev) / (1 - abar_t) * (1 - abar_t / abar_prev)
        std = self.eta * variance ** 0.5
        prev = abar_prev ** 0.5 * x0 + (1 - abar_prev - std ** 2) ** 0.5 * eps
        if self.eta > 0:
            if noise is None:
                noise = torch.randn(model_output.shape, generator=generator, dtype=model_output.dtype)
                noise = noise.to(model_output.device)
            prev = prev + std * noise
        return prev
