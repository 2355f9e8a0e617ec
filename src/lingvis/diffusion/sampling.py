"""Sampling a text-to-image model: prompt tokens, classifier-free guidance with negative prompts, any
scheduler, seeded initial noise (the same noise diffusers draws from the same CPU generator), a progress
bar over the steps, and decoding to images."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from PIL import Image

from ..nn.attention import fixed_memory
from ..nn.packed_linear import packed_linears
from ..progress import progress as progress_bar
from .schedulers import Scheduler, make_scheduler

MAX_STEPS = 1000


def prompt_tokens(tokenizer, texts: Sequence[str], length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """CLIP-style prompt ids (B, length): [bos] text [eos] then padding (the tokenizer's pad, else eos),
    truncated to `length`; mask (B, length) is 1 over bos..eos."""
    bos, eos = tokenizer.bos_id, tokenizer.eos_id
    if bos is None or eos is None:
        raise ValueError("the tokenizer needs begin- and end-of-text tokens (bos/eos) for prompts")
    if length < 2:
        raise ValueError(f"prompt length must be >= 2, got {length}")
    pad = tokenizer.pad_id if tokenizer.pad_id is not None else eos
    ids = torch.full((len(texts), length), pad, dtype=torch.long)
    mask = torch.zeros((len(texts), length), dtype=torch.long)
    for i, body in enumerate(tokenizer.encode_batch(list(texts))):
        seq = [bos, *body[:length - 2], eos]
        ids[i, :len(seq)] = torch.tensor(seq)
        mask[i, :len(seq)] = 1
    return ids, mask


def check_request(prompts: Sequence[str], steps: int, guidance_scale: float, n: int) -> None:
    if not prompts:
        raise ValueError("prompt: give at least one prompt")
    for p in prompts:
        if not isinstance(p, str) or not p.strip():
            raise ValueError("prompt: must be a non-empty string")
    if not isinstance(steps, int) or not 1 <= steps <= MAX_STEPS:
        raise ValueError(f"steps: must be an integer in [1, {MAX_STEPS}], got {steps!r}")
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n: must be a positive integer, got {n!r}")
    if guidance_scale < 0:
        raise ValueError(f"guidance_scale: must be >= 0, got {guidance_scale}")


def resolve_scheduler(model, scheduler: str | Scheduler | None) -> Scheduler:
    """The model's own scheduler, another one by name over the same noise schedule, or an instance."""
    if isinstance(scheduler, Scheduler):
        return scheduler
    return make_scheduler(model.config.scheduler, name=scheduler, source="the model's scheduler config")


@torch.inference_mode()
def encode_prompts(model, tokenizer, prompts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor | None]:
    ids, mask = prompt_tokens(tokenizer, prompts, model.text_length)
    device = next(model.parameters()).device
    return model.encode_text(ids.to(device), mask.to(device))


@torch.inference_mode()
def sample_latents(model, text: torch.Tensor, text_mask: torch.Tensor | None, uncond: torch.Tensor | None,
                   uncond_mask: torch.Tensor | None, scheduler: Scheduler, steps: int, guidance_scale: float,
                   latents: torch.Tensor, generator: torch.Generator | None = None, progress: bool = True,
                   guidance_below: float = 1.0) -> torch.Tensor:
    """The denoising loop over (B, C, h, w) `latents` (already scaled by the initial noise sigma).
    With `uncond` (B, L, D) the prediction is uncond + g * (cond - uncond), both halves in one batch, at the
    steps whose timestep is <= guidance_below * num_train_timesteps (guidance in a limited interval, as
    Kynkaanniemi et al. 2024; 1.0: every step; for flow matching the bound is the noise level sigma); the other
    steps run the conditional half alone."""
    denoiser = model.sampling_denoiser
    scheduler.set_timesteps(steps)
    guided = uncond is not None
    states = torch.cat([uncond, text]) if guided else text  # (2B or B, L, D)
    mask = None
    if text_mask is not None:
        mask = torch.cat([uncond_mask, text_mask]) if guided else text_mask
    shared = guided and getattr(denoiser, "shares_guidance_input", False)  # one input row per image
    x = latents
    steps_bar = progress_bar(scheduler.timesteps, desc="sampling", unit="step", leave=False, disable=not progress)
    limit = guidance_below * scheduler.config.num_train_timesteps
    with fixed_memory():  # the text states are the same on every step: cross-attention keys/values once
        for i, t in enumerate(steps_bar):
            if guided and float(t) > limit:  # outside the guidance interval: the conditional prediction alone
                pred = denoiser(scheduler.scale_model_input(x, i), t.to(x.device), text, text_mask)
            else:
                inp = scheduler.scale_model_input(x if shared or not guided else torch.cat([x, x]), i)
                pred = denoiser(inp, t.to(x.device), states, mask)
            if guided and float(t) <= limit:
                p_uncond, p_cond = pred.chunk(2)
                pred = p_uncond + guidance_scale * (p_cond - p_uncond)
            x = scheduler.step(pred, i, x, generator=generator)
    return x


def to_pil(images: torch.Tensor) -> list[Image.Image]:
    """(B, 3, H, W) in [0, 1] -> PIL images (rounded as diffusers does)."""
    arr = (images.permute(0, 2, 3, 1).cpu().float().numpy() * 255).round().astype("uint8")
    return [Image.fromarray(a) for a in arr]


@torch.inference_mode()
def generate_images(model, tokenizer, prompts: str | Sequence[str], *,
                    negative_prompt: str | Sequence[str] | None = None, n: int = 1, steps: int = 25,
                    guidance_scale: float = 4.0, seed: int | None = None, generator: torch.Generator | None = None,
                    height: int | None = None, width: int | None = None, scheduler: str | Scheduler | None = None,
                    latents: torch.Tensor | None = None, progress: bool = True, output: str = "pil",
                    guidance_below: float = 1.0):
    """Images for `prompts` (n per prompt, prompt-major order as diffusers). Guidance > 1 runs
    classifier-free guidance against `negative_prompt` (default the empty prompt). `seed` (or a CPU
    `generator`) fixes the initial noise; `latents` gives it directly (scaled by the scheduler's initial
    sigma, as diffusers does). `output`: 'pil' (list of images) or 'pt' ((B, 3, H, W) in [0, 1]).
    `guidance_below` < 1 guides only the lower-noise steps (`sample_latents`)."""
    prompts = [prompts] if isinstance(prompts, str) else list(prompts)
    check_request(prompts, steps, guidance_scale, n)
    if output not in ("pil", "pt"):
        raise ValueError(f"output must be 'pil' or 'pt', got {output!r}")
    if not 0.0 <= guidance_below <= 1.0:
        raise ValueError(f"guidance_below must be in [0, 1] (a fraction of the timesteps), got {guidance_below}")
    model.eval()
    device = next(model.parameters()).device
    height, width = height or model.image_size, width or model.image_size
    f = model.downscale * 2 ** max(0, len(getattr(model.denoiser.config, "block_out_channels", [0])) - 1)
    if height % model.downscale or width % model.downscale or height < f or width < f:
        raise ValueError(f"size: {width}x{height} must be a multiple of {model.downscale} and at least {f}")
    sched = resolve_scheduler(model, scheduler)
    with packed_linears(model):  # the text encoder's linears on the kernel measured faster (nn/gemm_select.py)
        text, text_mask = encode_prompts(model, tokenizer, prompts)
    text = text.repeat_interleave(n, dim=0)
    text_mask = text_mask.repeat_interleave(n, dim=0) if text_mask is not None else None
    uncond = uncond_mask = None
    if guidance_scale > 1.0:
        neg = negative_prompt if negative_prompt is not None else ""
        neg = [neg] * len(prompts) if isinstance(neg, str) else list(neg)
        if len(neg) != len(prompts):
            raise ValueError(f"negative_prompt: {len(neg)} given for {len(prompts)} prompts")
        with packed_linears(model):
            uncond, uncond_mask = encode_prompts(model, tokenizer, neg)  # "" is the unconditional prompt
        uncond = uncond.repeat_interleave(n, dim=0)
        uncond_mask = uncond_mask.repeat_interleave(n, dim=0) if uncond_mask is not None else None
    shape = (len(prompts) * n, model.latent_channels, height // model.downscale, width // model.downscale)
    if latents is None:
        if generator is None and seed is not None:
            generator = torch.Generator().manual_seed(int(seed))
        latents = torch.randn(shape, generator=generator, dtype=torch.float32)
    elif tuple(latents.shape) != shape:
        raise ValueError(f"latents: expected shape {shape}, got {tuple(latents.shape)}")
    sched.set_timesteps(steps)
    x = latents.to(device) * sched.init_noise_sigma
    with packed_linears(model):  # the denoiser's linears likewise
        x = sample_latents(model, text, text_mask, uncond, uncond_mask, sched, steps, guidance_scale, x, generator,
                           progress, guidance_below)
    images = (model.from_latents(x) / 2 + 0.5).clamp(0, 1)  # (B, 3, H, W)
    return images if output == "pt" else to_pil(images)


def image_grid(images: Sequence[Image.Image], cols: int | None = None, pad: int = 2) -> Image.Image:
    """Tile images row-major into one image (white gaps of `pad` pixels)."""
    if not images:
        raise ValueError("no images to tile")
    cols = cols or min(len(images), 8)
    rows = (len(images) + cols - 1) // cols
    w, h = images[0].size
    grid = Image.new("RGB", (cols * w + (cols - 1) * pad, rows * h + (rows - 1) * pad), (255, 255, 255))
    for i, im in enumerate(images):
        grid.paste(im, ((i % cols) * (w + pad), (i // cols) * (h + pad)))
    return grid
