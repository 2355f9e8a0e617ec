"""The llava patch probes: labels land in the patch holding each centre, the probe fits what is linear, and
a random tiny llava folder runs end to end."""
import torch

import lingvis
from benchmarks import llava_probe as probe
from lingvis.data.shapes_scene import Scene, ShapeObject


def test_labels_mark_the_centre_patch():
    scene = Scene([ShapeObject("star", "blue", "small", 0.9, 0.1, 0.1),
                   ShapeObject("circle", "red", "large", 0.2, 0.6, 0.18)])
    shape, colour = probe.patch_labels([scene], 3)
    assert shape[0, 2] == 1 + probe.SHAPES.index("star") and shape[0, 3] == 1 + probe.SHAPES.index("circle")
    assert colour[0, 2] == 3 and colour[0, 3] == 1 and int((shape > 0).sum()) == 2


def test_probe_fits_a_linear_rule():
    torch.manual_seed(0)
    x = torch.randn(400, 5)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0).long() * 2
    pred = probe.probe(x[:300], y[:300], x[300:], y[300:])
    assert (pred == y[300:]).float().mean() > 0.9


def test_run_on_a_tiny_model(tmp_path):
    torch.manual_seed(0)
    lingvis.save(lingvis.build("llava-nano"), tmp_path / "m")
    out = probe.run([str(tmp_path / "m")], n_train=12, n_test=4)
    assert set(out) == {"pixels", str(tmp_path / "m")}
    assert all(0 <= v <= 100 for r in out.values() for v in r.values())


def test_run_on_a_bare_tower(tmp_path):
    """A ViT folder (e.g. the dense tower) is read as llava would read it: hidden state -2, no class token."""
    torch.manual_seed(0)
    lingvis.save(lingvis.build("vit-nano"), tmp_path / "v")
    model = probe.load_for_probe(str(tmp_path / "v"))
    assert model.image_features(torch.randn(2, 3, 32, 32)).shape == (2, 16, 32)  # 4 x 4 patches, width 32
    out = probe.run([str(tmp_path / "v")], n_train=12, n_test=4)
    assert set(out) == {"pixels", str(tmp_path / "v")}
    assert all(0 <= v <= 100 for r in out.values() for v in r.values())


def test_dense_tower_tunes_and_saves_a_vit(tmp_path):
    from benchmarks.llava_dense_tower import tune_tower

    torch.manual_seed(0)
    lingvis.save(lingvis.build("llava-nano"), tmp_path / "m")
    r = tune_tower(str(tmp_path / "m"), str(tmp_path / "tower"), steps=3, n_scenes=8, batch=4)
    tower = lingvis.load(tmp_path / "tower")
    assert tower.family == "vit" and r["steps"] == 3
    assert not tower.patch_embed.weight.equal(lingvis.load(tmp_path / "m").vision.patch_embed.weight)
