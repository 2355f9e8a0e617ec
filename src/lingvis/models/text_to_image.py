"""Text-to-image diffusion model: a frozen-by-default text tower (a lingvis CLIP text tower), a denoiser
(any registered family with the contract `denoiser(x_t, t, text_states, text_mask) -> prediction`, e.g. the
UNet or a DiT), an optional KL autoencoder (latent space; none = pixel space), the noise schedule (a
diffusers scheduler config) and an exponential moving average of the denoiser's weights."""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
from torch import nn

from .registry import family, make_config, register_family, register_preset
from .x0_velocity import X0Velocity

DEFAULT_SCHEDULER = {"_class_name": "DDPMScheduler", "num_train_timesteps": 1000, "beta_schedule": "linear",
                     "beta_start": 0.0001, "beta_end": 0.02, "prediction_type": "epsilon", "clip_sample": False,
                     "timestep_spacing": "trailing"}
FLOW = {"_class_name": "FlowMatchEulerDiscreteScheduler", "shift": 1.0}
PREDICTIONS = ("native", "x0")


@dataclass
class TextToImageConfig:
    denoiser_family: str = "unet"
    denoiser: dict = field(default_factory=dict)      # fields of the denoiser's config
    text_family: str = "clip_text"
    text: dict = field(default_factory=dict)          # fields of the text tower's config
    vae: dict | None = None                           # AutoencoderKL fields; None = pixel space
    scheduler: dict = field(default_factory=lambda: dict(DEFAULT_SCHEDULER))  # diffusers scheduler config
    lock_text: bool = True                            # frozen text tower
    text_length: int | None = None                    # prompts padded to this many tokens (default: tower context)
    use_text_mask: bool = False                       # mask prompt padding in cross-attention (SD does not)
    ema: bool = True                                  # keep an EMA copy of the denoiser (sampling uses it)
    ema_decay: float = 0.999
    prediction: str = "native"                        # native: the scheduler's target | x0 (flow matching only)
    repa_dim: int = 0                                 # > 0: a training-only REPA head to this encoder width
    repa_hidden: int = 0                              # the REPA head's hidden width (0: 2 x the denoiser's width)

    def __post_init__(self):
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if "_class_name" not in self.scheduler:
            raise ValueError("scheduler config needs a `_class_name` (a diffusers scheduler class)")
        if self.prediction not in PREDICTIONS:
            raise ValueError(f"prediction must be one of {PREDICTIONS}, got {self.prediction!r}")
        if self.prediction == "x0" and self.scheduler["_class_name"] != FLOW["_class_name"]:
            raise ValueError(f"prediction 'x0' converts the output to a rectified-flow velocity: it needs the "
                             f"{FLOW['_class_name']} scheduler, got {self.scheduler['_class_name']}")


def _build(family_name: str, fields: dict) -> nn.Module:
    return family(family_name).model_cls(make_config(family_name, dict(fields)))


class TextToImage(nn.Module):
    """`encode_text(ids, mask) -> (states, mask)`, `to_latents(images)`, `from_latents(latents)`,
    `denoise(x_t, t, states, mask)`; `sampling_denoiser` is the EMA copy when there is one."""

    def __init__(self, config: TextToImageConfig):
        super().__init__()
        self.config = c = config
        self.text_encoder = _build(c.text_family, c.text)
        if not hasattr(self.text_encoder, "encode"):
            raise ValueError(f"text tower family {c.text_family!r} has no `encode(input_ids, attention_mask)`")
        self.denoiser = _build(c.denoiser_family, c.denoiser)
        self.vae = _build("vae", c.vae) if c.vae is not None else None
        if self.vae is not None:
            self.vae.requires_grad_(False)
        if c.lock_text:
            self.text_encoder.requires_grad_(False)
        self.ema = None
        if c.ema:
            self.ema = copy.deepcopy(self.denoiser).requires_grad_(False)
            self.register_buffer("ema_updates", torch.zeros((), dtype=torch.long))
        self.repa_head = None  # training-only (tasks/repa.py): not used at sampling, not exported
        if c.repa_dim:
            self.add_repa_head(c.repa_dim, c.repa_hidden)
        self._check_widths()

    def add_repa_head(self, out_dim: int, hidden: int = 0) -> None:
        """Build the REPA projection head (denoiser width -> `out_dim`) and record it in the config."""
        width = getattr(self.denoiser.config, "dim", None)
        if width is None:
            raise ValueError(f"REPA needs a Transformer denoiser (DiT); {self.config.denoiser_family!r} has no width")
        self.config.repa_dim, self.config.repa_hidden = out_dim, hidden
        hidden = hidden or 2 * width  # Linear-SiLU-Linear: (B, N, width) hidden tokens -> (B, N, out_dim)
        self.repa_head = nn.Sequential(nn.Linear(width, hidden), nn.SiLU(), nn.Linear(hidden, out_dim))

    def _check_widths(self) -> None:
        text_dim = getattr(self.text_encoder, "out_dim", None)
        want = getattr(self.denoiser, "text_dim", None)
        if text_dim is not None and want is not None and text_dim != want:
            raise ValueError(f"the text tower's width {text_dim} does not fit the denoiser's text width {want}")
        in_ch = getattr(self.denoiser.config, "in_channels", None)
        have = self.vae.config.latent_channels if self.vae is not None else 3
        if in_ch is not None and in_ch != have:
            space = "latent" if self.vae is not None else "pixel"
            raise ValueError(f"the denoiser takes {in_ch} channels but the {space} space has {have}")

    def train(self, mode: bool = True):
        super().train(mode)
        for frozen in (self.vae, self.ema, self.text_encoder if self.config.lock_text else None):
            if frozen is not None:
                frozen.eval()
        return self

    # ---- geometry ------------------------------------------------------------------------------
    @property
    def latent_channels(self) -> int:
        return self.vae.config.latent_channels if self.vae is not None else self.denoiser.config.in_channels

    @property
    def downscale(self) -> int:
        return self.vae.config.downscale if self.vae is not None else 1

    @property
    def image_size(self) -> int:
        """Default output side in pixels: the denoiser's trained size times the autoencoder's factor."""
        return int(getattr(self.denoiser.config, "sample_size", 32)) * self.downscale

    @property
    def text_length(self) -> int:
        cfg = self.text_encoder.config
        ctx = int(getattr(cfg, "context_length", None) or getattr(cfg, "max_positions"))
        return min(self.config.text_length or ctx, ctx)

    # ---- parts ---------------------------------------------------------------------------------
    def encode_text(self, input_ids: torch.Tensor,
                    attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        # Stable Diffusion runs its causal text tower over the padding too and attends to every position
        masked = self.config.use_text_mask
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.config.lock_text):
            states = self.text_encoder.encode(input_ids, attention_mask if masked else None)  # (B, L, D)
        return states, attention_mask if masked else None

    @torch.no_grad()
    def to_latents(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Images in [-1, 1] (B, 3, H, W) -> diffusion space (B, C, H/f, W/f)."""
        return images if self.vae is None else self.vae.to_latents(images, generator)

    def from_latents(self, latents: torch.Tensor) -> torch.Tensor:
        return latents if self.vae is None else self.vae.from_latents(latents)

    def _as_target(self, denoiser: nn.Module) -> nn.Module:
        """The denoiser as a predictor of the scheduler's target (an x0 denoiser wrapped into a velocity)."""
        if self.config.prediction == "x0":
            return X0Velocity(denoiser, self.config.scheduler.get("num_train_timesteps", 1000))
        return denoiser

    @property
    def sampling_denoiser(self) -> nn.Module:
        """The EMA denoiser once it has been updated (else the raw one), predicting the scheduler's target."""
        return self._as_target(self.ema if self.ema is not None and int(self.ema_updates) > 0 else self.denoiser)

    @torch.no_grad()
    def update_ema(self, decay: float | None = None) -> None:
        """ema <- d * ema + (1 - d) * weights, with d warmed up as min(decay, (1 + n) / (10 + n))."""
        if self.ema is None:
            return
        n = int(self.ema_updates)
        d = min(self.config.ema_decay if decay is None else decay, (1 + n) / (10 + n))
        for e, p in zip(self.ema.parameters(), self.denoiser.parameters()):
            e.lerp_(p.detach(), 1 - d)
        for e, b in zip(self.ema.buffers(), self.denoiser.buffers()):
            e.copy_(b)
        self.ema_updates += 1

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, text_states: torch.Tensor,
                text_mask: torch.Tensor | None = None) -> torch.Tensor:
        return self._as_target(self.denoiser)(x_t, t, text_states, text_mask)


register_family("text_to_image", TextToImageConfig, TextToImage, "text-to-image diffusion (text tower + denoiser "
                "+ optional autoencoder)")
SHAPES_TEXT = dict(vocab_size=256, context_length=24, dim=128, depth=2, heads=4, mlp_hidden=512)
register_preset("t2i-shapes", "text_to_image", "32px pixel-space UNet (32/64/128, attention at 16 and 8 px) + "
                "2-layer text tower trained with it, flow matching: shapes in minutes",
                denoiser_family="unet", lock_text=False, text=SHAPES_TEXT, scheduler=FLOW,
                denoiser=dict(in_channels=3, out_channels=3, sample_size=32, block_out_channels=[32, 64, 128],
                              down_attention=[False, True, True], layers_per_block=1, attention_heads=4,
                              cross_attention_dim=128, norm_num_groups=8))
register_preset("t2i-shapes-latent", "text_to_image", "64px images as 16x16x4 latents of the vae-shapes autoencoder",
                denoiser_family="unet", lock_text=False, text=SHAPES_TEXT,
                vae=dict(block_out_channels=[32, 64, 64], layers_per_block=1, norm_num_groups=16, sample_size=64,
                         scaling_factor=1.0),
                denoiser=dict(in_channels=4, out_channels=4, sample_size=16, block_out_channels=[64, 128],
                              down_attention=[False, True], layers_per_block=1, attention_heads=4,
                              cross_attention_dim=128, norm_num_groups=16))
register_preset("t2i-nano", "text_to_image", "16px pixel-space UNet (width 16/32) + 1-layer text tower: tests",
                denoiser_family="unet", lock_text=False, scheduler=FLOW,
                text=dict(vocab_size=64, context_length=16, dim=32, depth=1, heads=4, mlp_hidden=64),
                denoiser=dict(in_channels=3, out_channels=3, sample_size=16, block_out_channels=[16, 32],
                              down_attention=[False, True], layers_per_block=1, attention_heads=2,
                              cross_attention_dim=32, norm_num_groups=8))
register_preset("t2i-shapes-dit", "text_to_image", "32px pixel-space DiT (6 adaLN-zero layers, width 192, 4px "
                "patches, text cross-attention) + 2-layer text tower trained with it, flow matching",
                denoiser_family="dit", lock_text=False, text=SHAPES_TEXT, scheduler=FLOW,
                denoiser=dict(in_channels=3, sample_size=32, patch_size=4, dim=192, depth=6, heads=4, text_dim=128))
register_preset("t2i-shapes-dit-conv", "text_to_image", "t2i-shapes-dit with a two-conv head after unpatchify "
                "(32 channels, U-ViT style: smooths the 4px patch seams)",
                denoiser_family="dit", lock_text=False, text=SHAPES_TEXT, scheduler=FLOW,
                denoiser=dict(in_channels=3, sample_size=32, patch_size=4, dim=192, depth=6, heads=4, text_dim=128,
                              conv_out=32))
register_preset("t2i-shapes-dit-conv-s", "text_to_image", "t2i-shapes-dit-conv at width 128 and 4 layers (1.84M "
                "denoiser parameters): 2.4x the training steps per CPU-second, the shapes recipe's denoiser",
                denoiser_family="dit", lock_text=False, text=SHAPES_TEXT, scheduler=FLOW,
                denoiser=dict(in_channels=3, sample_size=32, patch_size=4, dim=128, depth=4, heads=4, text_dim=128,
                              conv_out=32))
