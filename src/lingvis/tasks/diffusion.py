"""Text-to-image diffusion training: noise an image (or its autoencoder latents) at a random timestep and
regress the scheduler's target (noise, velocity or flow) from the noisy input and the caption. Captions are
dropped at `text_dropout` for classifier-free guidance; the EMA of the denoiser is updated once per
optimizer step; `snr_gamma` weights the loss by min(SNR, gamma) (min-SNR, for noise-prediction objectives);
`timesteps="logit_normal"` draws training noise levels as sigmoid(N(m, 1)) of the schedule (SD3's sampler,
denser in the middle noise levels; `timestep_mean` m < 0 moves the mass to lower noise; a tuple of means draws
from the equal-weight mixture of those logit-normals, e.g. (2, 0): half the batch at the high noise levels where
the layout is decided, half in the middle where the outlines are) instead of uniformly;
`lowres_weight` w adds w * MSE of the prediction and the target average-pooled to each of `lowres_sizes` (a
multi-scale loss: the coarse layout and colour a caption decides get a low-noise gradient; the minimiser, the
conditional mean, is unchanged); `lowres_x0` measures that pooled error in x0 units (x sigma^2 for rectified flow,
so the extra weight falls on the high noise levels where the layout is decided); `object_weight` w weighs the
squared error of each pixel by 1 + w where the clean image is not background white (pixel space only: the objects
of the shapes world cover a few % of the image, so their outlines, which the caption's shape word decides, get
little of the plain MSE's gradient; the minimiser becomes the weighted conditional mean, biased towards the
objects' colours); `edge_weight` w adds w * the mean squared difference of the error between neighbouring pixels
(horizontal and vertical; a gradient-matching loss: it penalises the high-frequency part of the error, the blur
that turns an outline into a blob, while a smooth error costs almost nothing; for white error it is about 4x the
MSE; in the objective's units, so for rectified flow the x0 estimate's edge error weighs 1 / sigma^2: the low
noise levels where the outlines are finished); `repa_weight` w adds w x REPA (tasks/repa.py: block `repa_depth`'s
hidden tokens, through the model's training-only `repa_head`, predict the frozen `repa_encoder`'s patch features of
the clean image; negative cosine; training steps only, so the validation loss stays the diffusion loss;
`repa_center`: the targets minus their batch mean per channel, since a CNN's post-ReLU features share one direction,
cosine 0.70 to their mean); `shape_weight` w adds w x `tasks/shape_seg.py`'s shape loss (a frozen per-pixel shape
segmenter's cross-entropy on the x0 estimate against its labels of the clean image, object pixels only; rectified
flow in pixel space; training steps only, and only for samples with sigma <= `shape_max_sigma`); batches of
`data/shape_twins.py` items (an image and its twin: one object's shape changed, caption to match) are trained with
the same noise level and noise for both, and `twin_weight` w adds w x the squared error of the pair's prediction
difference against its target difference (the part of the output the shape word decides; the plain MSE weighs it
as 1/2, so the shape-dependent part then weighs 1 + 2w as much; pairs whose captions were dropped are left out;
`twin_input="same"`: the twin row reads the ORIGINAL's noisy image x_t, so only the caption differs, and the term is
the x0-estimate difference against x0_twin - x0 (x0 units: s(pred - pred_twin)), only at sigma >= `twin_min_sigma`;
the twin rows then have no plain MSE of their own: the caption alone must redraw the outline);
evaluation is a seeded validation loss plus a grid of fixed prompts saved as a PNG."""
from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..diffusion.sampling import generate_images, image_grid
from ..diffusion.schedulers import make_scheduler
from ..train.task import Task
from .repa import RepaEncoder, block_output, repa_loss
from .shape_seg import ShapeSegmenter, shape_seg_loss

Tokenize = Callable[[list[str]], tuple[torch.Tensor, torch.Tensor]]
TIMESTEP_SAMPLERS = ("uniform", "logit_normal")


def logit_normal_timesteps(scheduler, batch: int, generator: torch.Generator | None, device,
                           mean: float | tuple[float, ...] = 0.0) -> torch.Tensor:
    """(batch,) training timesteps at u = sigmoid(N(mean, 1)) of the schedule: flow sigma u (then the scheduler's
    shift), or the discrete timestep floor(u * num_train_timesteps) of a noise-prediction schedule. A tuple of
    means: each sample's mean is one of them, drawn uniformly (an equal-weight mixture of logit-normals)."""
    n_train = scheduler.config.num_train_timesteps
    if isinstance(mean, (tuple, list)):
        means = torch.tensor([float(m) for m in mean])  # (K,)
        mean = means[torch.randint(len(means), (batch,), generator=generator)]  # (B,) each sample's component
    u = torch.sigmoid(torch.randn(batch, generator=generator) + mean)  # (B,) in (0, 1)
    shift = getattr(scheduler.config, "shift", None) or getattr(scheduler.config, "flow_shift", None)
    if hasattr(scheduler, "min_snr_weight") and not getattr(scheduler.config, "use_flow_sigmas", False):
        return (u * n_train).long().clamp(max=n_train - 1).to(device)
    s = shift * u / (1 + (shift - 1) * u) if shift else u
    return (s * n_train).to(device)


def lowres_error(pred: torch.Tensor, target: torch.Tensor, sizes: tuple[int, ...]) -> torch.Tensor:
    """(B, C, h, w) prediction and target -> (B,) sum over `sizes` of the MSE of both average-pooled to size x size."""
    err = pred - target  # (B, C, h, w); pooling is linear, so pool the error once per size
    return sum(F.adaptive_avg_pool2d(err, s).square().mean(dim=(1, 2, 3)) for s in sizes)


def edge_error(err: torch.Tensor) -> torch.Tensor:
    """(B, C, h, w) error -> (B,) mean squared difference of the error between horizontal plus vertical
    neighbours (the squared error of the image gradient: pred and target compared edge by edge)."""
    dx = err[..., :, 1:] - err[..., :, :-1]  # (B, C, h, w-1)
    dy = err[..., 1:, :] - err[..., :-1, :]  # (B, C, h-1, w)
    return dx.square().mean(dim=(1, 2, 3)) + dy.square().mean(dim=(1, 2, 3))


def object_mask(pixels: torch.Tensor, white: float = 0.9) -> torch.Tensor:
    """(B, 3, H, W) images in [-1, 1] -> (B, 1, H, W) 1.0 where any channel is below `white` (not background)."""
    return (pixels < white).any(dim=1, keepdim=True).float()


def _unwrap(model: nn.Module) -> nn.Module:
    return getattr(model, "module", model)  # DDP / FSDP wrappers keep the model in .module


class DiffusionTask(Task):
    """Samples are {"image": (3, H, W) in [-1, 1], "text": str}."""

    name = "diffusion"
    metric_for_best = "loss"

    def __init__(self, tokenize: Tokenize, scheduler_config: dict, text_dropout: float = 0.1, seed: int = 0,
                 grad_accum: int = 1, sample_prompts: list[str] | None = None, sample_dir: str | Path | None = None,
                 tokenizer=None, sample_steps: int = 20, guidance_scale: float = 4.0, snr_gamma: float | None = None,
                 timesteps: str = "uniform", timestep_mean: float | tuple[float, ...] = 0.0,
                 lowres_weight: float = 0.0,
                 lowres_sizes: tuple[int, ...] = (1, 2, 4, 8), lowres_x0: bool = False, object_weight: float = 0.0,
                 edge_weight: float = 0.0, repa_weight: float = 0.0, repa_depth: int = 2,
                 repa_encoder: RepaEncoder | None = None,
                 repa_center: bool = False, shape_weight: float = 0.0,
                 shape_segmenter: ShapeSegmenter | None = None, shape_max_sigma: float = 1.0,
                 twin_weight: float = 0.0, twin_input: str = "own", twin_min_sigma: float = 0.0):
        if not 0.0 <= text_dropout < 1.0:
            raise ValueError(f"text_dropout must be in [0, 1), got {text_dropout}")
        self._set_loss_shape(timesteps, timestep_mean, lowres_weight, lowres_sizes, lowres_x0, object_weight,
                             edge_weight)
        self._set_repa(repa_weight, repa_depth, repa_encoder, repa_center)
        self._set_shape_terms(shape_weight, shape_segmenter, shape_max_sigma, twin_weight, twin_input, twin_min_sigma)
        self.tokenize, self.text_dropout = tokenize, text_dropout
        self.scheduler = make_scheduler(scheduler_config, source="the model's scheduler config")
        self.rng = random.Random(seed)
        self.grad_accum, self._calls = grad_accum, 0
        self.sample_prompts, self.sample_dir, self.tokenizer = sample_prompts or [], sample_dir, tokenizer
        self.sample_steps, self.guidance_scale = sample_steps, guidance_scale
        if lowres_x0 and hasattr(self.scheduler, "min_snr_weight"):
            raise ValueError("lowres_x0 (the pooled error in x0 units) needs flow matching (x0 error = sigma x "
                             "velocity error)")
        if snr_gamma is not None and not hasattr(self.scheduler, "min_snr_weight"):
            raise ValueError("snr_gamma (min-SNR loss weighting) needs a noise-prediction objective, not flow matching")
        self.snr_gamma = snr_gamma
        if shape_weight and (hasattr(self.scheduler, "min_snr_weight") or getattr(self.scheduler.config, "shift", 1.0)
                             not in (None, 1.0)):
            raise ValueError("shape_weight needs flow matching with shift 1 (x0 estimate = x_t - sigma x velocity)")

    def _set_loss_shape(self, timesteps, timestep_mean, lowres_weight, lowres_sizes, lowres_x0, object_weight,
                        edge_weight) -> None:
        """The noise-level sampler and the pixel loss's extra weightings, checked."""
        if timesteps not in TIMESTEP_SAMPLERS:
            raise ValueError(f"timesteps must be one of {TIMESTEP_SAMPLERS}, got {timesteps!r}")
        if isinstance(timestep_mean, (tuple, list)):
            if not timestep_mean:
                raise ValueError("timestep_mean: an empty tuple of mixture means")
            timestep_mean = tuple(float(m) for m in timestep_mean)
            if len(timestep_mean) == 1:
                timestep_mean = timestep_mean[0]
        if timestep_mean and timesteps != "logit_normal":
            raise ValueError(f"timestep_mean {timestep_mean} needs timesteps='logit_normal', got {timesteps!r}")
        if lowres_weight < 0 or (lowres_weight and (not lowres_sizes or min(lowres_sizes) < 1)):
            raise ValueError(f"lowres_weight must be >= 0 with pooled sizes >= 1, got {lowres_weight}, {lowres_sizes}")
        if object_weight < 0:
            raise ValueError(f"object_weight must be >= 0, got {object_weight}")
        if edge_weight < 0:
            raise ValueError(f"edge_weight must be >= 0, got {edge_weight}")
        self.timesteps, self.timestep_mean, self.object_weight = timesteps, timestep_mean, object_weight
        self.lowres_weight, self.lowres_sizes, self.lowres_x0 = lowres_weight, tuple(lowres_sizes), lowres_x0
        self.edge_weight = edge_weight

    def _set_repa(self, repa_weight, repa_depth, repa_encoder, repa_center) -> None:
        """The representation-alignment term's settings, checked."""
        if repa_weight < 0:
            raise ValueError(f"repa_weight must be >= 0, got {repa_weight}")
        if repa_weight and repa_encoder is None:
            raise ValueError("repa_weight > 0 needs a repa_encoder (a frozen image tower with a spatial feature map)")
        if repa_depth < 1:
            raise ValueError(f"repa_depth must be >= 1 (the aligned block, counted from 1), got {repa_depth}")
        self.repa_weight, self.repa_depth, self.repa_encoder = repa_weight, repa_depth, repa_encoder
        self.repa_center = repa_center

    def _set_shape_terms(self, shape_weight, shape_segmenter, shape_max_sigma, twin_weight, twin_input,
                         twin_min_sigma) -> None:
        """The shape loss's and the shape twins' settings, checked."""
        if shape_weight < 0:
            raise ValueError(f"shape_weight must be >= 0, got {shape_weight}")
        if shape_weight and shape_segmenter is None:
            raise ValueError("shape_weight > 0 needs a shape_segmenter (tasks/shape_seg.py)")
        if not 0.0 < shape_max_sigma <= 1.0:
            raise ValueError(f"shape_max_sigma must be in (0, 1], got {shape_max_sigma}")
        self.shape_weight, self.shape_segmenter, self.shape_max_sigma = shape_weight, shape_segmenter, shape_max_sigma
        if twin_weight < 0:
            raise ValueError(f"twin_weight must be >= 0, got {twin_weight}")
        if twin_input not in ("own", "same"):
            raise ValueError(f"twin_input must be 'own' or 'same', got {twin_input!r}")
        if not 0.0 <= twin_min_sigma < 1.0:
            raise ValueError(f"twin_min_sigma must be in [0, 1), got {twin_min_sigma}")
        self.twin_weight, self.twin_input, self.twin_min_sigma = twin_weight, twin_input, twin_min_sigma

    def collate(self, samples: list[dict]) -> dict:
        samples = [s for s in samples if s is not None]
        if not samples:
            raise ValueError("a batch has no loadable samples")
        keep = [self.rng.random() >= self.text_dropout for _ in samples]
        texts = [s["text"] if k else "" for s, k in zip(samples, keep)]
        images = [s["image"] for s in samples]
        twins = "twin_image" in samples[0]
        if twins:  # the twins follow their originals: rows B..2B-1 are rows 0..B-1's twins, captions dropped alike
            texts += [s["twin_text"] if k else "" for s, k in zip(samples, keep)]
            images += [s["twin_image"] for s in samples]
        ids, mask = self.tokenize(texts)
        batch = {"pixel_values": torch.stack(images), "input_ids": ids, "attention_mask": mask}
        if twins:
            batch["twin_keep"] = torch.tensor(keep, dtype=torch.float32)  # (B,) 0 where the captions were dropped
        return batch

    def _loss(self, model: nn.Module, batch: dict, generator: torch.Generator | None = None, repa: bool = False):
        """The diffusion loss; `repa` (training steps with repa_weight > 0): (loss, alignment) with the weighted
        REPA term added to the loss."""
        core = _unwrap(model)
        x0 = core.to_latents(batch["pixel_values"], generator)  # (B, C, h, w)
        states, mask = core.encode_text(batch["input_ids"], batch["attention_mask"])  # (B, L, D)
        pairs = "twin_keep" in batch  # rows B.. are the twins of rows ..B: the same noise level and noise
        B = x0.shape[0] // 2 if pairs else x0.shape[0]
        if self.timesteps == "logit_normal":
            t = logit_normal_timesteps(self.scheduler, B, generator, x0.device, self.timestep_mean)  # (B,)
        else:
            t = self.scheduler.sample_training_timesteps(B, generator, x0.device)  # (B,)
        shape = (B, *x0.shape[1:])
        noise = torch.randn(shape, generator=generator, dtype=x0.dtype).to(x0.device) if generator is not None \
            else torch.randn(shape, dtype=x0.dtype, device=x0.device)
        if pairs:
            t, noise = torch.cat([t, t]), torch.cat([noise, noise])  # (2B,), (2B, C, h, w)
        x_t = self.scheduler.q_sample(x0, noise, t)
        if pairs and self.twin_input == "same" and self.twin_weight:
            x_t = torch.cat([x_t[:B], x_t[:B]])  # the twins read the originals' noisy images: only the caption differs
        if repa:
            if core.repa_head is None:
                raise ValueError("repa_weight > 0 needs the model's REPA head (TextToImage.add_repa_head)")
            with block_output(core.denoiser, self.repa_depth) as hidden:
                loss = self._diffusion_loss(model, core, batch, x0, noise, t, x_t, states, mask)
            tokens = hidden[0]  # (B, N, D) block repa_depth's output
            target = self.repa_encoder(batch["pixel_values"], math.isqrt(tokens.shape[1]))  # (B, N, C), no grad
            if self.repa_center:  # the deviation from the batch's mean feature (post-ReLU maps share a direction)
                target = target - target.mean(dim=(0, 1), keepdim=True)
            align = repa_loss(tokens, core.repa_head, target)
            return loss + self.repa_weight * align, align.detach()
        return self._diffusion_loss(model, core, batch, x0, noise, t, x_t, states, mask)

    def _diffusion_loss(self, model, core, batch, x0, noise, t, x_t, states, mask) -> torch.Tensor:
        pred = model(x_t, t, states, mask)  # (B, C, h, w)
        target = self.scheduler.training_target(x0, noise, t)
        shape = bool(self.shape_weight) and core.training  # a training-only term: validation stays the diffusion loss
        twin = bool(self.twin_weight) and "twin_keep" in batch
        plain = not (self.lowres_weight or self.object_weight or self.edge_weight or shape or twin)
        if self.snr_gamma is None and plain:
            return F.mse_loss(pred.float(), target.float())
        sq = (pred.float() - target.float()).square()  # (B, C, h, w)
        if self.object_weight:
            if getattr(core, "vae", None) is not None:
                raise ValueError("object_weight needs a pixel-space model (the object mask is read from the pixels)")
            sq = sq * (1 + self.object_weight * object_mask(batch["pixel_values"]))  # (B, 1, H, W) broadcast
        per_sample = sq.mean(dim=(1, 2, 3))  # (B,)
        if self.lowres_weight:
            low = lowres_error(pred.float(), target.float(), self.lowres_sizes)  # (B,)
            if self.lowres_x0:  # rectified flow: x0 error = sigma * velocity error
                low = low * (t.float() / self.scheduler.config.num_train_timesteps).square()
            per_sample = per_sample + self.lowres_weight * low
        if self.edge_weight:
            per_sample = per_sample + self.edge_weight * edge_error(pred.float() - target.float())  # (B,)
        if shape:
            per_sample = per_sample + self.shape_weight * self._shape_term(core, pred, x0, x_t, t)  # (B,)
        if twin and self.twin_input == "same":
            keep = batch["twin_keep"].to(pred.device)  # (B,)
            sigma = t[:len(keep)].float() / self.scheduler.config.num_train_timesteps  # (B,)
            keep = keep * (sigma >= self.twin_min_sigma).float()
            d_est = sigma.view(-1, 1, 1, 1) * (pred[:len(keep)].float() - pred[len(keep):].float())  # x0_twin - x0 est.
            d_true = x0[len(keep):].float() - x0[:len(keep)].float()  # (B, C, h, w)
            term = (d_est - d_true).square().mean(dim=(1, 2, 3)) * keep  # (B,)
            per_sample = torch.cat([2 * per_sample[:len(keep)], 2 * self.twin_weight * term])  # (2B,): mean = A + w T
        elif twin:
            per_sample = per_sample + self.twin_weight * self._twin_term(pred, target, batch["twin_keep"])  # (2B,)
        if self.snr_gamma is None:
            return per_sample.mean()
        return (per_sample * self.scheduler.min_snr_weight(t, self.snr_gamma)).mean()

    @staticmethod
    def _twin_term(pred, target, keep) -> torch.Tensor:
        """(2B,) the squared error of each pair's prediction difference against its target difference (mean over
        pixels), 0 for pairs whose captions were dropped; counted on both rows of a pair at half weight."""
        B = keep.shape[0]
        err = pred.float() - target.float()  # (2B, C, h, w)
        diff = (err[:B] - err[B:]).square().mean(dim=(1, 2, 3)) * keep.to(err.device)  # (B,)
        return torch.cat([diff, diff]) / 2  # (2B,): the mean over 2B rows is the mean over the B pairs / 2

    def _shape_term(self, core, pred, x0, x_t, t) -> torch.Tensor:
        """(B,) the shape segmenter's loss on the x0 estimate, 0 for samples above shape_max_sigma."""
        if getattr(core, "vae", None) is not None:
            raise ValueError("shape_weight needs a pixel-space model (the segmenter reads pixels)")
        sigma = t.float() / self.scheduler.config.num_train_timesteps  # (B,)
        keep = sigma <= self.shape_max_sigma  # (B,)
        term = torch.zeros_like(sigma)
        if keep.any():
            s = sigma[keep].view(-1, 1, 1, 1)
            x0_hat = x_t[keep].float() - s * pred[keep].float()  # (b, C, h, w) rectified flow: x_t = x0 + s v
            self.shape_segmenter.to(x0.device)
            term[keep] = shape_seg_loss(self.shape_segmenter, x0_hat, x0[keep])
        self._shape_ce = float(term[keep].detach().mean()) if keep.any() else 0.0  # logged by `loss`
        return term

    def loss(self, model: nn.Module, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        core = _unwrap(model)
        if core.training and self._calls % self.grad_accum == 0:
            core.update_ema()  # once per optimizer step, with the weights of the step before
        if core.training:
            self._calls += 1
        if self.repa_weight and core.training:
            loss, align = self._loss(model, batch, repa=True)
            return loss, {"repa_cos": -float(align)}
        loss = self._loss(model, batch)
        return loss, ({"shape_ce": self._shape_ce} if self.shape_weight and core.training else {})

    @torch.no_grad()
    def evaluate(self, model: nn.Module, batches: Iterable[dict]) -> dict[str, float]:
        """Validation loss with seeded timesteps and noise (comparable across evaluations), and a sample grid."""
        g = torch.Generator().manual_seed(0)
        losses = [float(self._loss(model, b, g)) for b in batches]
        if not losses:
            raise ValueError("evaluation got no batches: the validation set is empty")
        if self.sample_prompts and self.sample_dir is not None and self.tokenizer is not None:
            self.sample_grid(_unwrap(model))
        return {"loss": sum(losses) / len(losses)}

    def sample_grid(self, model: nn.Module) -> Path:
        """Save `samples/step-N.png`: four images (seed 0, EMA weights) per fixed prompt, one row each."""
        step = int(getattr(model, "ema_updates", torch.tensor(self._calls // self.grad_accum)))
        images = generate_images(model, self.tokenizer, self.sample_prompts, n=4, steps=self.sample_steps,
                                 guidance_scale=self.guidance_scale, seed=0, progress=False)
        folder = Path(self.sample_dir)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"step-{step:07d}.png"
        image_grid(images, cols=4).save(path)
        return path
