"""The region scene-graph model: output shapes, gradients to every parameter, given vs proposed boxes,
checkpoint round trip."""
from __future__ import annotations

import torch

import lingvis
from lingvis.models import registry
from lingvis.models import scene_graph as _sg  # noqa: F401  (registers the family)
from lingvis.models.scene_graph import pair_geometry


def test_forward_shapes_and_gradients():
    torch.manual_seed(0)
    m = registry.build("scene-graph-nano")
    px = torch.randn(2, 3, 64, 64)
    boxes = torch.tensor([[[0.1, 0.1, 0.3, 0.3], [0.5, 0.5, 0.9, 0.8], [0, 0, 1, 1]],
                          [[0.2, 0.6, 0.4, 0.9], [0.6, 0.1, 0.8, 0.3], [0, 0, 1, 1]]])
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    out = m(px, boxes, mask)
    assert out["type_logits"].shape == (2, 3, 5) and out["pred_logits"].shape == (2, 3, 3, 4)
    assert out["attr_logits"]["colour"].shape == (2, 3, 6) and out["attr_logits"]["size"].shape == (2, 3, 2)
    loss = out["type_logits"].sum() + out["pred_logits"].sum() + sum(v.sum() for v in out["attr_logits"].values())
    loss.backward()
    missing = [n for n, p in m.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []


def test_pair_geometry_is_relative():
    b = torch.tensor([[[0.1, 0.1, 0.2, 0.2], [0.5, 0.3, 0.7, 0.5]]])
    g = pair_geometry(b)
    assert g.shape == (1, 2, 2, 8)
    assert torch.allclose(g[0, 0, 1, :2], torch.tensor([0.45, 0.25])) and torch.allclose(g[0, 1, 0, :2], -g[0, 0, 1, :2])


def test_proposed_boxes_and_round_trip(tmp_path):
    from lingvis.data.images import normalize, to_tensor
    from lingvis.data.shapes import make_split_scenes, render_scene

    torch.manual_seed(0)
    m = registry.build("scene-graph-nano").eval()
    scene = make_split_scenes("val", 1, min_objects=3)[0]
    px = normalize(to_tensor(render_scene(scene, 64)), m.config.image_mean, m.config.image_std)[None]
    out = m(px)
    assert int(out["box_mask"].sum()) == 3
    back = lingvis.load(lingvis.save(m, tmp_path / "sg"))
    torch.testing.assert_close(back(px)["pred_logits"], out["pred_logits"])
