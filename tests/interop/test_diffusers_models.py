"""UNet / AutoencoderKL / CLIP text encoder parity with diffusers and transformers on tiny random configs,
through the production name maps."""
import pytest
import torch

from lingvis.interop.diffusers_unet import UNET_NAMES, unet_from_diffusers, unet_to_diffusers
from lingvis.interop.diffusers_vae import vae_from_diffusers, vae_to_diffusers
from lingvis.io import CheckpointError

diffusers = pytest.importorskip("diffusers")


def _jitter(model, seed=0):
    """Random weights everywhere (norm scales and biases too) so that a swapped name shows."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.1)
    return model.eval()


UNETS = {
    "sd-like": dict(block_out_channels=(32, 64), layers_per_block=2, sample_size=32, in_channels=4, out_channels=4,
                    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                    up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=24, norm_num_groups=8,
                    attention_head_dim=4),
    "three-levels": dict(block_out_channels=(16, 24, 32), layers_per_block=1, in_channels=3, out_channels=5,
                         down_block_types=("CrossAttnDownBlock2D", "DownBlock2D", "CrossAttnDownBlock2D"),
                         up_block_types=("CrossAttnUpBlock2D", "UpBlock2D", "CrossAttnUpBlock2D"),
                         cross_attention_dim=20, norm_num_groups=4, attention_head_dim=(2, 3, 4),
                         transformer_layers_per_block=(1, 1, 2), use_linear_projection=True,
                         resnet_time_scale_shift="scale_shift", flip_sin_to_cos=False, freq_shift=1,
                         downsample_padding=0, mid_block_scale_factor=1.4),
    "no-mid": dict(block_out_channels=(16, 32), layers_per_block=(1, 2), cross_attention_dim=8, norm_num_groups=8,
                   down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
                   up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"), mid_block_type=None,
                   attention_head_dim=2, act_fn="mish", center_input_sample=True),
}


@pytest.mark.parametrize("name", list(UNETS))
def test_unet_matches_diffusers(name):
    torch.manual_seed(0)
    ref = _jitter(diffusers.UNet2DConditionModel(**UNETS[name]))
    ours = unet_from_diffusers(dict(ref.config), ref.state_dict(), name).eval()
    g = torch.Generator().manual_seed(1)
    c = ref.config
    for shape in ((2, c.in_channels, 16, 16), (3, c.in_channels, 13, 10)):  # odd sizes take the sized upsample path
        x = torch.randn(*shape, generator=g)
        text = torch.randn(shape[0], 7, c.cross_attention_dim, generator=g)
        t = torch.tensor([999, 3, 500][:shape[0]])
        mask = torch.ones(shape[0], 7, dtype=torch.long)
        mask[0, 4:] = 0
        with torch.no_grad():
            want = ref(x, t, text).sample
            got = ours(x, t, text)
            want_m = ref(x, t, text, encoder_attention_mask=mask).sample
            got_m = ours(x, t, text, mask)
        assert (got - want).abs().max() <= 1e-4
        assert (got_m - want_m).abs().max() <= 1e-4
        assert (got_m - got).abs().max() > 1e-3  # the mask matters
    with torch.no_grad():  # a float timestep broadcast over the batch, as the Euler scheduler passes
        x = torch.randn(2, c.in_channels, 8, 8, generator=g)
        text = torch.randn(2, 3, c.cross_attention_dim, generator=g)
        assert (ours(x, torch.tensor(411.5), text) - ref(x, torch.tensor(411.5), text).sample).abs().max() <= 1e-4


def test_unet_export_loads_in_diffusers(tmp_path):
    ref = _jitter(diffusers.UNet2DConditionModel(**UNETS["three-levels"]))
    ours = unet_from_diffusers(dict(ref.config), ref.state_dict(), "x")
    config, state = unet_to_diffusers(ours)
    back = diffusers.UNet2DConditionModel.from_config(config).eval()
    back.load_state_dict(state, strict=True)
    for k, v in ref.state_dict().items():
        assert torch.equal(back.state_dict()[k], v), k


def test_unet_bad_checkpoints_are_named():
    ref = diffusers.UNet2DConditionModel(**UNETS["sd-like"])
    state = dict(ref.state_dict())
    del state["down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.weight"]
    with pytest.raises(CheckpointError, match="attn2.to_k.weight"):
        unet_from_diffusers(dict(ref.config), state, "unet")
    state = dict(ref.state_dict(), extra_thing=torch.zeros(1))
    with pytest.raises(CheckpointError, match="extra_thing"):
        unet_from_diffusers(dict(ref.config), state, "unet")
    with pytest.raises(ValueError, match="addition_embed_type"):
        unet_from_diffusers({**ref.config, "addition_embed_type": "text_time"}, ref.state_dict(), "unet")
    with pytest.raises(ValueError, match="up block type 'AttnUpBlock2D'"):
        unet_from_diffusers({**ref.config, "up_block_types": ["AttnUpBlock2D", "UpBlock2D"]}, ref.state_dict(), "u")


def test_name_map_is_explicit():
    names, how = UNET_NAMES.sources("up.1.attn.2.blocks.0.mlp.fc.weight")
    assert names == ["up_blocks.1.attentions.2.transformer_blocks.0.ff.net.0.proj.weight"] and how == "swap"
    assert UNET_NAMES.sources("mid.res.1.time_proj.bias")[0] == ["mid_block.resnets.1.time_emb_proj.bias"]


VAES = {
    "sd-like": dict(block_out_channels=(8, 16), in_channels=3, out_channels=3, latent_channels=4, norm_num_groups=4,
                    down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2),
    "three": dict(block_out_channels=(8, 16, 16), layers_per_block=2, latent_channels=3, norm_num_groups=8,
                  down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3,
                  scaling_factor=0.5, shift_factor=0.1, use_quant_conv=False),
}


@pytest.mark.parametrize("name", list(VAES))
def test_vae_matches_diffusers(name, tmp_path):
    torch.manual_seed(0)
    ref = _jitter(diffusers.AutoencoderKL(**VAES[name]))
    ours = vae_from_diffusers(dict(ref.config), ref.state_dict(), name).eval()
    x = torch.randn(2, 3, 20, 12, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        post = ref.encode(x).latent_dist
        mean, logvar = ours.encode(x)
        assert (mean - post.mean).abs().max() <= 1e-4 and (logvar - post.logvar).abs().max() <= 1e-4
        z = post.mean
        assert (ours.decode(z) - ref.decode(z).sample).abs().max() <= 1e-4
        lat = ours.to_latents(x, sample=False)
        c = ref.config
        assert torch.allclose(lat, (post.mean - (c.shift_factor or 0)) * c.scaling_factor, atol=1e-5)
    config, state = vae_to_diffusers(ours)
    back = diffusers.AutoencoderKL.from_config(config)
    back.load_state_dict(state, strict=True)


def test_vae_reads_pre_0_14_attention_names():
    ref = _jitter(diffusers.AutoencoderKL(**VAES["sd-like"]))
    old = {k.replace("attentions.0.to_q.", "attentions.0.query.").replace("attentions.0.to_out.0.",
                                                                          "attentions.0.proj_attn."): v
           for k, v in ref.state_dict().items()}
    ours = vae_from_diffusers(dict(ref.config), old, "old")
    x = torch.randn(1, 3, 8, 8)
    with torch.no_grad():
        assert (ours.encode(x)[0] - ref.encode(x).latent_dist.mean).abs().max() <= 1e-4


def test_clip_text_folder_loads_and_exports(tmp_path):
    transformers = pytest.importorskip("transformers")
    import lingvis

    cfg = transformers.CLIPTextConfig(vocab_size=99, hidden_size=32, intermediate_size=37, num_hidden_layers=2,
                                      num_attention_heads=4, max_position_embeddings=20, bos_token_id=0, eos_token_id=2,
                                      pad_token_id=1)
    ref = _jitter(transformers.CLIPTextModel(cfg))
    ref.save_pretrained(tmp_path / "te")
    ours = lingvis.load(tmp_path / "te")
    assert ours.family == "clip_text"
    ids = torch.randint(3, 99, (2, 9), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want = ref(ids).last_hidden_state
        got = ours.encode(ids, torch.ones_like(ids))
    assert (got - want).abs().max() <= 1e-4
    lingvis.save(ours, tmp_path / "out", format="hf")
    back = transformers.CLIPTextModel.from_pretrained(tmp_path / "out").eval()
    with torch.no_grad():
        assert (back(ids).last_hidden_state - want).abs().max() <= 1e-5
