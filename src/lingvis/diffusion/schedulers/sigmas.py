"""Noise-level (sigma) helpers shared by the sigma-space samplers (DPM-Solver, Euler), computed in the
same numpy/torch precision as diffusers so that schedules agree to float rounding."""
from __future__ import annotations

import numpy as np
import torch


def vp_sigmas(alphas_cumprod: torch.Tensor) -> np.ndarray:
    """sigma_t = sqrt((1 - abar_t) / abar_t) per training timestep (float32, as diffusers)."""
    return (((1 - alphas_cumprod) / alphas_cumprod) ** 0.5).numpy()


def sigma_to_t(sigma: float, log_sigmas: np.ndarray) -> np.ndarray:
    """Fractional training timestep whose sigma is `sigma` (log-linear interpolation)."""
    sigma = np.asarray(sigma)
    log_sigma = np.log(np.maximum(sigma, 1e-10))
    dists = log_sigma - log_sigmas[:, np.newaxis]
    low = np.cumsum((dists >= 0), axis=0).argmax(axis=0).clip(max=log_sigmas.shape[0] - 2)
    high = low + 1
    lo, hi = log_sigmas[low], log_sigmas[high]
    w = np.clip((lo - log_sigma) / (lo - hi), 0, 1)
    return ((1 - w) * low + w * high).reshape(sigma.shape)


def karras_sigmas(in_sigmas: np.ndarray, n: int, sigma_min: float | None = None, sigma_max: float | None = None,
                  rho: float = 7.0) -> np.ndarray:
    """Karras et al. (2022) noise levels between the largest and smallest of `in_sigmas`."""
    lo = sigma_min if sigma_min is not None else in_sigmas[-1].item()
    hi = sigma_max if sigma_max is not None else in_sigmas[0].item()
    ramp = np.linspace(0, 1, n)
    return (hi ** (1 / rho) + ramp * (lo ** (1 / rho) - hi ** (1 / rho))) ** rho


def final_sigma(kind: str, alphas_cumprod: torch.Tensor):
    if kind == "zero":
        return 0
    if kind == "sigma_min":
        return ((1 - alphas_cumprod[0]) / alphas_cumprod[0]) ** 0.5
    raise ValueError(f"final_sigmas_type must be 'zero' or 'sigma_min', got {kind!r}")
