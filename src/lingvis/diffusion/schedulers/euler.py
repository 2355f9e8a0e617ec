"""Euler (Karras et al. 2022, algorithm 2 without churn), matching diffusers' `EulerDiscreteScheduler`."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .base import VPScheduler, check_choice
from .sigmas import final_sigma, karras_sigmas, sigma_to_t, vp_sigmas


@dataclass
class EulerConfig:
    num_train_timesteps: int = 1000
    beta_start: float = 0.0001
    beta_end: float = 0.02
    beta_schedule: str = "linear"
    trained_betas: list[float] | None = None
    prediction_type: str = "epsilon"
    interpolation_type: str = "linear"
    use_karras_sigmas: bool = False
    sigma_min: float | None = None
    sigma_max: float | None = None
    timestep_spacing: str = "linspace"
    timestep_type: str = "discrete"
    steps_offset: int = 0
    rescale_betas_zero_snr: bool = False
    final_sigmas_type: str = "zero"


class EulerDiscreteScheduler(VPScheduler):
    class_name = "EulerDiscreteScheduler"
    config_cls = EulerConfig

    def __init__(self, config=None, **fields):
        super().__init__(config, **fields)
        c = self.config
        check_choice("interpolation_type", c.interpolation_type, ("linear", "log_linear"))
        check_choice("timestep_type", c.timestep_type, ("discrete",))
        check_choice("final_sigmas_type", c.final_sigmas_type, ("zero", "sigma_min"))
        if c.rescale_betas_zero_snr:
            self.alphas_cumprod[-1] = 2 ** -24
        self.sigmas = torch.empty(0)

    def set_timesteps(self, num_inference_steps: int) -> None:
        self._check_steps(num_inference_steps)
        c, n = self.config, num_inference_steps
        T = c.num_train_timesteps
        if c.timestep_spacing == "linspace":
            ts = np.linspace(0, T - 1, n, dtype=np.float32)[::-1].copy()
        elif c.timestep_spacing == "leading":
            ts = (np.arange(0, n) * (T // n)).round()[::-1].copy().astype(np.float32) + c.steps_offset
        else:
            ts = np.arange(T, 0, -T / n).round().copy().astype(np.float32) - 1
        sigmas = vp_sigmas(self.alphas_cumprod)
        log_sigmas = np.log(sigmas)
        if c.interpolation_type == "linear":
            sigmas = np.interp(ts, np.arange(0, len(sigmas)), sigmas)
        else:
            sigmas = torch.linspace(np.log(sigmas[-1]), np.log(sigmas[0]), n + 1).exp().numpy()
        if c.use_karras_sigmas:
            sigmas = karras_sigmas(sigmas, n, c.sigma_min, c.sigma_max)
            ts = np.array([sigma_to_t(s, log_sigmas) for s in sigmas])
        last = final_sigma(c.final_sigmas_type, self.alphas_cumprod)
        self.sigmas = torch.from_numpy(np.concatenate([sigmas, [last]]).astype(np.float32))  # (n + 1,)
        self.timesteps = torch.from_numpy(ts.astype(np.float32))
        self.num_inference_steps = n

    @property
    def init_noise_sigma(self):
        self._require_timesteps()
        top = self.sigmas.max()
        return top if self.config.timestep_spacing in ("linspace", "trailing") else (top ** 2 + 1) ** 0.5

    def scale_model_input(self, sample, index):
        return sample / ((self.sigmas[index] ** 2 + 1) ** 0.5)

    def step(self, model_output, index, sample, generator=None, noise=None):
        self._require_timesteps()
        sample = sample.to(torch.float32)
        sigma = self.sigmas[index]
        p = self.config.prediction_type
        if p == "epsilon":
            x0 = sample - sigma * model_output
        elif p == "v_prediction":
            x0 = model_output * (-sigma / (sigma ** 2 + 1) ** 0.5) + sample / (sigma ** 2 + 1)
        else:
            x0 = model_output
        derivative = (sample - x0) / sigma
        prev = sample + derivative * (self.sigmas[index + 1] - sigma)
        return prev.to(model_output.dtype)
