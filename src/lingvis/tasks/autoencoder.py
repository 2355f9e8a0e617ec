"""KL autoencoder training (the latent space of latent diffusion): L1 reconstruction plus a small KL term
towards N(0, I). Evaluation reports reconstruction error and PSNR from the posterior mean, and re-estimates
the model's `scaling_factor` as 1 / std of the validation latents (how Stable Diffusion's 0.18215 was set),
so the diffusion model sees latents of unit variance."""
from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn

from ..train.task import Task


def kl_to_standard_normal(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Mean over latent elements of KL(N(mean, exp(logvar)) || N(0, 1))."""
    return 0.5 * (mean.square() + logvar.exp() - 1.0 - logvar).mean()


class AutoencoderTask(Task):
    """Samples are {"image": (3, H, W) in [-1, 1], ...}."""

    name = "vae"
    metric_for_best = "l1"

    def __init__(self, kl_weight: float = 1e-4):
        if kl_weight < 0:
            raise ValueError(f"kl_weight must be >= 0, got {kl_weight}")
        self.kl_weight = kl_weight

    def collate(self, samples: list[dict]) -> dict:
        samples = [s for s in samples if s is not None]
        if not samples:
            raise ValueError("a batch has no loadable samples")
        return {"pixel_values": torch.stack([s["image"] for s in samples])}

    def loss(self, model: nn.Module, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        x = batch["pixel_values"]
        recon, mean, logvar = model(x)
        l1 = (recon.float() - x.float()).abs().mean()
        kl = kl_to_standard_normal(mean.float(), logvar.float())
        return l1 + self.kl_weight * kl, {"l1": float(l1), "kl": float(kl)}

    @torch.no_grad()
    def evaluate(self, model: nn.Module, batches: Iterable[dict]) -> dict[str, float]:
        core = getattr(model, "module", model)
        l1 = mse = 0.0
        n, latents = 0, []
        for batch in batches:
            x = batch["pixel_values"]
            mean, _ = core.encode(x)
            recon = core.decode(mean).clamp(-1, 1)
            l1 += float((recon - x).abs().mean())
            mse += float(((recon - x) / 2).square().mean())  # in [0, 1] units
            latents.append(mean.flatten())
            n += 1
        if n == 0:
            raise ValueError("evaluation got no batches: the validation set is empty")
        std = float(torch.cat(latents).std())
        core.config.scaling_factor = 1.0 / max(std, 1e-6)
        core.config.shift_factor = None
        mse /= n
        return {"l1": l1 / n, "psnr": 10 * math.log10(1.0 / max(mse, 1e-12)), "latent_std": std,
                "scaling_factor": core.config.scaling_factor}
