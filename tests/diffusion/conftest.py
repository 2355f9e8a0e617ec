"""Tiny random Stable Diffusion pipelines (the shapes of diffusers' own pipeline tests), built offline."""
import pytest
import torch

WORDS = ("a small red circle above a large blue square and two green stars to the left of an orange cross "
         "purple triangle yellow three shapes on white background")


@pytest.fixture(scope="session")
def clip_tokenizer_dir(tmp_path_factory):
    """vocab.json + merges.txt of a CLIP-style BPE (end-of-word `</w>`), trained on a few words."""
    from lingvis.tokenizers.clip_bpe import train_clip_bpe

    return train_clip_bpe([WORDS] * 3, 700, tmp_path_factory.mktemp("cliptok"))


def tiny_sd_components(clip_tokenizer_dir, vae=True, prediction="epsilon", scheduler="DDIMScheduler"):
    diffusers = pytest.importorskip("diffusers")
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    tokenizer = transformers.CLIPTokenizer.from_pretrained(clip_tokenizer_dir)
    unet = diffusers.UNet2DConditionModel(
        block_out_channels=(32, 64), layers_per_block=2, sample_size=16, in_channels=4 if vae else 3,
        out_channels=4 if vae else 3, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=32, norm_num_groups=8,
        attention_head_dim=4)
    ddim = {"clip_sample": False, "set_alpha_to_one": False} if scheduler == "DDIMScheduler" else {}
    sched = getattr(diffusers, scheduler)(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                          prediction_type=prediction, **ddim)
    auto = diffusers.AutoencoderKL(block_out_channels=[32, 64], in_channels=3, out_channels=3,
                                   down_block_types=["DownEncoderBlock2D"] * 2, up_block_types=["UpDecoderBlock2D"] * 2,
                                   latent_channels=4, norm_num_groups=8) if vae else None
    text = transformers.CLIPTextModel(transformers.CLIPTextConfig(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        hidden_size=32, intermediate_size=37, layer_norm_eps=1e-05, num_attention_heads=4, num_hidden_layers=2,
        vocab_size=len(tokenizer), max_position_embeddings=77))
    with torch.no_grad():  # non-trivial weights everywhere
        g = torch.Generator().manual_seed(0)
        for m in (unet, auto, text):
            for p in (m.parameters() if m is not None else []):
                p.add_(torch.randn(p.shape, generator=g) * 0.05)
    return dict(unet=unet.eval(), scheduler=sched, vae=auto.eval() if vae else None, text_encoder=text.eval(),
                tokenizer=tokenizer, safety_checker=None, feature_extractor=None, requires_safety_checker=False)


@pytest.fixture(scope="session")
def tiny_sd_dir(tmp_path_factory, clip_tokenizer_dir):
    """A saved StableDiffusionPipeline folder with random weights."""
    diffusers = pytest.importorskip("diffusers")
    pipe = diffusers.StableDiffusionPipeline(**tiny_sd_components(clip_tokenizer_dir))
    folder = tmp_path_factory.mktemp("sd") / "pipe"
    pipe.save_pretrained(folder)
    return folder
