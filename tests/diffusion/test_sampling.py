"""A diffusers pipeline folder through `lingvis.load`: the same images as the diffusers pipeline (same
initial latents or the same seed), for several schedulers, with guidance and negative prompts."""
import pytest
import torch

import lingvis
from lingvis.diffusion.sampling import generate_images, image_grid, prompt_tokens

diffusers = pytest.importorskip("diffusers")
transformers = pytest.importorskip("transformers")

PROMPTS = ["a small red circle above a large blue square", "two green stars"]


@pytest.fixture(scope="module")
def pair(tiny_sd_dir):
    pipe = diffusers.StableDiffusionPipeline.from_pretrained(tiny_sd_dir).to("cpu")
    pipe.set_progress_bar_config(disable=True)
    return pipe, lingvis.load(tiny_sd_dir), lingvis.load_tokenizer(tiny_sd_dir)


def test_loads_every_component(pair):
    pipe, model, tok = pair
    assert model.family == "text_to_image" and model.vae is not None and model.config.lock_text
    assert model.latent_channels == 4 and model.downscale == 2 and model.text_length == 77
    ids, mask = prompt_tokens(tok, PROMPTS, 77)
    want = pipe.tokenizer(PROMPTS, padding="max_length", max_length=77, truncation=True, return_tensors="pt")
    assert torch.equal(ids, want.input_ids)
    with torch.no_grad():
        states, _ = model.encode_text(ids, mask)
        assert (states - pipe.text_encoder(ids)[0]).abs().max() <= 1e-4


@pytest.mark.parametrize("scheduler", [None, "DPMSolverMultistepScheduler", "EulerDiscreteScheduler"])
def test_same_images_as_diffusers(pair, scheduler):
    pipe, model, tok = pair
    if scheduler is not None:
        pipe = diffusers.StableDiffusionPipeline(**{**pipe.components, "scheduler": getattr(
            diffusers, scheduler).from_config(pipe.scheduler.config)})
        pipe.set_progress_bar_config(disable=True)
    latents = torch.randn(4, 4, 12, 12, generator=torch.Generator().manual_seed(7))
    kw = dict(num_inference_steps=6, guidance_scale=5.0, num_images_per_prompt=2, height=24, width=24)
    want = pipe(PROMPTS, negative_prompt=["blue", "a circle"], latents=latents.clone(), output_type="pt", **kw).images
    got = generate_images(model, tok, PROMPTS, negative_prompt=["blue", "a circle"], n=2, steps=6, guidance_scale=5.0,
                          height=24, width=24, latents=latents, scheduler=scheduler, output="pt", progress=False)
    assert got.shape == want.shape == (4, 3, 24, 24)
    assert (got - want).abs().max() <= 1e-3


def test_seed_draws_the_same_noise_and_is_reproducible(pair):
    pipe, model, tok = pair
    want = pipe(PROMPTS[:1], num_inference_steps=4, guidance_scale=1.0, height=16, width=16, output_type="pt",
                generator=torch.Generator().manual_seed(3)).images
    kw = dict(steps=4, guidance_scale=1.0, height=16, width=16, output="pt", progress=False)
    got = generate_images(model, tok, PROMPTS[:1], seed=3, **kw)
    assert (got - want).abs().max() <= 1e-3
    assert torch.equal(got, generate_images(model, tok, PROMPTS[:1], seed=3, **kw))
    assert not torch.equal(got, generate_images(model, tok, PROMPTS[:1], seed=4, **kw))


def test_guidance_and_negative_prompt_change_the_image(pair):
    _, model, tok = pair
    kw = dict(steps=3, height=16, width=16, output="pt", progress=False, seed=0)
    plain = generate_images(model, tok, PROMPTS[0], guidance_scale=1.0, **kw)
    guided = generate_images(model, tok, PROMPTS[0], guidance_scale=6.0, **kw)
    negative = generate_images(model, tok, PROMPTS[0], guidance_scale=6.0, negative_prompt="red", **kw)
    assert (plain - guided).abs().max() > 1e-3 and (guided - negative).abs().max() > 1e-3


def test_guidance_interval_guides_only_the_low_noise_steps(pair):
    _, model, tok = pair
    kw = dict(steps=4, height=16, width=16, output="pt", progress=False, seed=0)
    plain = generate_images(model, tok, PROMPTS, guidance_scale=1.0, **kw)
    guided = generate_images(model, tok, PROMPTS, guidance_scale=6.0, **kw)
    torch.testing.assert_close(generate_images(model, tok, PROMPTS, guidance_scale=6.0, guidance_below=1.0, **kw),
                               guided)
    torch.testing.assert_close(generate_images(model, tok, PROMPTS, guidance_scale=6.0, guidance_below=0.0, **kw),
                               plain, atol=1e-5, rtol=0)  # no step at t <= 0: no guidance at all
    half = generate_images(model, tok, PROMPTS, guidance_scale=6.0, guidance_below=0.5, **kw)  # the last two steps
    assert (half - plain).abs().max() > 1e-3 and (half - guided).abs().max() > 1e-3


@pytest.mark.parametrize("kw,match", [
    (dict(prompts=""), "prompt"), (dict(steps=0), "steps"), (dict(n=0), "n:"), (dict(height=15), "size"),
    (dict(guidance_scale=-1.0), "guidance_scale"), (dict(negative_prompt=["a", "b"]), "negative_prompt"),
    (dict(scheduler="plms"), "unknown scheduler"), (dict(guidance_below=1.5), "guidance_below"),
])
def test_bad_requests_name_the_field(pair, kw, match):
    _, model, tok = pair
    args = dict(prompts="a red circle", steps=2, progress=False)
    args.update(kw)
    with pytest.raises(ValueError, match=match):
        generate_images(model, tok, args.pop("prompts"), **args)


def test_grid_and_pil_output(pair):
    _, model, tok = pair
    images = generate_images(model, tok, PROMPTS, n=2, steps=2, height=16, width=16, seed=0, progress=False)
    assert len(images) == 4 and images[0].size == (16, 16) and images[0].mode == "RGB"
    grid = image_grid(images, cols=2, pad=1)
    assert grid.size == (33, 33)


def test_clip_bpe_tokenizer_matches_transformers(clip_tokenizer_dir):
    from lingvis.tokenizers.clip_bpe import load_clip_bpe

    ours = load_clip_bpe(clip_tokenizer_dir)
    ref = transformers.CLIPTokenizer.from_pretrained(clip_tokenizer_dir)
    for text in ["A small  RED circle, above 2 stars!", "purple triangle's   background", "zebra xylophone"]:
        assert ours.encode(text, add_special_tokens=True) == ref(text).input_ids
    assert ours.bos_id == ref.bos_token_id and ours.eos_id == ref.eos_token_id and ours.model_max_length == 77


def test_progress_bar_counts_the_sampling_steps(capsys):
    from lingvis.recipes.clip_data import train_word_tokenizer

    tok = train_word_tokenizer(["a red circle"])
    torch.manual_seed(0)
    model = lingvis.build("t2i-nano", text=dict(vocab_size=tok.vocab_size, context_length=8, dim=32, depth=1, heads=4,
                                                 mlp_hidden=64)).eval()
    generate_images(model, tok, "a red circle", steps=3, guidance_scale=2.0, seed=0, progress=True)
    err = capsys.readouterr().err  # not a terminal: whole log lines, the last one at 3 of 3 steps
    assert "sampling" in err and "3/3" in err and "\r" not in err
    generate_images(model, tok, "a red circle", steps=3, guidance_scale=2.0, seed=0, progress=False)
    assert "sampling" not in capsys.readouterr().err
