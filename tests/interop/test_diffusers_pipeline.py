"""A lingvis text-to-image model exported as a diffusers folder: `DiffusionPipeline.from_pretrained` loads it
and samples the same images; the folder loads back into lingvis."""
import json

import pytest
import torch

import lingvis
from lingvis.diffusion.sampling import generate_images
from lingvis.models import registry
from lingvis.recipes.clip_data import train_word_tokenizer

diffusers = pytest.importorskip("diffusers")
pytest.importorskip("transformers")

CAPTIONS = ["a small red circle above a large blue square", "two shapes: a green star and an orange cross",
            "a purple triangle in the top left corner"]
TINY_TEXT = dict(vocab_size=64, context_length=16, dim=32, depth=2, heads=4, mlp_hidden=48)
TINY_UNET = dict(block_out_channels=[16, 32], down_attention=[False, True], layers_per_block=1, attention_heads=2,
                 cross_attention_dim=32, norm_num_groups=8)


def _model(latent: bool, prediction="v_prediction"):
    torch.manual_seed(0)
    fields = dict(text=TINY_TEXT, lock_text=False, ema=True,
                  scheduler={"_class_name": "DDIMScheduler", "prediction_type": prediction, "clip_sample": False,
                             "timestep_spacing": "trailing"},
                  denoiser=dict(TINY_UNET, in_channels=4 if latent else 3, out_channels=4 if latent else 3,
                                sample_size=8))
    if latent:
        fields["vae"] = dict(block_out_channels=[8, 16], layers_per_block=1, norm_num_groups=4, scaling_factor=0.7)
    model = registry.build("text_to_image", **fields)
    with torch.no_grad():
        g = torch.Generator().manual_seed(1)
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.05)
        model.update_ema(decay=0.5)  # the export writes the EMA weights, which now differ from the raw ones
        for p in model.denoiser.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.05)
    return model.eval()


@pytest.mark.parametrize("latent", [False, True], ids=["pixel", "latent"])
def test_export_samples_in_diffusers(tmp_path, latent):
    model, tok = _model(latent), train_word_tokenizer(CAPTIONS)
    lingvis.save(model, tmp_path / "pipe", tokenizer=tok, format="hf")
    index = json.loads((tmp_path / "pipe" / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusionPipeline" and (index["vae"][0] is None) != latent
    # diffusers requires a pixel-space pipeline to say `vae=None` (it is not one of the optional components)
    pipe = diffusers.DiffusionPipeline.from_pretrained(tmp_path / "pipe", **({} if latent else {"vae": None}))
    pipe.set_progress_bar_config(disable=True)
    size = 16 if latent else 8
    latents = torch.randn(2, 4 if latent else 3, 8, 8, generator=torch.Generator().manual_seed(0))
    out = pipe(CAPTIONS[:2], negative_prompt=["", "red"], num_inference_steps=5, guidance_scale=3.0, latents=latents,
               output_type="pt" if latent else "latent", height=size if latent else None,
               width=size if latent else None).images
    want = out if latent else (out / 2 + 0.5).clamp(0, 1)
    got = generate_images(model, tok, CAPTIONS[:2], negative_prompt=["", "red"], steps=5, guidance_scale=3.0,
                          latents=latents, output="pt", progress=False, height=size, width=size)
    assert (got - want).abs().max() <= 1e-3
    back = lingvis.load(tmp_path / "pipe")
    back_tok = lingvis.load_tokenizer(tmp_path / "pipe")
    again = generate_images(back, back_tok, CAPTIONS[:2], negative_prompt=["", "red"], steps=5, guidance_scale=3.0,
                            latents=latents, output="pt", progress=False, height=size, width=size)
    assert (again - got).abs().max() <= 1e-5


def test_save_without_tokenizer_stays_native(tmp_path):
    model = _model(False)
    lingvis.save(model, tmp_path / "m")
    assert (tmp_path / "m" / "lingvis.json").is_file() and not (tmp_path / "m" / "model_index.json").exists()
    back = lingvis.load(tmp_path / "m")
    assert int(back.ema_updates) == 1
    for a, b in zip(back.ema.parameters(), model.ema.parameters()):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="no Hugging Face counterpart"):
        lingvis.save(model, tmp_path / "h", format="hf")


def test_broken_pipeline_folders_are_named(tmp_path):
    model, tok = _model(False), train_word_tokenizer(CAPTIONS)
    lingvis.save(model, tmp_path / "p", tokenizer=tok)
    (tmp_path / "p" / "unet" / "diffusion_pytorch_model.safetensors").unlink()
    with pytest.raises(lingvis.io.CheckpointError, match="diffusion_pytorch_model.safetensors"):
        lingvis.load(tmp_path / "p")
    (tmp_path / "p" / "model_index.json").write_text(json.dumps({"_class_name": "KandinskyPipeline"}))
    with pytest.raises(lingvis.io.CheckpointError, match="KandinskyPipeline"):
        lingvis.load(tmp_path / "p")
