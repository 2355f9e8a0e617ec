"""diffusers `AutoencoderKL` <-> lingvis AutoencoderKL."""
from __future__ import annotations

import re

from ..models.vae import AutoencoderKL, VAEConfig
from .diffusers_names import NameMap, rename_keys

VAE_NAMES = NameMap(
    rules=[
        (r"\.(down|up)\.(\d+)\.res\.(\d+)\.", r".\1_blocks.\2.resnets.\3."),
        (r"\.down\.(\d+)\.sampler\.", r".down_blocks.\1.downsamplers.0."),
        (r"\.up\.(\d+)\.sampler\.", r".up_blocks.\1.upsamplers.0."),
        (r"\.mid\.res\.", ".mid_block.resnets."),
        (r"\.mid\.attn\.norm\.", ".mid_block.attentions.0.group_norm."),
        (r"\.mid\.attn\.attn\.proj\.", ".mid_block.attentions.0.to_out.0."),
        (r"\.mid\.attn\.$", ".mid_block.attentions.0."),
        (r"\.norm_out\.", ".conv_norm_out."),
        (r"\.shortcut\.", ".conv_shortcut."),
    ],
    fused={"attn.qkv.weight": (["to_q.weight", "to_k.weight", "to_v.weight"], "cat"),
           "attn.qkv.bias": (["to_q.bias", "to_k.bias", "to_v.bias"], "cat")})
OLD_ATTENTION = {"query": "to_q", "key": "to_k", "value": "to_v", "proj_attn": "to_out.0"}


def _modern(key: str) -> str:
    """Checkpoints from diffusers < 0.14 name the VAE attention query/key/value/proj_attn."""
    return re.sub(r"attentions\.0\.(query|key|value|proj_attn)\.", lambda m: f"attentions.0.{OLD_ATTENTION[m[1]]}.",
                  key)


def vae_config_from_diffusers(d: dict, source: str = "vae/config.json") -> VAEConfig:
    for key, allowed in (("down_block_types", {"DownEncoderBlock2D"}), ("up_block_types", {"UpDecoderBlock2D"})):
        bad = [t for t in d.get(key, []) if t not in allowed]
        if bad:
            raise ValueError(f"{source}: unsupported {key} {bad[0]!r}; lingvis supports {sorted(allowed)}")
    size = d.get("sample_size", 512)
    return VAEConfig(in_channels=d.get("in_channels", 3), out_channels=d.get("out_channels", 3),
                     latent_channels=d.get("latent_channels", 4),
                     block_out_channels=list(d.get("block_out_channels", [64])),
                     layers_per_block=d.get("layers_per_block", 1), norm_num_groups=d.get("norm_num_groups", 32),
                     act_fn=d.get("act_fn", "silu"), sample_size=size[0] if isinstance(size, list) else size,
                     scaling_factor=d.get("scaling_factor", 0.18215), shift_factor=d.get("shift_factor"),
                     use_quant_conv=d.get("use_quant_conv", True), use_post_quant_conv=d.get("use_post_quant_conv", True),
                     mid_block_add_attention=d.get("mid_block_add_attention", True))


def vae_config_to_diffusers(c: VAEConfig) -> dict:
    n = len(c.block_out_channels)
    return {"_class_name": "AutoencoderKL", "in_channels": c.in_channels, "out_channels": c.out_channels,
            "down_block_types": ["DownEncoderBlock2D"] * n, "up_block_types": ["UpDecoderBlock2D"] * n,
            "block_out_channels": list(c.block_out_channels), "layers_per_block": c.layers_per_block,
            "act_fn": c.act_fn, "latent_channels": c.latent_channels, "norm_num_groups": c.norm_num_groups,
            "sample_size": c.sample_size, "scaling_factor": c.scaling_factor, "shift_factor": c.shift_factor,
            "use_quant_conv": c.use_quant_conv, "use_post_quant_conv": c.use_post_quant_conv,
            "mid_block_add_attention": c.mid_block_add_attention, "force_upcast": True}


def vae_from_diffusers(config: dict, state: dict, source: str) -> AutoencoderKL:
    model = AutoencoderKL(vae_config_from_diffusers(config, source))
    state = {k: (v.squeeze(-1).squeeze(-1) if "attentions.0." in k and v.dim() == 4 else v)
             for k, v in rename_keys(state, _modern).items()}  # old checkpoints kept 1x1 conv attention weights
    model.load_state_dict(VAE_NAMES.from_diffusers(state, model.state_dict().keys(), source))
    return model


def vae_to_diffusers(model: AutoencoderKL) -> tuple[dict, dict]:
    return vae_config_to_diffusers(model.config), VAE_NAMES.to_diffusers(model.state_dict())
