"""The shapes detector (validated on ground-truth renders), the GenEval-style checks, CLIP score and FID."""

import numpy as np
import pytest
import torch
from PIL import Image

from lingvis.data.shapes import render_scene
from lingvis.data.shapes_scene import HELD_OUT, Scene, ShapeObject
from lingvis.eval.geneval_shapes import CATEGORIES, make_items, oracle_scene
from lingvis.eval.shapes_detector import detect_shapes, validate_detector
from lingvis.eval.text_to_image import evaluate_text_to_image, frechet_distance, geneval_scores
from lingvis.models import registry


@pytest.mark.parametrize("size,n", [(32, 150), (64, 40)])
def test_detector_is_validated_on_ground_truth_renders(size, n):
    report = validate_detector(n, size, seed=1)
    assert report["scene_accuracy"] >= 0.99, report["failures"]
    assert report["colour_accuracy"] >= 0.99 and report["shape_accuracy"] >= 0.99


def test_detector_reads_one_scene():
    scene = Scene([ShapeObject("star", "orange", "large", 0.3, 0.3, 0.18),
                   ShapeObject("cross", "purple", "small", 0.75, 0.7, 0.1)])
    dets = detect_shapes(render_scene(scene, 48))
    assert [(d.colour, d.shape, d.size) for d in dets] == [("orange", "star", "large"), ("purple", "cross", "small")]
    assert abs(dets[0].cx - 0.3) < 0.03 and abs(dets[1].cy - 0.7) < 0.03
    assert detect_shapes(Image.new("RGB", (32, 32), "white")) == []
    with pytest.raises(ValueError, match="square"):
        detect_shapes(Image.new("RGB", (32, 16), "white"))


def test_geneval_checks_pass_oracle_renders_and_fail_wrong_ones():
    items = make_items(12, seed=3)
    assert [it.category for it in items[::12]] == list(CATEGORIES)
    assert make_items(12, seed=3)[5].prompt == items[5].prompt
    for it in items:
        assert not any((c, s) in HELD_OUT for c, s, _ in it.objects), it.prompt
    images = [render_scene(oracle_scene(it), 32) for it in items]
    assert geneval_scores(images, items) == {**{c: 1.0 for c in CATEGORIES}, "overall": 1.0}
    shuffled = images[1:] + images[:1]  # every prompt gets another prompt's scene
    assert geneval_scores(shuffled, items)["overall"] < 0.5
    blank = [Image.new("RGB", (32, 32), "white")] * len(items)
    assert geneval_scores(blank, items)["overall"] == 0.0


def test_frechet_distance_matches_scipy():
    linalg = pytest.importorskip("scipy.linalg")
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(300, 6, generator=g), torch.randn(200, 6, generator=g) * 1.5 + 0.3
    mu = (a.mean(0) - b.mean(0)).double()
    sa, sb = torch.cov(a.T.double()).numpy(), torch.cov(b.T.double()).numpy()
    want = float(mu @ mu) + float(sa.trace() + sb.trace() - 2 * linalg.sqrtm(sa @ sb).real.trace())
    assert frechet_distance(a, b) == pytest.approx(want, rel=1e-6)
    assert abs(frechet_distance(a, a)) < 1e-6


def test_evaluate_end_to_end_on_a_tiny_model(tmp_path):
    torch.manual_seed(0)
    from lingvis.recipes.clip_data import train_word_tokenizer

    tok = train_word_tokenizer([it.prompt for it in make_items(2)])
    model = registry.build("t2i-nano", text=dict(vocab_size=tok.vocab_size, context_length=16, dim=32, depth=1,
                                                  heads=4, mlp_hidden=64),
                           denoiser=dict(in_channels=3, out_channels=3, sample_size=32, block_out_channels=[16, 32],
                                         down_attention=[False, True], layers_per_block=1, attention_heads=2,
                                         cross_attention_dim=32, norm_num_groups=8))
    clip = registry.build("clip-nano", text=dict(vocab_size=tok.vocab_size, context_length=16, dim=32, depth=1,
                                                  heads=4, mlp_hidden=64), eos_token_id=tok.eos_id,
                          bos_token_id=tok.bos_id, pad_token_id=tok.pad_id).eval()
    report = evaluate_text_to_image(model, tok, per_category=1, steps=2, clip=clip, clip_tokenizer=tok, n_real=8,
                                    grid=str(tmp_path / "g.png"), detector_images=20)
    assert set(report["geneval"]) == {*CATEGORIES, "overall"} and report["images"] == 6
    assert 0.0 <= report["clip_score"] <= 100.0 and report["fid_clip"] >= 0.0
    assert Image.open(tmp_path / "g.png").size[1] > 32


class _OracleVelocity(torch.nn.Module):
    """A flow-matching 'denoiser' that knows the answers: the rectified-flow velocity (x_t - x0) / sigma toward
    fixed target images x0 (B, 3, H, W), one per prompt row (both guidance halves get the same rows)."""

    def __init__(self, x0: torch.Tensor):
        super().__init__()
        self.register_buffer("x0", x0)
        self.config = type("Config", (), {"sample_size": x0.shape[-1], "in_channels": x0.shape[1]})()
        self.anchor = torch.nn.Parameter(torch.zeros(()))  # sampling reads the device of a parameter

    def forward(self, x_t, t, states, mask):
        x0 = self.x0.repeat(x_t.shape[0] // self.x0.shape[0], 1, 1, 1)  # (B or 2B, 3, H, W)
        sigma = (torch.as_tensor(t, dtype=x_t.dtype) / 1000).clamp(min=1e-4)
        return (x_t - x0) / sigma


@pytest.mark.parametrize("guidance", [1.0, 4.0])
def test_sampler_and_scoring_path_recovers_oracle_targets(guidance):
    """The eval path (seeded noise, FlowMatch-Euler, guidance arithmetic, image conversion, prompt order, detector)
    scores 1.0 when the denoiser predicts the exact velocity to a correct render, and the seeded noise is gone."""
    from lingvis.diffusion.sampling import generate_images
    from lingvis.recipes.clip_data import train_word_tokenizer

    items = make_items(2, seed=5)
    tok = train_word_tokenizer([it.prompt for it in items])
    model = registry.build("t2i-nano", text=dict(vocab_size=tok.vocab_size, context_length=24, dim=32, depth=1,
                                                  heads=4, mlp_hidden=64),
                           denoiser=dict(in_channels=3, out_channels=3, sample_size=32, block_out_channels=[16, 32],
                                         down_attention=[False, True], layers_per_block=1, attention_heads=2,
                                         cross_attention_dim=32, norm_num_groups=8))
    renders = [render_scene(oracle_scene(it), 32) for it in items]
    x0 = torch.stack([torch.from_numpy(np.asarray(im)).permute(2, 0, 1) for im in renders])  # (12, 3, 32, 32) uint8
    model.denoiser = _OracleVelocity(x0.float() / 127.5 - 1)  # (12, 3, 32, 32) in [-1, 1]
    model.ema = None
    images = generate_images(model, tok, [it.prompt for it in items], steps=25, guidance_scale=guidance, seed=0,
                             progress=False)
    assert geneval_scores(images, items)["overall"] == 1.0
    assert max(np.abs(np.asarray(a, dtype=int) - np.asarray(b, dtype=int)).max()
               for a, b in zip(images, renders)) <= 1
