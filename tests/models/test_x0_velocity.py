"""x0 prediction for flow-matching text-to-image models: the denoiser's clean-image output is turned into the
rectified-flow velocity for the loss and the sampler, and such a model is never exported as a diffusers UNet."""
import pytest
import torch

import lingvis
from lingvis.diffusion.sampling import generate_images, prompt_tokens
from lingvis.models import registry
from lingvis.models.x0_velocity import X0Velocity, x0_to_velocity
from lingvis.recipes.clip_data import train_word_tokenizer
from lingvis.tasks.diffusion import DiffusionTask

TEXT = dict(vocab_size=16, context_length=8, dim=32, depth=1, heads=4, mlp_hidden=64)
DIT = dict(in_channels=3, sample_size=8, patch_size=4, dim=32, depth=1, heads=4, text_dim=32)


def _model(prediction: str, family: str = "dit", denoiser=DIT, **kw):
    torch.manual_seed(0)
    return registry.build("text_to_image", denoiser_family=family, denoiser=dict(denoiser), text=TEXT, lock_text=False,
                          scheduler={"_class_name": "FlowMatchEulerDiscreteScheduler", "shift": 1.0},
                          prediction=prediction, **kw)


def test_exact_x0_gives_the_flow_target():
    x0, noise = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4)
    t = torch.tensor([300.0, 900.0])
    s = (t / 1000)[:, None, None, None]
    x_t = (1 - s) * x0 + s * noise
    torch.testing.assert_close(x0_to_velocity(x0, x_t, t, 1000, 0.05), noise - x0, rtol=1e-5, atol=1e-5)
    # below min_sigma the division is clamped (no blow-up at the last sampling step)
    tiny = x0_to_velocity(torch.zeros(1, 3, 4, 4), torch.ones(1, 3, 4, 4), torch.tensor([1.0]), 1000, 0.05)
    torch.testing.assert_close(tiny, torch.full((1, 3, 4, 4), 20.0))


def test_model_forward_and_sampler_see_the_velocity():
    model = _model("x0").eval()
    with torch.no_grad():
        for p in model.denoiser.parameters():
            p.add_(0.05 * torch.randn_like(p))
    x_t, t = torch.randn(2, 3, 8, 8), torch.tensor([250.0, 750.0])
    states = torch.randn(2, 8, 32)
    with torch.no_grad():
        raw = model.denoiser(x_t, t, states)  # (2, 3, 8, 8): the network's x0
        v = model(x_t, t, states)
    torch.testing.assert_close(v, (x_t - raw) / torch.tensor([0.25, 0.75])[:, None, None, None])
    assert isinstance(model.sampling_denoiser, X0Velocity)
    assert not isinstance(_model("native").sampling_denoiser, X0Velocity)


def test_x0_model_trains_and_samples_and_saves_native(tmp_path):
    tok = train_word_tokenizer(["a red circle", "a blue square"])
    model = _model("x0")
    model.train()
    task = DiffusionTask(lambda texts: prompt_tokens(tok, texts, 8), model.config.scheduler, text_dropout=0.0,
                         timesteps="logit_normal")
    batch = task.collate([{"image": torch.rand(3, 8, 8) * 2 - 1, "text": "a red circle"}] * 4)
    loss, _ = task.loss(model, batch)
    loss.backward()
    assert torch.isfinite(loss) and model.denoiser.proj_out.weight.grad.abs().sum() > 0
    images = generate_images(model.eval(), tok, "a red circle", n=2, steps=3, guidance_scale=2.0, seed=0,
                             progress=False, output="pt")
    assert images.shape == (2, 3, 8, 8) and torch.isfinite(images).all()
    lingvis.save(model, tmp_path / "m", tokenizer=tok)
    assert not (tmp_path / "m" / "model_index.json").exists()  # not a diffusers pipeline
    back = lingvis.load(str(tmp_path / "m"))
    assert back.config.prediction == "x0"


def test_x0_needs_flow_matching():
    with pytest.raises(ValueError, match="rectified-flow"):
        registry.build("text_to_image", denoiser_family="dit", denoiser=dict(DIT), text=TEXT, prediction="x0",
                       scheduler={"_class_name": "DDIMScheduler", "prediction_type": "epsilon"})
    with pytest.raises(ValueError, match="prediction must be"):
        _model("eps")
