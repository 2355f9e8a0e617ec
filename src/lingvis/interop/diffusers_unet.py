"""diffusers `UNet2DConditionModel` (config.json + diffusion_pytorch_model.safetensors) <-> lingvis UNet."""
from __future__ import annotations

from ..models.unet import UNet, UNetConfig
from .diffusers_names import NameMap

UNET_NAMES = NameMap(
    rules=[
        (r"^time_embed\.fc1\.", "time_embedding.linear_1."),
        (r"^time_embed\.fc2\.", "time_embedding.linear_2."),
        (r"^(down|up)\.(\d+)\.res\.(\d+)\.", r"\1_blocks.\2.resnets.\3."),
        (r"^(down|up)\.(\d+)\.attn\.(\d+)\.", r"\1_blocks.\2.attentions.\3."),
        (r"^down\.(\d+)\.sampler\.", r"down_blocks.\1.downsamplers.0."),
        (r"^up\.(\d+)\.sampler\.", r"up_blocks.\1.upsamplers.0."),
        (r"^mid\.res\.", "mid_block.resnets."),
        (r"^mid\.attn\.", "mid_block.attentions."),
        (r"^norm_out\.", "conv_norm_out."),
        (r"\.time_proj\.", ".time_emb_proj."),
        (r"\.shortcut\.", ".conv_shortcut."),
        (r"\.blocks\.(\d+)\.", r".transformer_blocks.\1."),
        (r"\.attn\.proj\.", ".attn1.to_out.0."),
        (r"\.cross_attn\.proj\.", ".attn2.to_out.0."),
        (r"\.cross_attn\.q\.", ".attn2.to_q."),
        (r"\.mlp\.proj\.", ".ff.net.2."),
    ],
    fused={"attn.qkv.weight": (["attn1.to_q.weight", "attn1.to_k.weight", "attn1.to_v.weight"], "cat"),
           "cross_attn.kv.weight": (["attn2.to_k.weight", "attn2.to_v.weight"], "cat"),
           "mlp.fc.weight": (["ff.net.0.proj.weight"], "swap"),
           "mlp.fc.bias": (["ff.net.0.proj.bias"], "swap")})

DOWN_TYPES = {"CrossAttnDownBlock2D": True, "DownBlock2D": False}
UP_TYPES = {"CrossAttnUpBlock2D": True, "UpBlock2D": False}
MID_TYPES = {"UNetMidBlock2DCrossAttn": True, None: False}
# diffusers options lingvis implements only at these values
FIXED = {"only_cross_attention": False, "dual_cross_attention": False, "class_embed_type": None,
         "addition_embed_type": None, "num_class_embeds": None, "time_cond_proj_dim": None,
         "encoder_hid_dim": None, "encoder_hid_dim_type": None, "time_embedding_type": "positional",
         "time_embedding_dim": None, "time_embedding_act_fn": None, "timestep_post_act": None,
         "attention_type": "default", "class_embeddings_concat": False, "cross_attention_norm": None,
         "resnet_skip_time_act": False, "resnet_out_scale_factor": 1.0, "num_attention_heads": None,
         "reverse_transformer_layers_per_block": None, "mid_block_only_cross_attention": None,
         "projection_class_embeddings_input_dim": None}


def _lookup(table: dict, value, key: str, source: str):
    if value not in table:
        raise ValueError(f"{source}: unsupported {key} {value!r}; lingvis supports {sorted(map(str, table))}")
    return table[value]


def unet_config_from_diffusers(d: dict, source: str = "unet/config.json") -> UNetConfig:
    for key, want in FIXED.items():
        value = d.get(key, want)
        if isinstance(value, list) and key == "only_cross_attention":  # one flag per block
            value = any(value)
        if value != want:
            raise ValueError(f"{source}: unsupported {key}={d[key]!r} (lingvis supports {want!r})")
    cross = d.get("cross_attention_dim", 1280)
    if isinstance(cross, list):
        if len(set(cross)) != 1:
            raise ValueError(f"{source}: per-block cross_attention_dim {cross} is not supported")
        cross = cross[0]
    if d.get("norm_num_groups", 32) is None:
        raise ValueError(f"{source}: norm_num_groups null (no output norm) is not supported")
    down = [_lookup(DOWN_TYPES, t, "down block type", source) for t in d.get(
        "down_block_types", ["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"])]
    up = [_lookup(UP_TYPES, t, "up block type", source) for t in d.get(
        "up_block_types", ["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3)]
    size = d.get("sample_size") or 64
    return UNetConfig(
        in_channels=d.get("in_channels", 4), out_channels=d.get("out_channels", 4),
        sample_size=size[0] if isinstance(size, list) else size,
        block_out_channels=list(d.get("block_out_channels", [320, 640, 1280, 1280])), down_attention=down,
        up_attention=up, mid_block=_lookup(MID_TYPES, d.get("mid_block_type", "UNetMidBlock2DCrossAttn"),
                                           "mid_block_type", source),
        layers_per_block=d.get("layers_per_block", 2),
        transformer_layers_per_block=d.get("transformer_layers_per_block", 1),
        attention_heads=d.get("attention_head_dim", 8), cross_attention_dim=cross,
        norm_num_groups=d.get("norm_num_groups", 32), norm_eps=d.get("norm_eps", 1e-5), act_fn=d.get("act_fn", "silu"),
        flip_sin_to_cos=d.get("flip_sin_to_cos", True), freq_shift=d.get("freq_shift", 0),
        use_linear_projection=d.get("use_linear_projection", False),
        resnet_time_scale_shift=d.get("resnet_time_scale_shift", "default"),
        mid_block_scale_factor=d.get("mid_block_scale_factor", 1.0), downsample_padding=d.get("downsample_padding", 1),
        dropout=d.get("dropout", 0.0), conv_in_kernel=d.get("conv_in_kernel", 3),
        conv_out_kernel=d.get("conv_out_kernel", 3), center_input_sample=d.get("center_input_sample", False))


def unet_config_to_diffusers(c: UNetConfig) -> dict:
    return {"_class_name": "UNet2DConditionModel", "sample_size": c.sample_size, "in_channels": c.in_channels,
            "out_channels": c.out_channels, "center_input_sample": c.center_input_sample,
            "flip_sin_to_cos": c.flip_sin_to_cos, "freq_shift": c.freq_shift,
            "down_block_types": ["CrossAttnDownBlock2D" if a else "DownBlock2D" for a in c.down_attention],
            "mid_block_type": "UNetMidBlock2DCrossAttn" if c.mid_block else None,
            "up_block_types": ["CrossAttnUpBlock2D" if a else "UpBlock2D" for a in c.up_attention],
            "block_out_channels": list(c.block_out_channels), "layers_per_block": c.layers_per_block,
            "downsample_padding": c.downsample_padding, "mid_block_scale_factor": c.mid_block_scale_factor,
            "dropout": c.dropout, "act_fn": c.act_fn, "norm_num_groups": c.norm_num_groups, "norm_eps": c.norm_eps,
            "cross_attention_dim": c.cross_attention_dim,
            "transformer_layers_per_block": c.transformer_layers_per_block,
            "attention_head_dim": c.attention_heads, "use_linear_projection": c.use_linear_projection,
            "resnet_time_scale_shift": c.resnet_time_scale_shift, "conv_in_kernel": c.conv_in_kernel,
            "conv_out_kernel": c.conv_out_kernel}


def unet_from_diffusers(config: dict, state: dict, source: str) -> UNet:
    model = UNet(unet_config_from_diffusers(config, source))
    own = model.state_dict()
    model.load_state_dict(UNET_NAMES.from_diffusers(state, own.keys(), source))
    return model


def unet_to_diffusers(model: UNet) -> tuple[dict, dict]:
    return unet_config_to_diffusers(model.config), UNET_NAMES.to_diffusers(model.state_dict())
