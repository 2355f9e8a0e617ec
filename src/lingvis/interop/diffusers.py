"""diffusers pipeline folders (`model_index.json` + unet/ vae/ text_encoder/ tokenizer/ scheduler/) <->
lingvis `TextToImage`. A pixel-space model exports with `"vae": [null, null]`: diffusers loads it with
`DiffusionPipeline.from_pretrained(folder, vae=None)` and samples it with `output_type="latent"` (the pixels
in [-1, 1])."""
from __future__ import annotations

import copy
import dataclasses
import json
import warnings
from pathlib import Path

import torch
from safetensors.torch import save_file

from ..diffusion.schedulers import make_scheduler
from ..io import CheckpointError, load_state, read_safetensors
from ..models.clip_text import CLIPTextEncoder
from ..models.text_to_image import TextToImage, TextToImageConfig
from .clip_text import save_clip_text
from .diffusers_unet import unet_from_diffusers, unet_to_diffusers
from .diffusers_vae import vae_from_diffusers, vae_to_diffusers
from .registry import load_hf, register_exporter, register_loader

INDEX_FILE = "model_index.json"
WEIGHTS = "diffusion_pytorch_model.safetensors"
PIPELINES = ("StableDiffusionPipeline",)


def is_pipeline_folder(path: Path) -> bool:
    return (Path(path) / INDEX_FILE).is_file()


def _read_json(path: Path) -> dict:
    if not path.is_file():
        raise CheckpointError(f"missing {path}")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"corrupt {path}: {e}") from e
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: expected a JSON object")
    return data


def _component(folder: Path, name: str) -> tuple[dict, dict[str, torch.Tensor]]:
    sub = folder / name
    weights = sub / WEIGHTS
    if not weights.is_file():
        if (sub / "diffusion_pytorch_model.bin").is_file():
            raise CheckpointError(f"{sub} has only diffusion_pytorch_model.bin (a pickle); lingvis loads safetensors "
                                  "only. Convert it with diffusers: save_pretrained(dir, safe_serialization=True)")
        raise CheckpointError(f"missing {weights}")
    return _read_json(sub / "config.json"), read_safetensors(weights)


def _text_encoder(folder: Path) -> CLIPTextEncoder:
    model = load_hf(folder / "text_encoder")
    model = getattr(model, "text", model) if model.family == "clip" else model
    if model.family != "clip_text":
        raise CheckpointError(f"{folder / 'text_encoder'}: a {model.family} model; lingvis diffusion pipelines take "
                              "a CLIP text encoder")
    return model


def load_pipeline_tokenizer(folder: str | Path):
    from ..tokenizers import Tokenizer
    from ..tokenizers.clip_bpe import is_clip_folder, load_clip_bpe

    sub = Path(folder) / "tokenizer"
    if not sub.is_dir():
        raise CheckpointError(f"{folder}: the pipeline has no tokenizer/ folder")
    return load_clip_bpe(sub) if is_clip_folder(sub) and not (sub / "tokenizer.json").is_file() else Tokenizer.load(sub)


@register_loader("diffusers_pipeline")
def _load_pipeline_folder(hf: dict, weights, path: Path) -> TextToImage:
    return load_pipeline(path)


def load_pipeline(folder: str | Path) -> TextToImage:
    folder = Path(folder)
    index = _read_json(folder / INDEX_FILE)
    kind = index.get("_class_name")
    if kind not in PIPELINES:
        raise CheckpointError(f"{folder / INDEX_FILE}: pipeline {kind!r} is not supported; lingvis loads {PIPELINES}")
    for part in ("unet", "text_encoder", "tokenizer", "scheduler"):
        if not index.get(part) or index[part][0] is None:
            raise CheckpointError(f"{folder / INDEX_FILE}: the pipeline has no {part}")
    unet = unet_from_diffusers(*_component(folder, "unet"), source=str(folder / "unet"))
    vae = None
    if index.get("vae") and index["vae"][0] is not None:
        vae = vae_from_diffusers(*_component(folder, "vae"), source=str(folder / "vae"))
    text = _text_encoder(folder)
    sched_path = folder / "scheduler" / "scheduler_config.json"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        scheduler = make_scheduler(_read_json(sched_path), source=str(sched_path))
    for w in caught:  # say once, at load, which sampler stands in for an unsupported one
        warnings.warn(str(w.message), stacklevel=2)
    tok_cfg = folder / "tokenizer" / "tokenizer_config.json"
    max_len = json.loads(tok_cfg.read_text()).get("model_max_length") if tok_cfg.is_file() else None
    config = TextToImageConfig(
        denoiser_family="unet", denoiser=dataclasses.asdict(unet.config), text_family="clip_text",
        text=dataclasses.asdict(text.config), vae=dataclasses.asdict(vae.config) if vae is not None else None,
        scheduler=scheduler.to_config(), lock_text=True,
        text_length=int(max_len) if isinstance(max_len, (int, float)) and max_len < 1e6 else None, ema=False)
    model = TextToImage(config)
    state = {f"denoiser.{k}": v for k, v in unet.state_dict().items()}
    state.update({f"text_encoder.{k}": v for k, v in text.state_dict().items()})
    if vae is not None:
        state.update({f"vae.{k}": v for k, v in vae.state_dict().items()})
    load_state(model, state, source=str(folder))
    return model.eval()


@register_loader("UNet2DConditionModel")
def load_unet(config: dict, state: dict[str, torch.Tensor], path: Path):
    return unet_from_diffusers(config, state, str(path))


@register_loader("AutoencoderKL")
def load_vae(config: dict, state: dict[str, torch.Tensor], path: Path):
    return vae_from_diffusers(config, state, str(path))


# ---- export ------------------------------------------------------------------------------------
def exportable(model: TextToImage) -> bool:
    return (model.config.denoiser_family == "unet" and model.config.text_family == "clip_text"
            and model.config.prediction == "native")  # diffusers has no x0-predicting flow UNet


def _write_component(folder: Path, config: dict, state: dict) -> None:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    save_file({k: v.detach().contiguous().cpu() for k, v in state.items()}, str(folder / WEIGHTS),
              metadata={"format": "pt"})


def write_pipeline_tokenizer(tokenizer, folder: Path, length: int) -> None:
    """tokenizer.json whose post-processor wraps prompts as [bos] text [eos] (as CLIPTokenizer does) and a
    config padding to `length`, so `transformers` tokenizes prompts exactly as lingvis samples them."""
    from tokenizers import processors

    from ..tokenizers import Tokenizer

    if tokenizer.bos_id is None or tokenizer.eos_id is None:
        raise ValueError("exporting a diffusers pipeline needs a tokenizer with bos and eos tokens")
    backend = copy.deepcopy(tokenizer.backend)
    bos, eos = tokenizer.special_tokens["bos"], tokenizer.special_tokens["eos"]
    backend.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}", special_tokens=[(bos, tokenizer.bos_id), (eos, tokenizer.eos_id)])
    roles = dict(tokenizer.special_tokens)
    roles.setdefault("pad", eos)
    out = Tokenizer(backend, roles, model_max_length=length)
    out.save(folder)


@register_exporter("text_to_image")
def save_pipeline(model: TextToImage, folder: Path, tokenizer=None) -> bool:
    """Write a StableDiffusionPipeline folder (the EMA denoiser when there is one). Needs the tokenizer."""
    if not exportable(model) or tokenizer is None:
        return False
    c = model.config
    unet_cfg, unet_state = unet_to_diffusers(model.sampling_denoiser)
    _write_component(folder / "unet", unet_cfg, unet_state)
    vae_entry = [None, None]
    if model.vae is not None:
        _write_component(folder / "vae", *vae_to_diffusers(model.vae))
        vae_entry = ["diffusers", "AutoencoderKL"]
    (folder / "text_encoder").mkdir()
    save_clip_text(model.text_encoder, folder / "text_encoder")
    _stamp_ids(folder / "text_encoder" / "config.json", tokenizer)
    make_scheduler(c.scheduler).save(folder / "scheduler")
    write_pipeline_tokenizer(tokenizer, folder / "tokenizer", model.text_length)
    index = {"_class_name": "StableDiffusionPipeline", "_diffusers_version": "0.30.0",
             "unet": ["diffusers", "UNet2DConditionModel"], "vae": vae_entry,
             "text_encoder": ["transformers", "CLIPTextModel"],
             "tokenizer": ["transformers", "PreTrainedTokenizerFast"],
             "scheduler": ["diffusers", make_scheduler(c.scheduler).class_name],
             "safety_checker": [None, None], "feature_extractor": [None, None], "image_encoder": [None, None],
             "requires_safety_checker": False}
    (folder / INDEX_FILE).write_text(json.dumps(index, indent=2))
    return True


save_pipeline.takes_tokenizer = True


def _stamp_ids(path: Path, tokenizer) -> None:
    cfg = json.loads(path.read_text())
    pad = tokenizer.pad_id if tokenizer.pad_id is not None else tokenizer.eos_id
    cfg.update(bos_token_id=tokenizer.bos_id, eos_token_id=tokenizer.eos_id, pad_token_id=pad)
    path.write_text(json.dumps(cfg, indent=2))
