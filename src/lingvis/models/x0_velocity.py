"""Clean-image (x0) prediction for flow-matching denoisers: the network outputs x0_hat and this wrapper turns it
into the rectified-flow velocity v = (x_t - x0_hat) / sigma that the sampler and the loss expect (JiT, Li & He
2025, "Back to Basics: Let Denoising Generative Models Denoise"). The loss on v is unchanged; only what the
network has to produce changes: the clean image (flat colours on white for the shapes) instead of
noise - x0, which carries the full-rank noise through every patch token."""
from __future__ import annotations

import torch
from torch import nn


def x0_to_velocity(x0_hat: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor, num_train_timesteps: int,
                   min_sigma: float) -> torch.Tensor:
    """x0_hat, x_t (B, C, H, W); t (B,) or scalar flow timesteps (sigma * num_train_timesteps) -> v (B, C, H, W)."""
    t = torch.as_tensor(t, device=x_t.device, dtype=torch.float32)
    sigma = (t / num_train_timesteps).clamp(min=min_sigma)  # (B,) or ()
    sigma = sigma.reshape(-1, *[1] * (x_t.dim() - 1)) if sigma.dim() else sigma  # (B, 1, 1, 1)
    return (x_t - x0_hat) / sigma.to(x_t.dtype)


class X0Velocity(nn.Module):
    """`forward(x_t, t, text_states, text_mask)` of a denoiser that predicts x0, returned as a flow velocity."""

    def __init__(self, denoiser: nn.Module, num_train_timesteps: int = 1000, min_sigma: float = 0.05):
        super().__init__()
        if not 0.0 < min_sigma <= 1.0:
            raise ValueError(f"min_sigma must be in (0, 1], got {min_sigma}")
        self.denoiser, self.num_train_timesteps, self.min_sigma = denoiser, num_train_timesteps, min_sigma

    @property
    def shares_guidance_input(self) -> bool:
        return getattr(self.denoiser, "shares_guidance_input", False)

    @property
    def config(self):
        return self.denoiser.config

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, text_states: torch.Tensor,
                text_mask: torch.Tensor | None = None) -> torch.Tensor:
        x0_hat = self.denoiser(x_t, t, text_states, text_mask)  # (B, C, H, W)
        if x0_hat.shape[0] != x_t.shape[0]:  # a denoiser that shares one input row between the guidance halves
            x_t = torch.cat([x_t] * (x0_hat.shape[0] // x_t.shape[0]))
        return x0_to_velocity(x0_hat, x_t, t, self.num_train_timesteps, self.min_sigma)
