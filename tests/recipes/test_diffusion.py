"""`pretrain_diffusion` with a pretrained text tower (`--text-encoder`): a lingvis CLIP run or a Hugging Face CLIP
folder gives the text encoder and its tokenizer, the denoiser's cross-attention takes the tower's width, and the
tower stays frozen unless `unlock_text`; a model without a text `encode` is refused by name."""
import json

import pytest
import torch

import lingvis
from lingvis.data.shapes import generate_shapes
from lingvis.models import registry
from lingvis.recipes.clip_data import train_word_tokenizer
from lingvis.recipes.diffusion import DiffusionPretrainArgs, pretrain_diffusion
from lingvis.train.config import TrainConfig


def cfg():
    return TrainConfig(max_steps=2, batch_size=4, lr=1e-2, warmup_steps=1, eval_every=2, eval_batches=1,
                       log_every=1, progress=False, device="cpu")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("t2i_text")
    generate_shapes(root / "shapes", n_train=12, n_val=4, n_test=0, n_test_unseen=0, image_size=16)
    captions = json.loads((root / "shapes" / "captions_train.json").read_text())["annotations"]
    tok = train_word_tokenizer([a["caption"] for a in captions])
    torch.manual_seed(0)
    clip = lingvis.build("clip-nano", text=dict(vocab_size=tok.vocab_size, context_length=24, dim=48, depth=1,
                                                heads=4, mlp_hidden=64), eos_token_id=tok.eos_id)
    lingvis.save(clip, root / "clip", tokenizer=tok)
    return root, tok


def train(root, out, text_encoder, unlock=False):
    args = DiffusionPretrainArgs(out=str(out), data=str(root / "shapes" / "captions_train.json"),
                                 val_data=str(root / "shapes" / "captions_val.json"), preset="t2i-nano",
                                 text_encoder=str(text_encoder), unlock_text=unlock, sample_prompts=["a red circle"],
                                 sample_steps=1)
    summary = pretrain_diffusion(args, cfg())
    return summary, lingvis.load(out)


def texts_equal(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_lingvis_clip_run_is_a_frozen_text_encoder(data, tmp_path):
    root, tok = data
    summary, model = train(root, tmp_path / "run", root / "clip")
    clip = lingvis.load(root / "clip")
    assert texts_equal(model.text_encoder, clip.text)  # frozen through two optimizer steps
    assert model.config.denoiser["cross_attention_dim"] == 48 and model.text_length == 24
    assert summary["trainable"] == sum(p.numel() for p in model.denoiser.parameters())
    assert lingvis.load_tokenizer(tmp_path / "run").get_vocab() == tok.get_vocab()  # the tower's own tokenizer


def test_unlock_text_fine_tunes_the_tower(data, tmp_path):
    root, _ = data
    summary, model = train(root, tmp_path / "run", root / "clip", unlock=True)
    assert not texts_equal(model.text_encoder, lingvis.load(root / "clip").text)
    assert summary["trainable"] > sum(p.numel() for p in model.denoiser.parameters())


def test_hugging_face_clip_folder(data, tmp_path):
    transformers = pytest.importorskip("transformers")
    root, tok = data
    torch.manual_seed(0)
    hf = transformers.CLIPModel(transformers.CLIPConfig(
        text_config=dict(vocab_size=tok.vocab_size, hidden_size=40, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, max_position_embeddings=20, eos_token_id=tok.eos_id,
                         bos_token_id=tok.bos_id, pad_token_id=tok.pad_id),
        vision_config=dict(hidden_size=32, intermediate_size=48, num_hidden_layers=1, num_attention_heads=4,
                           image_size=32, patch_size=8), projection_dim=16))
    hf.save_pretrained(tmp_path / "hf_clip", safe_serialization=True)
    tok.save(tmp_path / "hf_clip")
    _, model = train(root, tmp_path / "run", tmp_path / "hf_clip")
    assert texts_equal(model.text_encoder, lingvis.load(tmp_path / "hf_clip").text)
    assert model.config.denoiser["cross_attention_dim"] == 40 and model.text_length == 20
    ids = torch.tensor([tok.encode("a small red circle")])
    with torch.no_grad():
        want = hf.text_model(input_ids=ids).last_hidden_state
        got, _ = model.encode_text(ids, torch.ones_like(ids))
    assert (got - want).abs().max() <= 1e-4  # the trained model encodes text as the HF tower does


def test_a_model_without_a_text_tower_is_named(data, tmp_path):
    root, tok = data
    lingvis.save(lingvis.build("gpt-nano", vocab_size=tok.vocab_size), tmp_path / "lm", tokenizer=tok)
    with pytest.raises(ValueError, match="no text `encode`"):
        train(root, tmp_path / "run", tmp_path / "lm")


def test_shapes_recipe_is_a_cpu_budgeted_flow_dit_that_trains(data, tmp_path):
    from lingvis.recipes.diffusion import DEFAULT_PRESET, SHAPES_LR, SHAPES_RECIPE, shapes_recipe

    root, _ = data
    args, tc = shapes_recipe(str(tmp_path / "run"), str(root / "shapes" / "captions_train.json"),
                             str(root / "shapes" / "captions_val.json"), minutes=15)
    assert (args.preset, args.objective, args.snr_gamma, args.timesteps) == (
        DEFAULT_PRESET, SHAPES_RECIPE["objective"], SHAPES_RECIPE["snr_gamma"], SHAPES_RECIPE["timesteps"])
    assert DEFAULT_PRESET == "t2i-shapes-dit-conv-s" and SHAPES_RECIPE["objective"] == "flow"
    assert (tc.max_minutes, tc.budget_clock, tc.lr) == (15, "cpu", SHAPES_LR)
    _, preset = registry.preset_of(DEFAULT_PRESET, "text_to_image")
    assert {k: preset.denoiser[k] for k in ("dim", "depth", "patch_size", "conv_out")} == dict(
        dim=128, depth=4, patch_size=4, conv_out=32)
    # the same recipe (DiT with the conv head, flow matching) cut to a tiny size for two steps: a run that loads
    args.overrides = {"denoiser": dict(sample_size=16, dim=32, depth=1, heads=2, text_dim=32, conv_out=8),
                      "text": dict(dim=32, depth=1, heads=4, mlp_hidden=64)}
    args.sample_prompts, args.sample_steps = ["a red circle"], 1
    tc.max_steps, tc.batch_size, tc.warmup_steps, tc.eval_every = 2, 4, 1, 2
    summary = pretrain_diffusion(args, tc)
    model = lingvis.load(tmp_path / "run")
    assert summary["step"] == 2 and model.config.denoiser_family == "dit" and model.denoiser.config.conv_out == 8
    assert model.config.scheduler["_class_name"] == "FlowMatchEulerDiscreteScheduler"
    assert model.image_size == 16 and (tmp_path / "run" / "samples").is_dir()


def test_latent_dit_with_a_clip_text_tower(data, tmp_path):
    """The DiT recipe over an autoencoder's latents (`vae-shapes-32`: 16px -> 8x8x4 here) and a frozen CLIP text
    tower: the DiT takes the latent channels (it has no out_channels field) and the tower's width as its text_dim."""
    root, _ = data
    torch.manual_seed(0)
    vae = lingvis.build("vae-shapes-32", sample_size=16)
    assert vae.config.latent_channels == 4 and vae.config.downscale == 2
    lingvis.save(vae, tmp_path / "vae")
    args = DiffusionPretrainArgs(out=str(tmp_path / "run"), data=str(root / "shapes" / "captions_train.json"),
                                 val_data=str(root / "shapes" / "captions_val.json"), preset="t2i-shapes-dit-conv-s",
                                 vae=str(tmp_path / "vae"), text_encoder=str(root / "clip"),
                                 sample_prompts=["a red circle"], sample_steps=1, objective="flow",
                                 overrides={"denoiser": dict(patch_size=2, dim=32, depth=1, heads=2, conv_out=8)})
    summary = pretrain_diffusion(args, cfg())
    model = lingvis.load(tmp_path / "run")
    assert summary["step"] == 2 and summary["space"] == "latent" and model.config.denoiser_family == "dit"
    assert model.denoiser.config.in_channels == 4 and model.denoiser.config.sample_size == 8
    assert model.denoiser.config.text_dim == 48 and model.image_size == 16
    assert torch.equal(model.vae.encoder.conv_in.weight, vae.encoder.conv_in.weight)
    clip = lingvis.load(root / "clip")
    assert texts_equal(model.text_encoder, clip.text)


def test_shapes_recipe_with_shape_twins_and_the_shape_loss(data, tmp_path):
    from lingvis.recipes.diffusion import shapes_recipe, twin_scenes
    from lingvis.tasks.shape_seg import ShapeSegConfig, ShapeSegmenter

    root, _ = data
    ShapeSegmenter(ShapeSegConfig(width=4, dilations=(1,))).save(tmp_path / "seg")
    args, tc = shapes_recipe(str(tmp_path / "run"), str(root / "shapes" / "captions_train.json"),
                             str(root / "shapes" / "captions_val.json"), minutes=15)
    args.overrides = {"denoiser": dict(sample_size=16, dim=32, depth=1, heads=2, text_dim=32, conv_out=8),
                      "text": dict(dim=32, depth=1, heads=4, mlp_hidden=64)}
    args.sample_prompts, args.sample_steps = ["a red circle"], 1
    args.twin_weight, args.shape_weight, args.shape_segmenter = 2.0, 0.1, str(tmp_path / "seg")
    tc.max_steps, tc.batch_size, tc.warmup_steps, tc.eval_every, tc.log_every = 2, 4, 1, 2, 1
    summary = pretrain_diffusion(args, tc)
    assert summary["step"] == 2
    logged = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert any("shape_ce" in r for r in logged if r.get("split") == "train")
    assert twin_scenes(args) == root / "shapes" / "scenes_train.jsonl"
    with pytest.raises(ValueError, match="scenes"):
        twin_scenes(DiffusionPretrainArgs(out=str(tmp_path), data=str(tmp_path / "captions_train.json")))
    args.shape_segmenter, args.twin_weight = None, 0.0
    with pytest.raises(ValueError, match="shape_segmenter"):
        pretrain_diffusion(args, tc)
