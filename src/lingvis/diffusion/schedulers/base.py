"""What every sampler shares: a dataclass config read from / written to diffusers' `scheduler_config.json`,
the beta schedules of variance-preserving diffusion, and timestep spacing.

A scheduler is used as
    sched.set_timesteps(n)
    x = noise * sched.init_noise_sigma
    for i, t in enumerate(sched.timesteps):
        x = sched.step(model(sched.scale_model_input(x, i), t), i, x)
with the step index `i` passed explicitly (no search by timestep value). Training uses
`sample_training_timesteps`, `q_sample` (the forward process) and `training_target` (what the model predicts)."""
from __future__ import annotations

import abc
import dataclasses
import json
import math
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

CONFIG_FILE = "scheduler_config.json"
PREDICTION_TYPES = ("epsilon", "v_prediction", "sample")
SPACINGS = ("linspace", "leading", "trailing")
DIFFUSERS_VERSION = "0.30.0"  # written into configs we save; diffusers reads any version


class Scheduler(abc.ABC):
    """Base class: `config_cls` names the diffusers fields it reads; `class_name` is diffusers' class."""

    class_name: ClassVar[str] = ""
    config_cls: ClassVar[type] = object
    order: ClassVar[int] = 1

    def __init__(self, config=None, **fields):
        self.config = config if config is not None else self.config_cls(**fields)
        if config is not None and fields:
            self.config = dataclasses.replace(config, **fields)
        self.timesteps: torch.Tensor = torch.empty(0)
        self.num_inference_steps: int | None = None
        self.ignored_keys: list[str] = []

    # ---- config io -----------------------------------------------------------------------------
    @classmethod
    def from_config(cls, config: dict[str, Any], source: str = "scheduler config"):
        """Build from a diffusers config dict. Keys of other diffusers schedulers are ignored (as
        diffusers does when swapping schedulers) and listed in `ignored_keys`; a bad value names its key."""
        known = {f.name for f in dataclasses.fields(cls.config_cls)}
        fields = {k: v for k, v in config.items() if k in known}
        ignored = sorted(k for k in config if k not in known and not k.startswith("_"))
        try:
            sched = cls(cls.config_cls(**fields))
        except (TypeError, ValueError) as e:
            raise ValueError(f"{source}: {e}") from e
        sched.ignored_keys = ignored
        return sched

    def to_config(self) -> dict[str, Any]:
        return {"_class_name": self.class_name, "_diffusers_version": DIFFUSERS_VERSION,
                **dataclasses.asdict(self.config)}

    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / CONFIG_FILE).write_text(json.dumps(self.to_config(), indent=2))
        return folder

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config})"

    # ---- sampling ------------------------------------------------------------------------------
    @property
    def init_noise_sigma(self) -> float | torch.Tensor:
        return 1.0

    @abc.abstractmethod
    def set_timesteps(self, num_inference_steps: int) -> None:
        """Fix the sampling timesteps for `num_inference_steps` steps."""

    def scale_model_input(self, sample: torch.Tensor, index: int) -> torch.Tensor:
        return sample

    @abc.abstractmethod
    def step(self, model_output: torch.Tensor, index: int, sample: torch.Tensor,
             generator: torch.Generator | None = None, noise: torch.Tensor | None = None) -> torch.Tensor:
        """One sampling step from `sample` at timestep `index` given the model output; the previous sample."""

    def _check_steps(self, n: int) -> None:
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"num_inference_steps must be a positive integer, got {n!r}")
        limit = self.config.num_train_timesteps
        if n > limit:
            raise ValueError(f"num_inference_steps {n} exceeds num_train_timesteps {limit}")

    def _require_timesteps(self) -> None:
        if self.num_inference_steps is None:
            raise RuntimeError("call set_timesteps(n) before step()")

    # ---- training ------------------------------------------------------------------------------
    @abc.abstractmethod
    def sample_training_timesteps(self, batch: int, generator: torch.Generator | None = None,
                                  device: torch.device | str = "cpu") -> torch.Tensor:
        """Random training timesteps, (batch,)."""

    @abc.abstractmethod
    def q_sample(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The noised input at timesteps t."""

    @abc.abstractmethod
    def training_target(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """What the model learns to predict at timesteps t (epsilon, v or velocity)."""


def _expand(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return v.reshape(-1, *([1] * (like.dim() - 1))).to(like.dtype)  # (B, 1, 1, 1)


# ---- variance-preserving (beta) schedules -------------------------------------------------------
def betas_for_alpha_bar(n: int, max_beta: float = 0.999) -> torch.Tensor:
    """Glide's cosine schedule ("squaredcos_cap_v2")."""
    def alpha_bar(t):
        return math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2
    return torch.tensor([min(1 - alpha_bar((i + 1) / n) / alpha_bar(i / n), max_beta) for i in range(n)],
                        dtype=torch.float32)


def rescale_zero_terminal_snr(betas: torch.Tensor) -> torch.Tensor:
    """Rescale betas so the last timestep has zero signal (arXiv 2305.08891, algorithm 1)."""
    abar_sqrt = torch.cumprod(1.0 - betas, dim=0).sqrt()
    first, last = abar_sqrt[0].clone(), abar_sqrt[-1].clone()
    abar_sqrt = (abar_sqrt - last) * (first / (first - last))
    abar = abar_sqrt ** 2
    alphas = torch.cat([abar[0:1], abar[1:] / abar[:-1]])
    return 1 - alphas


BETA_SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2")


def make_betas(c) -> torch.Tensor:
    """(num_train_timesteps,) betas from a config's beta fields, in float32 as diffusers computes them."""
    if c.trained_betas is not None:
        betas = torch.tensor(c.trained_betas, dtype=torch.float32)
    elif c.beta_schedule == "linear":
        betas = torch.linspace(c.beta_start, c.beta_end, c.num_train_timesteps, dtype=torch.float32)
    elif c.beta_schedule == "scaled_linear":
        betas = torch.linspace(c.beta_start ** 0.5, c.beta_end ** 0.5, c.num_train_timesteps, dtype=torch.float32) ** 2
    elif c.beta_schedule == "squaredcos_cap_v2":
        betas = betas_for_alpha_bar(c.num_train_timesteps)
    else:
        raise ValueError(f"beta_schedule must be one of {BETA_SCHEDULES}, got {c.beta_schedule!r}")
    if c.rescale_betas_zero_snr:
        betas = rescale_zero_terminal_snr(betas)
    return betas


def check_choice(key: str, value, choices) -> None:
    if value not in choices:
        raise ValueError(f"{key} must be one of {tuple(choices)}, got {value!r}")


def spaced_timesteps(spacing: str, n_train: int, n: int, steps_offset: int = 0) -> np.ndarray:
    """Integer timesteps (descending) of DDPM/DDIM for `n` steps: arXiv 2305.08891 table 2."""
    if spacing == "linspace":
        return np.linspace(0, n_train - 1, n).round()[::-1].copy().astype(np.int64)
    if spacing == "leading":
        ratio = n_train // n
        return (np.arange(0, n) * ratio).round()[::-1].copy().astype(np.int64) + steps_offset
    if spacing == "trailing":
        ratio = n_train / n
        return np.round(np.arange(n_train, 0, -ratio)).astype(np.int64) - 1
    raise ValueError(f"timestep_spacing must be one of {SPACINGS}, got {spacing!r}")


class VPScheduler(Scheduler):
    """Schedulers over a discrete beta schedule (DDPM, DDIM, DPM-Solver, Euler): training draws integer
    t in [0, T) and x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) noise."""

    def __init__(self, config=None, **fields):
        super().__init__(config, **fields)
        c = self.config
        check_choice("prediction_type", c.prediction_type, self.prediction_types)
        check_choice("timestep_spacing", c.timestep_spacing, SPACINGS)
        if c.num_train_timesteps < 1:
            raise ValueError(f"num_train_timesteps must be >= 1, got {c.num_train_timesteps}")
        self.betas = make_betas(c)  # (T,)
        self.alphas = 1.0 - self.betas
        self.alphas_cumprod = torch.cumprod(self.alphas, dim=0)  # (T,)

    prediction_types: ClassVar[tuple] = PREDICTION_TYPES

    def sample_training_timesteps(self, batch, generator=None, device="cpu"):
        return torch.randint(0, self.config.num_train_timesteps, (batch,), generator=generator).to(device)

    def _abar(self, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return _expand(self.alphas_cumprod.to(like.device)[t.long()], like)  # (B, 1, 1, 1)

    def q_sample(self, x0, noise, t):
        abar = self._abar(t, x0)
        return abar ** 0.5 * x0 + (1 - abar) ** 0.5 * noise

    def training_target(self, x0, noise, t):
        p = self.config.prediction_type
        if p == "epsilon":
            return noise
        if p == "sample":
            return x0
        abar = self._abar(t, x0)
        return abar ** 0.5 * noise - (1 - abar) ** 0.5 * x0  # v

    def snr(self, t: torch.Tensor) -> torch.Tensor:
        """Signal-to-noise ratio abar / (1 - abar) at training timesteps t (B,)."""
        abar = self.alphas_cumprod.to(t.device)[t.long()]
        return abar / (1 - abar)

    def min_snr_weight(self, t: torch.Tensor, gamma: float) -> torch.Tensor:
        """Min-SNR-gamma loss weights (Hang et al. 2023) for this scheduler's prediction type, (B,)."""
        snr = self.snr(t)
        clipped = snr.clamp(max=gamma)
        p = self.config.prediction_type
        return clipped / snr if p == "epsilon" else clipped / (snr + 1) if p == "v_prediction" else clipped

    def predict_x0_eps(self, model_output, sample, abar_t) -> tuple[torch.Tensor, torch.Tensor]:
        """(x0, epsilon) from the model output at a timestep with cumulative alpha `abar_t`."""
        p, beta = self.config.prediction_type, 1 - abar_t
        if p == "epsilon":
            return (sample - beta ** 0.5 * model_output) / abar_t ** 0.5, model_output
        if p == "sample":
            return model_output, (sample - abar_t ** 0.5 * model_output) / beta ** 0.5
        return abar_t ** 0.5 * sample - beta ** 0.5 * model_output, abar_t ** 0.5 * model_output + beta ** 0.5 * sample


def clip_x0(c, x0: torch.Tensor) -> torch.Tensor:
    """Dynamic thresholding (Imagen) or plain clipping of predicted x0, per the config."""
    if getattr(c, "thresholding", False):
        B = x0.shape[0]
        flat = x0.float().reshape(B, -1)
        s = torch.quantile(flat.abs(), c.dynamic_thresholding_ratio, dim=1)
        s = torch.clamp(s, min=1, max=c.sample_max_value).unsqueeze(1)
        return (torch.clamp(flat, -s, s) / s).reshape(x0.shape).to(x0.dtype)
    if getattr(c, "clip_sample", False):
        return x0.clamp(-c.clip_sample_range, c.clip_sample_range)
    return x0
