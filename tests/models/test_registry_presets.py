"""Every registered preset (timm's test_models.py is the model): build it, run forward and backward on a tiny
input, check that every parameter gets a finite gradient, and that save -> load round-trips the outputs
exactly. Large presets keep their widths, heads and image sizes but are cut to 2 layers (a 1,000-token
vocabulary, 4 video frames) so the suite stays fast; every preset is also built at full size on the meta device, and
parameter counts stated in a preset's description are checked there. A new preset is covered without
writing a test; a new family needs an entry in INPUTS below."""
from __future__ import annotations

import dataclasses
import re

import pytest
import torch
from torch import nn

import lingvis
from lingvis.models.registry import FAMILIES, PRESETS, family, preset_config

DEPTH_FIELDS = {"n_layer", "depth", "encoder_layers", "decoder_layers", "num_layers"}
MAX_PARAMS = 30_000_000  # presets above this are cut down for the forward/backward check


def _cut(fields: dict, top: bool) -> dict:
    out = {}
    for k, v in fields.items():
        if k in DEPTH_FIELDS and isinstance(v, int) and v > 2:
            v = 2
        elif k == "layers_per_block" and isinstance(v, int) and v > 1:
            v = 1
        elif k == "sample_size" and isinstance(v, int) and v > 32:  # convolutional denoisers/autoencoders
            v = 32
        elif k == "frames" and isinstance(v, int) and v > 4:  # video clips: 4 frames (tubelets of 1 or 2)
            v = 4
        elif k == "depths" and isinstance(v, list):
            v = [min(d, 1) for d in v]
        elif top and k in ("vocab_size", "tgt_vocab_size") and isinstance(v, int) and v > 1000:
            v = 1000
        elif isinstance(v, dict):
            v = _cut(v, False)
        out[k] = v
    return out


def _params(cfg_cls, cfg) -> int:
    with torch.device("meta"):
        return sum(p.numel() for p in family_of(cfg_cls).model_cls(cfg).parameters())


def family_of(cfg_cls):
    return next(f for f in FAMILIES.values() if f.config_cls is cfg_cls)


def small_model(name: str) -> nn.Module:
    fam, cfg = preset_config(name)
    if _params(type(cfg), cfg) > MAX_PARAMS:
        fields = _cut(dataclasses.asdict(cfg), fam not in ("clip", "fusion", "captioner"))
        cfg = type(cfg)(**fields)
    torch.manual_seed(0)
    return family(fam).model_cls(cfg)


def image_size(model: nn.Module) -> int:
    return next(getattr(m.config, "image_size", None) or m.config.sample_size for m in model.modules()
                if hasattr(getattr(m, "config", None), "image_size") or hasattr(getattr(m, "config", None),
                                                                                 "sample_size"))


def ids(B=2, T=6, hi=20):
    return torch.randint(3, hi, (B, T), generator=torch.Generator().manual_seed(1))


def pixels(model, B=2):
    s = image_size(model)
    return torch.randn(B, 3, s, s, generator=torch.Generator().manual_seed(2))


def tensors(out) -> list[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, dict):
        return [t for k in sorted(out) for t in tensors(out[k])]
    if dataclasses.is_dataclass(out):
        return [t for f in dataclasses.fields(out) for t in tensors(getattr(out, f.name))]
    if isinstance(out, (tuple, list)):
        return [t for o in out for t in tensors(o)]
    return []


def fusion_outputs(model, x, px):
    out = model(x, px, with_image_features=model.mif is not None)
    extra = [head(out) for head, on in ((model.mlm_logits, model.mlm), (model.itm_logits, model.itm),
                                         (model.mif_predictions, model.mif), (model.vqa_logits, model.vqa_head))
             if on is not None]
    if model.itc is not None:
        extra += list(model.contrastive_embeddings(x, px))
    return [out, *extra]


def denoise(m):
    """A denoiser (DiT, UNet): noisy input, timesteps, text states with padding -> prediction."""
    c = m.config
    x = torch.randn(2, c.in_channels, c.sample_size, c.sample_size, generator=torch.Generator().manual_seed(4))
    text = torch.randn(2, 5, m.text_dim, generator=torch.Generator().manual_seed(5))
    return m(x, torch.tensor([3, 700]), text, pad_mask(ids(T=5)))


def llava_ids(model, B=2, T=6):
    """Text ids with image placeholders: one image in row 0, two in row 1."""
    n, img = model.tokens_per_image, model.config.image_token_id
    x = ids(B, T)
    x[x == img] = img + 1  # text tokens are never the placeholder
    rows = [torch.cat([x[0, :2], torch.full((n,), img), x[0, 2:], torch.full((n,), img + 1)]),
            torch.cat([torch.full((n,), img), x[1, :3], torch.full((n,), img), x[1, 3:]])]
    return torch.stack(rows)


def video(model, B=2):
    """(B, T, 3, S, S) clips: the model's trained clip length (video_frames: any, here 3)."""
    c = model.config
    T = getattr(c, "num_frames", None) or getattr(c, "frames", None) or 3
    s = image_size(model)
    return torch.randn(B, T, 3, s, s, generator=torch.Generator().manual_seed(2))


def pad_mask(x):
    m = torch.ones_like(x)
    m[1, -2:] = 0
    return m


# family -> model -> outputs on a tiny input
INPUTS = {
    "gpt": lambda m: m(ids()),
    "bert": lambda m: m(ids(), attention_mask=pad_mask(ids()), token_type_ids=torch.zeros_like(ids())),
    "seq2seq": lambda m: m(ids(T=7), ids(T=5), src_mask=pad_mask(ids(T=7))),
    "clip_text": lambda m: m.encode(ids(), pad_mask(ids())),
    "word_bag_text": lambda m: m.encode(ids(), pad_mask(ids())),
    "vit": lambda m: m(pixels(m)),
    "cnn": lambda m: m(pixels(m)),
    "image_classifier": lambda m: m(pixels(m)),
    "clip": lambda m: m(pixels(m), ids()),
    "captioner": lambda m: m(pixels(m), ids()),
    "fusion": lambda m: fusion_outputs(m, ids(), pixels(m)),
    "dit": lambda m: denoise(m),
    "unet": lambda m: denoise(m),
    "text_to_image": lambda m: m(torch.randn(2, m.latent_channels, *(2 * [m.denoiser.config.sample_size]),
                                             generator=torch.Generator().manual_seed(4)),
                                 torch.tensor([3, 700]), m.text_encoder.encode(ids(), pad_mask(ids())),
                                 pad_mask(ids())),
    "kge": lambda m: m(torch.zeros(4, 3, dtype=torch.long)),
    "scene-graph": lambda m: m(pixels(m), torch.tensor([[[0.1, 0.1, 0.4, 0.4], [0.5, 0.5, 0.9, 0.8],
                                                          [0.2, 0.6, 0.4, 0.9]]] * 2)),
    "vae": lambda m: m(pixels(m), torch.Generator().manual_seed(6)),
    "video_transformer": lambda m: m(torch.randn(2, m.config.frames, 3, m.config.image_size, m.config.image_size,
                                                 generator=torch.Generator().manual_seed(2))),
    "llava": lambda m: m(llava_ids(m), pixel_values=pixels(m, B=3)),
    "video_frames": lambda m: m(video(m)),
    "video_classifier": lambda m: m(video(m)),
    "video_clip": lambda m: m(video(m), ids()),
    "video_captioner": lambda m: m(video(m), ids()),
}


def test_every_family_has_an_example_input():
    assert not sorted(set(FAMILIES) - set(INPUTS)), "add the new family's tiny input to INPUTS"


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_full_size_preset_builds_on_meta(name):
    fam, cfg = preset_config(name)
    n = _params(type(cfg), cfg)
    stated = re.search(r"\(([\d,]+) parameters", PRESETS[name][2])
    if stated:
        assert n == int(stated.group(1).replace(",", ""))
    assert n > 0


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_forward_backward_and_round_trip(name, tmp_path):
    model = small_model(name).train()
    for m in model.modules():  # deterministic forward for the round trip; batch norm keeps training mode
        if isinstance(m, nn.Dropout):
            m.p = 0.0
    fam = PRESETS[name][0]
    outs = tensors(INPUTS[fam](model))
    loss = sum(t.float().square().mean() for t in outs if t.is_floating_point())
    loss.backward()
    unused = set(model.unused_parameters()) if hasattr(model, "unused_parameters") else set()
    for pname, p in model.named_parameters():
        if p.requires_grad and pname not in unused:
            assert p.grad is not None, f"{name}: {pname} gets no gradient"
            assert torch.isfinite(p.grad).all(), f"{name}: {pname} has a non-finite gradient"
    model.eval()
    with torch.no_grad():
        before = tensors(INPUTS[fam](model))
        lingvis.save(model, tmp_path / "m", format="lingvis")
        back = lingvis.load(tmp_path / "m")
        after = tensors(INPUTS[fam](back))
    assert len(before) == len(after)
    for a, b in zip(before, after):
        assert torch.equal(a, b)
