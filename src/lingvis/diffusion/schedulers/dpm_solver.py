"""DPM-Solver++ multistep (Lu et al. 2022), orders 1-3, matching diffusers' `DPMSolverMultistepScheduler`
with algorithm_type "dpmsolver++" (data prediction), midpoint or heun second-order updates."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .base import VPScheduler, check_choice, clip_x0
from .sigmas import final_sigma, karras_sigmas, sigma_to_t, vp_sigmas


@dataclass
class DPMSolverConfig:
    num_train_timesteps: int = 1000
    beta_start: float = 0.0001
    beta_end: float = 0.02
    beta_schedule: str = "linear"
    trained_betas: list[float] | None = None
    solver_order: int = 2
    prediction_type: str = "epsilon"
    thresholding: bool = False
    dynamic_thresholding_ratio: float = 0.995
    sample_max_value: float = 1.0
    algorithm_type: str = "dpmsolver++"
    solver_type: str = "midpoint"
    lower_order_final: bool = True
    euler_at_final: bool = False
    use_karras_sigmas: bool = False
    use_flow_sigmas: bool = False
    flow_shift: float = 1.0
    final_sigmas_type: str = "zero"
    lambda_min_clipped: float = -float("inf")
    variance_type: str | None = None
    timestep_spacing: str = "linspace"
    steps_offset: int = 0
    rescale_betas_zero_snr: bool = False


class DPMSolverMultistepScheduler(VPScheduler):
    class_name = "DPMSolverMultistepScheduler"
    config_cls = DPMSolverConfig
    prediction_types = ("epsilon", "v_prediction", "sample", "flow_prediction")

    def __init__(self, config=None, **fields):
        super().__init__(config, **fields)
        c = self.config
        check_choice("algorithm_type", c.algorithm_type, ("dpmsolver++",))
        check_choice("solver_type", c.solver_type, ("midpoint", "heun"))
        check_choice("solver_order", c.solver_order, (1, 2, 3))
        check_choice("variance_type", c.variance_type, (None,))
        check_choice("final_sigmas_type", c.final_sigmas_type, ("zero", "sigma_min"))
        if (c.prediction_type == "flow_prediction") != c.use_flow_sigmas:
            raise ValueError("prediction_type 'flow_prediction' goes with use_flow_sigmas=true (and only with it)")
        if c.use_flow_sigmas and c.use_karras_sigmas:
            raise ValueError("use_karras_sigmas and use_flow_sigmas cannot both be set")
        if c.rescale_betas_zero_snr:
            self.alphas_cumprod[-1] = 2 ** -24
        self.lambda_t = torch.log(self.alphas_cumprod.sqrt()) - torch.log((1 - self.alphas_cumprod).sqrt())
        self.sigmas = torch.empty(0)

    def set_timesteps(self, num_inference_steps: int) -> None:
        self._check_steps(num_inference_steps)
        c, n = self.config, num_inference_steps
        clipped = torch.searchsorted(torch.flip(self.lambda_t, [0]), c.lambda_min_clipped)
        last = (c.num_train_timesteps - clipped).numpy().item()
        if c.timestep_spacing == "linspace":
            ts = np.linspace(0, last - 1, n + 1).round()[::-1][:-1].copy().astype(np.int64)
        elif c.timestep_spacing == "leading":
            ratio = last // (n + 1)
            ts = (np.arange(0, n + 1) * ratio).round()[::-1][:-1].copy().astype(np.int64) + c.steps_offset
        else:  # trailing
            ts = np.arange(last, 0, -c.num_train_timesteps / n).round().copy().astype(np.int64) - 1
        sigmas = vp_sigmas(self.alphas_cumprod)
        log_sigmas = np.log(sigmas)
        if c.use_karras_sigmas:
            sigmas = karras_sigmas(np.flip(sigmas).copy(), n)
            ts = np.array([sigma_to_t(s, log_sigmas) for s in sigmas])
            if c.beta_schedule != "squaredcos_cap_v2":
                ts = ts.round()
        elif c.use_flow_sigmas:
            s = 1.0 - np.linspace(1, 1 / c.num_train_timesteps, n + 1)
            sigmas = np.flip(c.flow_shift * s / (1 + (c.flow_shift - 1) * s))[:-1].copy()
            ts = (sigmas * c.num_train_timesteps).copy()
        else:
            sigmas = np.interp(ts, np.arange(0, len(sigmas)), sigmas)
        last_sigma = final_sigma(c.final_sigmas_type, self.alphas_cumprod)
        self.sigmas = torch.from_numpy(np.concatenate([sigmas, [last_sigma]]).astype(np.float32))  # (n + 1,)
        self.timesteps = torch.from_numpy(ts).to(torch.int64)
        self.num_inference_steps = len(ts)
        self.model_outputs: list[torch.Tensor | None] = [None] * c.solver_order
        self.lower_order_nums = 0

    def _alpha_sigma(self, sigma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.config.use_flow_sigmas:
            return 1 - sigma, sigma
        alpha = 1 / ((sigma ** 2 + 1) ** 0.5)
        return alpha, sigma * alpha

    def _lambda(self, i: int):
        alpha, sigma = self._alpha_sigma(self.sigmas[i])
        return alpha, sigma, torch.log(alpha) - torch.log(sigma)

    def convert_model_output(self, model_output: torch.Tensor, index: int, sample: torch.Tensor) -> torch.Tensor:
        """The data prediction x0 from any parameterisation."""
        p, sigma = self.config.prediction_type, self.sigmas[index]
        if p == "flow_prediction":
            x0 = sample - sigma * model_output
        elif p == "sample":
            x0 = model_output
        else:
            alpha_t, sigma_t = self._alpha_sigma(sigma)
            x0 = (sample - sigma_t * model_output) / alpha_t if p == "epsilon" else alpha_t * sample - sigma_t * model_output
        return clip_x0(self.config, x0) if self.config.thresholding else x0

    def _first_order(self, x0, i, sample):
        alpha_t, sigma_t, lam_t = self._lambda(i + 1)
        _, sigma_s, lam_s = self._lambda(i)
        h = lam_t - lam_s
        return (sigma_t / sigma_s) * sample - (alpha_t * (torch.exp(-h) - 1.0)) * x0

    def _second_order(self, i, sample):
        alpha_t, sigma_t, lam_t = self._lambda(i + 1)
        _, sigma_s0, lam_s0 = self._lambda(i)
        lam_s1 = self._lambda(i - 1)[2]
        m0, m1 = self.model_outputs[-1], self.model_outputs[-2]
        h, h0 = lam_t - lam_s0, lam_s0 - lam_s1
        d0, d1 = m0, (1.0 / (h0 / h)) * (m0 - m1)
        base = (sigma_t / sigma_s0) * sample - (alpha_t * (torch.exp(-h) - 1.0)) * d0
        if self.config.solver_type == "midpoint":
            return base - 0.5 * (alpha_t * (torch.exp(-h) - 1.0)) * d1
        return base + (alpha_t * ((torch.exp(-h) - 1.0) / h + 1.0)) * d1

    def _third_order(self, i, sample):
        alpha_t, sigma_t, lam_t = self._lambda(i + 1)
        _, sigma_s0, lam_s0 = self._lambda(i)
        lam_s1, lam_s2 = self._lambda(i - 1)[2], self._lambda(i - 2)[2]
        m0, m1, m2 = self.model_outputs[-1], self.model_outputs[-2], self.model_outputs[-3]
        h, h0, h1 = lam_t - lam_s0, lam_s0 - lam_s1, lam_s1 - lam_s2
        r0, r1 = h0 / h, h1 / h
        d1_0, d1_1 = (1.0 / r0) * (m0 - m1), (1.0 / r1) * (m1 - m2)
        d1 = d1_0 + (r0 / (r0 + r1)) * (d1_0 - d1_1)
        d2 = (1.0 / (r0 + r1)) * (d1_0 - d1_1)
        return ((sigma_t / sigma_s0) * sample - (alpha_t * (torch.exp(-h) - 1.0)) * m0
                + (alpha_t * ((torch.exp(-h) - 1.0) / h + 1.0)) * d1
                - (alpha_t * ((torch.exp(-h) - 1.0 + h) / h ** 2 - 0.5)) * d2)

    def step(self, model_output, index, sample, generator=None, noise=None):
        self._require_timesteps()
        c, n = self.config, len(self.timesteps)
        final = index == n - 1 and (c.euler_at_final or (c.lower_order_final and n < 15)
                                    or c.final_sigmas_type == "zero")
        second_last = index == n - 2 and c.lower_order_final and n < 15
        x0 = self.convert_model_output(model_output, index, sample)
        self.model_outputs = [*self.model_outputs[1:], x0]
        sample = sample.to(torch.float32)
        if c.solver_order == 1 or self.lower_order_nums < 1 or final:
            prev = self._first_order(x0, index, sample)
        elif c.solver_order == 2 or self.lower_order_nums < 2 or second_last:
            prev = self._second_order(index, sample)
        else:
            prev = self._third_order(index, sample)
        self.lower_order_nums = min(self.lower_order_nums + 1, c.solver_order)
        return prev.to(model_output.dtype)

    # flow-sigma models train with the flow-matching forward process
    def sample_training_timesteps(self, batch, generator=None, device="cpu"):
        if not self.config.use_flow_sigmas:
            return super().sample_training_timesteps(batch, generator, device)
        return flow_training_timesteps(batch, self.config.num_train_timesteps, self.config.flow_shift, generator, device)

    def q_sample(self, x0, noise, t):
        if not self.config.use_flow_sigmas:
            return super().q_sample(x0, noise, t)
        s = _flow_sigma(t, x0, self.config.num_train_timesteps)
        return (1 - s) * x0 + s * noise

    def training_target(self, x0, noise, t):
        return noise - x0 if self.config.use_flow_sigmas else super().training_target(x0, noise, t)


def _flow_sigma(t: torch.Tensor, like: torch.Tensor, n_train: int) -> torch.Tensor:
    return (t.to(like.dtype) / n_train).reshape(-1, *([1] * (like.dim() - 1)))  # (B, 1, 1, 1)


def flow_training_timesteps(batch: int, n_train: int, shift: float, generator=None, device="cpu") -> torch.Tensor:
    """sigma = shift(u), u ~ U(0, 1), returned in timestep units (sigma * n_train)."""
    u = torch.rand(batch, generator=generator)
    s = shift * u / (1 + (shift - 1) * u)
    return (s * n_train).to(device)
