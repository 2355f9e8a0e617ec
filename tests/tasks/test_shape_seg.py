"""The shape loss: the renderer's per-pixel shape labels, the frozen segmenter and its term in the diffusion task."""
import pytest
import torch
import torch.nn.functional as F

from lingvis.data.shapes_render import render_label_map
from lingvis.data.shapes_scene import SHAPES, Scene, ShapeObject
from lingvis.tasks.diffusion import DiffusionTask
from lingvis.tasks.shape_seg import (
    ShapeSegConfig,
    augment,
    load_shape_segmenter,
    render_batch,
    shape_seg_loss,
    train_shape_segmenter,
)

FLOW = {"_class_name": "FlowMatchEulerDiscreteScheduler", "shift": 1.0}
VP = {"_class_name": "DDIMScheduler", "beta_schedule": "squaredcos_cap_v2", "prediction_type": "v_prediction"}


class _OffsetOracle(torch.nn.Module):
    """The exact rectified-flow velocity toward known clean images x0 plus `where`; records its timesteps."""

    def __init__(self, x0, where):
        super().__init__()
        self.x0, self.where, self.seen = x0, where, []  # (B, 3, H, W), (B, 1, H, W)

    def to_latents(self, x, g=None):
        return x

    def update_ema(self):
        pass

    def encode_text(self, ids, mask):
        return torch.zeros(len(ids), 2, 4), None

    def forward(self, x_t, t, s, m):
        self.seen.append(t)
        sigma = (t / 1000)[:, None, None, None]
        noise = (x_t - (1 - sigma) * self.x0) / sigma
        return noise - self.x0 + self.where


def _scene(shape: str, cx: float = 0.3, size: str = "large") -> Scene:
    return Scene([ShapeObject(shape, "red", size, cx, 0.5, 0.18 if size == "large" else 0.10)])


def test_label_map_marks_the_object_pixels_with_its_shape():
    for k, shape in enumerate(SHAPES):
        lab = torch.tensor(render_label_map(_scene(shape), 32))  # (32, 32)
        assert lab[16, int(0.3 * 32)] == 1 + k  # the centre pixel
        assert lab[0, 31] == 0 and lab[31, 0] == 0  # far from the object
        assert set(lab.unique().tolist()) == {0, 1 + k}
    area = {s: int((torch.tensor(render_label_map(_scene(s), 32)) > 0).sum()) for s in SHAPES}
    assert area["circle"] > area["square"] > area["star"]  # r = 5.8 px: pi r^2 = 105, (1.5 r)^2 = 75, star < 40
    assert 85 < area["circle"] < 125
    images, labels = render_batch([_scene("square"), _scene("star", 0.7, "small")])
    assert images.shape == (2, 3, 32, 32) and labels.shape == (2, 32, 32)
    red = (images[:, 0] > 0.5) & (images[:, 1] < -0.3)  # (2, 32, 32) pixels mostly the object's red
    assert bool((labels[red] > 0).float().mean() > 0.9)  # the labels sit on the drawn object
    with pytest.raises(ValueError, match="unknown shape"):
        render_label_map(Scene([ShapeObject("heart", "red", "large", 0.5, 0.5, 0.18)]))


def test_segmenter_learns_shapes_and_round_trips(tmp_path):
    torch.manual_seed(0)
    model, info = train_shape_segmenter(n_scenes=64, steps=40, batch=16, config=ShapeSegConfig(width=8), log=None)
    assert not any(p.requires_grad for p in model.parameters()) and not model.training
    assert 0.02 < info["object_pixel_share"] < 0.3 and info["steps"] == 40
    images, _ = render_batch([_scene("cross")])
    again = load_shape_segmenter(model.save(tmp_path / "seg"))
    assert torch.equal(again(images), model(images)) and again.config == model.config
    with pytest.raises(FileNotFoundError, match="t2i_shape_seg"):
        load_shape_segmenter(tmp_path / "none")
    blurred = augment(images.repeat(8, 1, 1, 1), torch.Generator().manual_seed(0))
    assert blurred.shape == (8, 3, 32, 32) and float((blurred - images).abs().mean()) > 0.01


class _RedSegmenter(torch.nn.Module):
    """Class 1 (an object) where the green channel is low, class 0 (background) where it is high: logits +-4 g."""

    def forward(self, x):
        return torch.stack([4 * x[:, 1], -4 * x[:, 1]], dim=1)  # (B, 2, H, W)


def test_shape_seg_loss_is_on_object_pixels_and_reaches_the_estimate():
    seg = _RedSegmenter()
    x0 = torch.ones(2, 3, 4, 4)
    x0[0, 1:, :, 3:] = -1.0  # image 0: a red column; image 1: white only
    est = x0.clone().requires_grad_(True)
    loss = shape_seg_loss(seg, est, x0)  # (2,)
    assert float(loss[0].detach()) == pytest.approx(float(F.softplus(torch.tensor(-8.0))), rel=1e-4)
    assert float(loss[1]) == 0.0  # no object pixel
    worse = x0.clone()
    worse[0, 1, :, 3:] = 0.0  # the column's green half way to white: the segmenter is less sure
    assert float(shape_seg_loss(seg, worse, x0)[0]) == pytest.approx(float(F.softplus(torch.tensor(0.0))), rel=1e-4)
    loss.sum().backward()
    assert float(est.grad[0, 1, :, 3:].abs().sum()) > 0 and float(est.grad[:, :, :, :3].abs().sum()) == 0


def test_shape_weight_adds_the_term_in_training_only():
    x0 = torch.ones(2, 3, 4, 4)
    x0[:, 1:, :, 3:] = -1.0
    obj = (x0[:, 1:2] < 0).float()  # (2, 1, 4, 4)
    batch = {"pixel_values": x0, "input_ids": torch.zeros(2, 2), "attention_mask": None}
    den = _OffsetOracle(x0, -obj)  # velocity -1 on the object: x0 estimate = x0 + sigma there (greener)
    plain = float(DiffusionTask(lambda x: x, FLOW, timesteps="logit_normal")._loss(den, batch,
                                                                                  torch.Generator().manual_seed(0)))
    task = DiffusionTask(lambda x: x, FLOW, timesteps="logit_normal", shape_weight=0.5,
                         shape_segmenter=_RedSegmenter())
    den.seen.clear()
    shaped = float(task._loss(den, batch, torch.Generator().manual_seed(0)))
    sigma = den.seen[-1] / 1000  # (2,)
    assert plain == pytest.approx(0.25, abs=1e-4)  # the offset on 4 of 16 pixels
    assert shaped == pytest.approx(0.25 + 0.5 * float(F.softplus(-8 * (1 - sigma)).mean()), rel=1e-4)
    assert task.loss(den, batch)[1].keys() == {"shape_ce"}
    den.eval()  # validation: the diffusion loss alone
    assert float(task._loss(den, batch, torch.Generator().manual_seed(0))) == pytest.approx(plain, abs=1e-6)
    den.train()
    high_only = DiffusionTask(lambda x: x, FLOW, timesteps="logit_normal", shape_weight=0.5,
                              shape_segmenter=_RedSegmenter(), shape_max_sigma=min(float(sigma.min()) - 1e-3, 1e-3))
    assert float(high_only._loss(den, batch, torch.Generator().manual_seed(0))) == pytest.approx(plain, abs=1e-6)
    with pytest.raises(ValueError, match="shape_segmenter"):
        DiffusionTask(lambda x: x, FLOW, shape_weight=1.0)
    with pytest.raises(ValueError, match="flow matching"):
        DiffusionTask(lambda x: x, VP, shape_weight=1.0, shape_segmenter=_RedSegmenter())
    with pytest.raises(ValueError, match="shape_max_sigma"):
        DiffusionTask(lambda x: x, FLOW, shape_max_sigma=0.0)
    with pytest.raises(ValueError, match="shape_weight"):
        DiffusionTask(lambda x: x, FLOW, shape_weight=-1.0)
