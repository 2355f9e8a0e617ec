"""REPA (tasks/repa.py): the alignment term is finite and trains the DiT's early blocks and the head, weight 0 leaves
the diffusion loss as it was, the encoder's features land on the DiT token grid, and a tower without a spatial
feature map or a missing run is refused by name; a REPA run checkpoints and resumes with its training-only head."""
import json

import pytest
import torch

import lingvis
from lingvis.data.shapes import generate_shapes
from lingvis.models import registry
from lingvis.models.text_to_image import TextToImage
from lingvis.recipes.clip_data import train_word_tokenizer
from lingvis.recipes.diffusion import DiffusionPretrainArgs, pretrain_diffusion
from lingvis.tasks.diffusion import DiffusionTask
from lingvis.tasks.repa import RepaEncoder, block_output, load_repa_encoder, repa_loss
from lingvis.train.config import TrainConfig

FLOW = {"_class_name": "FlowMatchEulerDiscreteScheduler", "shift": 1.0}
CNN = dict(image_size=24, stem_width=8, stem_stride=2, widths=[8, 16], depths=[1, 1], attn_heads=2, embed_dim=16)


def tiny_dit(depth: int = 3) -> TextToImage:
    torch.manual_seed(0)
    cfg = registry.make_config("text_to_image", dict(
        denoiser_family="dit", denoiser=dict(in_channels=3, sample_size=16, patch_size=4, dim=32, depth=depth,
                                             heads=2, text_dim=16),
        text_family="clip_text", text=dict(vocab_size=32, context_length=8, dim=16, depth=1, heads=2, mlp_hidden=32),
        scheduler=FLOW, ema=False))
    return TextToImage(cfg).train()


def cnn_clip():
    torch.manual_seed(1)
    return lingvis.build("clip-cnn-shapes", vision=CNN, text=dict(vocab_size=32, context_length=8, dim=16, depth=1,
                                                                 heads=2, mlp_hidden=32), projection_dim=16)


def batch(n: int = 4) -> dict:
    g = torch.Generator().manual_seed(3)
    return {"pixel_values": torch.rand(n, 3, 16, 16, generator=g) * 2 - 1,
            "input_ids": torch.randint(1, 32, (n, 8), generator=g), "attention_mask": torch.ones(n, 8)}


def test_encoder_features_land_on_the_token_grid():
    enc = RepaEncoder(cnn_clip().vision)
    x = batch()["pixel_values"]
    f = enc(x, 4)  # the 24px CNN's 6x6 map (stride 2, then 2) -> 4x4 DiT tokens
    assert f.shape == (4, 16, enc.dim) and enc.dim == 16 and not f.requires_grad
    # the same map as running the tower by hand at its size, then bilinear to 4x4
    px = (torch.nn.functional.interpolate((x + 1) / 2, size=(24, 24), mode="bicubic").clamp(0, 1) - enc.mean) / enc.std
    tokens = enc.tower.forward_features(px)  # (4, 36, 16)
    fmap = tokens.transpose(1, 2).reshape(4, 16, 6, 6)
    want = torch.nn.functional.interpolate(fmap, size=(4, 4), mode="bilinear").flatten(2).transpose(1, 2)
    assert torch.allclose(f, want, atol=1e-5)
    vit = lingvis.build("clip-nano").vision  # 32px, 8px patches: 4x4 tokens (+ a class token if it has one)
    assert RepaEncoder(vit)(x, 4).shape == (4, 16, 32)


def test_repa_loss_is_finite_and_trains_the_early_blocks_and_head():
    model, enc = tiny_dit(), RepaEncoder(cnn_clip().vision)
    model.add_repa_head(enc.dim)
    task = DiffusionTask(lambda t: t, FLOW, text_dropout=0.0, repa_weight=0.5, repa_depth=2, repa_encoder=enc)
    loss, logs = task.loss(model, batch())
    assert torch.isfinite(loss) and -1 <= logs["repa_cos"] <= 1
    loss.backward()
    grads = [p.grad for p in model.denoiser.blocks[0].parameters() if p.requires_grad]
    assert any(g is not None and float(g.abs().sum()) > 0 for g in grads)
    assert all(p.grad is not None and float(p.grad.abs().sum()) > 0 for p in model.repa_head.parameters())
    assert all(p.grad is None for p in enc.parameters())  # the encoder stays frozen
    # the alignment alone sends gradient into blocks 1..2 (block 3's output is not aligned)
    model.zero_grad()
    with block_output(model.denoiser, 2) as hidden:
        model(torch.randn(2, 3, 16, 16), torch.tensor([500.0, 700.0]), torch.randn(2, 8, 16))
    repa_loss(hidden[0], model.repa_head, enc(batch(2)["pixel_values"], 4)).backward()
    # adaLN-zero: at init the gradient reaches block 2's modulation (its gates) and the patch embedding under it
    assert any(p.grad is not None and float(p.grad.abs().sum()) > 0 for p in model.denoiser.blocks[1].parameters())
    assert float(model.denoiser.patch_embed.weight.grad.abs().sum()) > 0
    assert all(p.grad is None or float(p.grad.abs().sum()) == 0 for p in model.denoiser.blocks[2].parameters())


def test_weight_zero_is_todays_loss_and_the_term_adds_exactly():
    model, enc = tiny_dit(), RepaEncoder(cnn_clip().vision)
    model.add_repa_head(enc.dim)
    b = batch()
    plain = DiffusionTask(lambda t: t, FLOW, text_dropout=0.0)
    off = DiffusionTask(lambda t: t, FLOW, text_dropout=0.0, repa_weight=0.0, repa_encoder=enc)
    on = DiffusionTask(lambda t: t, FLOW, text_dropout=0.0, repa_weight=0.5, repa_encoder=enc)
    ref = plain._loss(model, b, torch.Generator().manual_seed(0))
    assert torch.equal(off.loss(model, b)[0] * 0 + off._loss(model, b, torch.Generator().manual_seed(0)), ref)
    assert off.loss(model, b)[1] == {}
    total, align = on._loss(model, b, torch.Generator().manual_seed(0), repa=True)
    assert float(align) != 0 and torch.allclose(total, ref + 0.5 * align, atol=1e-6)


def test_clear_errors():
    with pytest.raises(ValueError, match="no spatial feature map"):
        RepaEncoder(torch.nn.Linear(3, 3))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_repa_encoder("/nonexistent/clip_run")
    with pytest.raises(ValueError, match="repa_encoder"):
        DiffusionTask(lambda t: t, FLOW, repa_weight=0.5)
    with pytest.raises(ValueError, match="repa_depth"):
        with block_output(tiny_dit(2).denoiser, 3):
            pass
    with pytest.raises(ValueError, match="Transformer denoiser"):
        lingvis.build("t2i-nano").add_repa_head(16)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("repa")
    generate_shapes(root / "shapes", n_train=12, n_val=4, n_test=0, n_test_unseen=0, image_size=16)
    captions = json.loads((root / "shapes" / "captions_train.json").read_text())["annotations"]
    tok = train_word_tokenizer([a["caption"] for a in captions])
    lingvis.save(cnn_clip(), root / "clip", tokenizer=tok)
    return root


def run_args(root, out, **kw):
    return DiffusionPretrainArgs(out=str(out), data=str(root / "shapes" / "captions_train.json"),
                                 val_data=str(root / "shapes" / "captions_val.json"), preset="t2i-shapes-dit",
                                 objective="flow", sample_prompts=["a red circle"], sample_steps=1,
                                 overrides={"denoiser": dict(sample_size=16, dim=32, depth=2, heads=2, text_dim=16),
                                            "text": dict(dim=16, depth=1, heads=2, mlp_hidden=32)}, **kw)


def cfg(steps):
    return TrainConfig(max_steps=steps, batch_size=4, lr=1e-2, warmup_steps=1, eval_every=2, eval_batches=1,
                       log_every=1, progress=False, device="cpu")


def test_a_repa_run_saves_loads_and_resumes_with_its_head(data, tmp_path):
    args = run_args(data, tmp_path / "run", repa_weight=0.5, repa_depth=1, repa_encoder=str(data / "clip"))
    assert pretrain_diffusion(args, cfg(2))["step"] == 2
    logs = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert any("repa_cos" in r for r in logs if r.get("split") == "train")
    model = lingvis.load(tmp_path / "run")
    assert model.config.repa_dim == 16 and model.repa_head is not None
    summary = pretrain_diffusion(args, cfg(4), resume=True)
    assert summary["step"] == 4
    again = lingvis.load(tmp_path / "run")
    assert not torch.equal(again.repa_head[0].weight, model.repa_head[0].weight)  # the head kept training
    with pytest.raises(FileNotFoundError):
        pretrain_diffusion(run_args(data, tmp_path / "bad", repa_weight=0.5, repa_encoder=str(tmp_path / "x")),
                           cfg(1))
    with pytest.raises(ValueError, match="repa_encoder"):
        pretrain_diffusion(run_args(data, tmp_path / "bad2", repa_weight=0.5), cfg(1))


def test_centred_targets_are_the_batch_mean_deviation():
    model, enc = tiny_dit(), RepaEncoder(cnn_clip().vision)
    model.add_repa_head(enc.dim)
    b = batch()
    task = DiffusionTask(lambda t: t, FLOW, text_dropout=0.0, repa_weight=0.5, repa_encoder=enc, repa_center=True)
    plain = DiffusionTask(lambda t: t, FLOW, text_dropout=0.0, repa_weight=0.5, repa_encoder=enc)
    _, centred = task._loss(model, b, torch.Generator().manual_seed(0), repa=True)
    _, raw = plain._loss(model, b, torch.Generator().manual_seed(0), repa=True)
    with block_output(model.denoiser, 2) as hidden:
        plain._loss(model, b, torch.Generator().manual_seed(0))
    target = enc(b["pixel_values"], 4)  # (4, 16, 16), post-ReLU: all >= 0
    assert float(target.min()) >= 0
    want = repa_loss(hidden[0], model.repa_head, target - target.mean(dim=(0, 1), keepdim=True))
    assert torch.allclose(centred, want, atol=1e-6) and not torch.allclose(centred, raw)


def test_a_vit_layer_is_a_target_and_a_cnn_has_none():
    vit = lingvis.build("clip-nano").vision
    x = batch()["pixel_values"]
    enc = RepaEncoder(vit, layer=-2)
    px = ((torch.nn.functional.interpolate((x + 1) / 2, size=(32, 32), mode="bicubic").clamp(0, 1) - enc.mean)
          / enc.std)
    _, hidden = vit.forward_features(px, output_hidden_states=True)  # input + 1 block: -2 is the block's input
    assert torch.allclose(enc(x, 4), hidden[-2][:, 1:], atol=1e-5)
    with pytest.raises(ValueError, match="per-layer hidden states"):
        RepaEncoder(cnn_clip().vision, layer=-2)
