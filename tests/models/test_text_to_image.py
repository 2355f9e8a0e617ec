"""TextToImage takes any registered denoiser with the contract
`denoiser(x_t (B, C, H, W), t (B,), text_states (B, L, D), text_mask (B, L)) -> (B, C, H, W)` (a DiT plugs in
like this toy), trains through the diffusion task and samples with guidance."""
from dataclasses import dataclass

import pytest
import torch
from torch import nn

import lingvis
from lingvis.diffusion.sampling import generate_images
from lingvis.models import registry
from lingvis.recipes.clip_data import train_word_tokenizer
from lingvis.tasks.diffusion import DiffusionTask


@dataclass
class ToyConfig:
    in_channels: int = 3
    sample_size: int = 8
    text_dim: int = 32


class ToyDenoiser(nn.Module):
    """A conv whose output is shifted by the pooled text and scaled by the timestep."""

    def __init__(self, config: ToyConfig):
        super().__init__()
        self.config = config
        self.conv = nn.Conv2d(config.in_channels, config.in_channels, 3, padding=1)
        self.text = nn.Linear(config.text_dim, config.in_channels)

    @property
    def text_dim(self) -> int:
        return self.config.text_dim

    def forward(self, x, t, text_states, text_mask=None):
        t = torch.as_tensor(t, dtype=x.dtype).reshape(-1)[:, None, None, None] / 1000  # (B|1, 1, 1, 1)
        return self.conv(x) * (1 + t) + self.text(text_states.mean(1))[:, :, None, None]


@pytest.fixture(autouse=True, scope="module")
def toy_family():
    registry.register_family("toy_denoiser", ToyConfig, ToyDenoiser, "test-only denoiser")
    yield
    del registry.FAMILIES["toy_denoiser"]


def test_any_denoiser_family_trains_and_samples(tmp_path):
    tok = train_word_tokenizer(["a red circle", "a blue square"])
    model = registry.build("text_to_image", denoiser_family="toy_denoiser", denoiser={},
                           text=dict(vocab_size=tok.vocab_size, context_length=8, dim=32, depth=1, heads=4,
                                     mlp_hidden=64), lock_text=False,
                           scheduler={"_class_name": "DDIMScheduler", "prediction_type": "epsilon",
                                      "clip_sample": False})
    assert model.image_size == 8 and model.latent_channels == 3
    from lingvis.diffusion.sampling import prompt_tokens

    task = DiffusionTask(lambda texts: prompt_tokens(tok, texts, 8), model.config.scheduler, text_dropout=0.0)
    batch = task.collate([{"image": torch.rand(3, 8, 8) * 2 - 1, "text": "a red circle"}] * 4)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(3):
        loss, _ = task.loss(model, batch)
        loss.backward()
        opt.step()
        opt.zero_grad()
    assert int(model.ema_updates) == 3
    a = generate_images(model, tok, "a red circle", steps=3, guidance_scale=3.0, seed=0, output="pt", progress=False)
    b = generate_images(model, tok, "a blue square", steps=3, guidance_scale=3.0, seed=0, output="pt", progress=False)
    assert a.shape == (1, 3, 8, 8) and (a - b).abs().max() > 1e-4  # the prompt reaches the toy denoiser
    lingvis.save(model, tmp_path / "toy", tokenizer=tok)  # no diffusers twin: saved natively
    assert (tmp_path / "toy" / "lingvis.json").is_file()
    back = lingvis.load(tmp_path / "toy")
    assert torch.equal(generate_images(back, tok, "a red circle", steps=3, guidance_scale=3.0, seed=0, output="pt",
                                       progress=False), a)


def test_width_and_channel_mismatches_are_named():
    with pytest.raises(ValueError, match="width 64 does not fit the denoiser's text width 32"):
        registry.build("t2i-nano", text=dict(vocab_size=64, context_length=16, dim=64, depth=1, heads=4,
                                             mlp_hidden=64))
    with pytest.raises(ValueError, match="takes 4 channels but the pixel space has 3"):
        registry.build("t2i-nano", denoiser=dict(in_channels=4, out_channels=4, sample_size=16,
                                                 block_out_channels=[16, 32], down_attention=[False, True],
                                                 attention_heads=2, cross_attention_dim=32, norm_num_groups=8))
