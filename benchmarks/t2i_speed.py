"""Text-to-image sampling speed: lingvis vs the diffusers `StableDiffusionPipeline` holding the same random
weights (saved by diffusers, loaded by `lingvis.load`), same UNet config, scheduler, step count, guidance and
initial latents, CPU fp32; images compared first (max abs diff).

Configs: `shapes` (the t2i-shapes UNet: 32px pixel space, 32/64/128 wide, 4 images; diffusers samples it
with `vae=None, output_type="latent"`) and `sd-small` (a Stable-Diffusion-shaped latent model: UNet
64/128/256 with two layers per level and 8 heads over 32x32x4 latents, an AutoencoderKL decoding them to
64px, a 4-layer CLIP text encoder, 2 images). Guidance 4 (both halves in one batch on both sides).
Both wall and process CPU time are measured (calls interleaved, median); on a shared machine the CPU-time
ratio is the steadier one.

Where lingvis saves time: with guidance, the UNet runs its text-independent start (stem, first blocks, first
self-attention) once per image instead of once per prompt row; in inference the feature maps stay
channels-last through the whole UNet (oneDNN convolutions without layout reorders, 1x1 convolutions as GEMMs on
the free (B, H*W, C) view); 3x3 convolution weights packed once in oneDNN's blocked layout, with the ResBlock's
residual add fused into conv2 (nn/packed_conv.py); each nearest-x2 upsample + 3x3 convolution as one 2x2
convolution on the small map (nn/upsample_conv.py, about half the work); the ResBlocks' time projections as one
product; fused q/k/v projections; the GEGLU gate, activations and residual adds in place. The convolutions,
attention (SDPA) and GEMMs are the same oneDNN/MKL kernels on both sides; attention was SDPA's flash kernel
on both sides (35-40% of the sd-small time: 8 heads of width 8 over 1024 pixels) and is now lingvis' native
kernel (native/attention.c) where it measures faster.
Measured 2026-12-07 (shared 2-core machine, other jobs running, load 2-3; 1 thread, 25 steps), CPU-time
ratios: shapes DPM-Solver++ 1.24x, sd-small 1.14x, shapes Euler 1.21x (main before this work: 1.13, 1.11,
1.10x); images equal to 2.1e-5. docs/text_to_image.md (Speed) has the table.

`mkl` (printed as `mkl_cpu_s`, `gemm_choice_gain_cpu`) is lingvis with every linear on MKL (`LINGVIS_GEMM=mkl`)
instead of the per-shape measured MKL / oneDNN choice (nn/gemm_select.py), and `sdpa` (`sdpa_cpu_s`,
`native_attention_gain_cpu`) lingvis with torch's SDPA for every attention (`LINGVIS_ATTENTION=sdpa`) instead of
the native kernel where it measures faster (nn/fast_attention.py), timed in the same interleaved run.

    python -m benchmarks.t2i_speed [--quick] [--threads N]
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import torch

from ._probes import env_set
from ._timing import row

CONFIGS = {
    "shapes": dict(unet=dict(block_out_channels=(32, 64, 128), layers_per_block=1, sample_size=32, in_channels=3,
                             out_channels=3, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D",
                                                               "CrossAttnDownBlock2D"),
                             up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
                             cross_attention_dim=128, norm_num_groups=8, attention_head_dim=4),
                   vae=None, text=dict(hidden_size=128, num_hidden_layers=2, num_attention_heads=4,
                                       intermediate_size=512, max_position_embeddings=24), batch=4, size=32),
    "sd-small": dict(unet=dict(block_out_channels=(64, 128, 256), layers_per_block=2, sample_size=32, in_channels=4,
                               out_channels=4, down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D",
                                                                 "DownBlock2D"),
                               up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
                               cross_attention_dim=256, norm_num_groups=32, attention_head_dim=8),
                     vae=dict(block_out_channels=[32, 64], down_block_types=["DownEncoderBlock2D"] * 2,
                              up_block_types=["UpDecoderBlock2D"] * 2, latent_channels=4, norm_num_groups=16),
                     text=dict(hidden_size=256, num_hidden_layers=4, num_attention_heads=4, intermediate_size=1024,
                               max_position_embeddings=77), batch=2, size=64),
}
PROMPTS = ["a small red circle above a large blue square", "two green stars and an orange cross"]


def _tokenizer_dir(tmp: str, length: int) -> str:
    """A CLIP BPE tokenizer (vocab.json + merges.txt) trained on a few words, offline."""
    from pathlib import Path

    from lingvis.tokenizers.clip_bpe import train_clip_bpe

    return str(train_clip_bpe(PROMPTS * 3, 400, Path(tmp) / "tok", model_max_length=length))


def build(name: str, tmp: str, scheduler: str):
    import diffusers
    import transformers

    import lingvis

    c = CONFIGS[name]
    torch.manual_seed(0)
    tok = transformers.CLIPTokenizer.from_pretrained(_tokenizer_dir(tmp, c["text"]["max_position_embeddings"]))
    text = transformers.CLIPTextModel(transformers.CLIPTextConfig(vocab_size=len(tok), bos_token_id=tok.bos_token_id,
                                                                   eos_token_id=tok.eos_token_id,
                                                                   pad_token_id=tok.pad_token_id, **c["text"]))
    sched = getattr(diffusers, scheduler)(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)
    vae = diffusers.AutoencoderKL(**c["vae"]) if c["vae"] else None
    pipe = diffusers.StableDiffusionPipeline(unet=diffusers.UNet2DConditionModel(**c["unet"]), vae=vae,
                                             text_encoder=text, tokenizer=tok, scheduler=sched, safety_checker=None,
                                             feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(f"{tmp}/{name}")
    pipe = diffusers.StableDiffusionPipeline.from_pretrained(f"{tmp}/{name}", **({} if vae else {"vae": None}))
    pipe.set_progress_bar_config(disable=True)
    return pipe, lingvis.load(f"{tmp}/{name}"), lingvis.load_tokenizer(f"{tmp}/{name}")


def bench(name: str, scheduler: str, steps: int, repeats: int) -> dict:
    from lingvis.diffusion.sampling import generate_images

    c = CONFIGS[name]
    with tempfile.TemporaryDirectory() as tmp:
        pipe, model, tok = build(name, tmp, scheduler)
        latent = c["size"] // model.downscale
        prompts = PROMPTS[:c["batch"]] if c["batch"] <= 2 else PROMPTS * (c["batch"] // 2)
        latents = torch.randn(len(prompts), model.latent_channels, latent, latent,
                              generator=torch.Generator().manual_seed(0))
        kw = dict(height=c["size"], width=c["size"]) if c["vae"] else {}

        def run_ref():
            out = pipe(prompts, num_inference_steps=steps, guidance_scale=4.0, latents=latents.clone(),
                       output_type="pt" if c["vae"] else "latent", **kw).images
            return out if c["vae"] else (out / 2 + 0.5).clamp(0, 1)

        def run_ours():
            return generate_images(model, tok, prompts, steps=steps, guidance_scale=4.0, latents=latents,
                                   height=c["size"], width=c["size"], output="pt", progress=False)

        def run_mkl():  # every linear on MKL (LINGVIS_GEMM=mkl): the gain of the per-shape kernel choice
            with env_set("LINGVIS_GEMM", "mkl"):
                return run_ours()

        def run_sdpa():  # torch's SDPA for every attention (LINGVIS_ATTENTION=sdpa): the native kernel's gain
            with env_set("LINGVIS_ATTENTION", "sdpa"):
                return run_ours()

        diff = float((run_ref() - run_ours()).abs().max())
        fns = {"ours": run_ours, "ref": run_ref, "mkl": run_mkl, "sdpa": run_sdpa}
        wall = {k: [] for k in fns}
        cpu = {k: [] for k in fns}
        for _ in range(repeats):
            for k, fn in fns.items():
                w, t = time.perf_counter(), time.process_time()
                fn()
                cpu[k].append(time.process_time() - t)
                wall[k].append(time.perf_counter() - w)
    med = {k: (statistics.median(wall[k]), statistics.median(cpu[k])) for k in fns}
    n_img = len(prompts)
    r = row(f"t2i {name} {scheduler} {steps} steps, {n_img} images", n_img / med["ours"][0], n_img / med["ref"][0],
            "images/s")
    r.update(cpu_ratio=round(med["ref"][1] / med["ours"][1], 3), max_abs_diff=diff, threads=torch.get_num_threads(),
             cpu_s=(round(med["ours"][1], 2), round(med["ref"][1], 2)), load=round(os.getloadavg()[0], 2),
             mkl_cpu_s=round(med["mkl"][1], 2), cpu_ratio_mkl=round(med["ref"][1] / med["mkl"][1], 3),
             gemm_choice_gain_cpu=round(med["mkl"][1] / med["ours"][1], 3), sdpa_cpu_s=round(med["sdpa"][1], 2),
             native_attention_gain_cpu=round(med["sdpa"][1] / med["ours"][1], 3))
    return r


def run(quick: bool = False) -> list[dict]:
    steps, repeats = (10, 2) if quick else (25, 3)
    rows = [bench("shapes", "DPMSolverMultistepScheduler", steps, repeats),
            bench("sd-small", "DPMSolverMultistepScheduler", steps, repeats)]
    if not quick:
        rows.append(bench("shapes", "EulerDiscreteScheduler", steps, repeats))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="10 steps, 2 repeats")
    ap.add_argument("--threads", type=int, help="torch intra-op threads")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    for r in run(args.quick):
        print(f"{r['benchmark']}: lingvis {r['lingvis']} vs diffusers {r['reference']} images/s -> wall ratio "
              f"{r['ratio']:.2f}x, CPU-time ratio {r['cpu_ratio']:.2f}x (CPU s per run {r['cpu_s'][0]} vs "
              f"{r['cpu_s'][1]}), max abs image diff {r['max_abs_diff']:.2e}; {r['threads']} threads, load {r['load']}"
              f"; all-MKL lingvis {r['mkl_cpu_s']} CPU s (ratio {r['cpu_ratio_mkl']:.2f}x, gain of the kernel choice "
              f"{r['gemm_choice_gain_cpu']:.2f}x); all-SDPA lingvis {r['sdpa_cpu_s']} CPU s (gain of the native "
              f"attention {r['native_attention_gain_cpu']:.2f}x)")


if __name__ == "__main__":
    main()
