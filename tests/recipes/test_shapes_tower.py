"""Dense tower tuning on the shapes ground truth (`lingvis.recipes.shapes_tower`): every patch gets the labels of
the object centred in it and of the object covering it (with that object's place), the heads read the same tokens
as LLaVA's projector, and the tuned ViT is saved as a `--vision` folder with its held-out scores."""
import json

import pytest
import torch

import lingvis
from lingvis.data.shapes import generate_shapes
from lingvis.data.shapes_scene import COLOURS, SHAPES, Scene, ShapeObject
from lingvis.recipes.shapes_tower import HEADS, DenseTowerArgs, feature_tokens, patch_targets, tune_tower


def test_targets_mark_centre_cover_and_place():
    scene = Scene([ShapeObject("star", "blue", "small", 0.9, 0.1, 0.1),
                   ShapeObject("circle", "red", "large", 0.25, 0.6, 0.2)])
    t = {k: v[0].reshape(4, 4) for k, v in patch_targets([scene], 4).items()}  # patch centres 0.125 .. 0.875
    star, circle = 1 + SHAPES.index("star"), 1 + SHAPES.index("circle")
    assert t["centre_shape"][0, 3] == star and t["centre_shape"][2, 1] == circle
    assert int((t["centre_shape"] > 0).sum()) == 2 and t["centre_size"][0, 3] == 1 and t["centre_size"][2, 1] == 2
    assert t["centre_colour"][0, 3] == 1 + list(COLOURS).index("blue")
    # the circle (r 0.2 around (0.25, 0.6)) covers the patch centres within 0.2: (0.125|0.375, 0.625)
    covered = t["cover_shape"] == circle
    assert covered[2, 0] and covered[2, 1] and not covered[0, 0] and not covered[2, 2]
    assert (t["cover_colour"][covered] == 1 + list(COLOURS).index("red")).all()
    # the circle: column 1 of 6 (left third), row 3 of 6 (middle third) -> region "left" = 1 + 1 * 3 + 0
    assert (t["cover_x"][covered] == 2).all() and (t["cover_y"][covered] == 4).all()
    assert (t["cover_region"][covered] == 1 + 3).all()
    # the star's disc (r 0.1 around (0.9, 0.1)) holds the patch centre (0.875, 0.125): top right, region 3
    assert t["cover_shape"][0, 3] == star and t["cover_region"][0, 3] == 1 + 2
    assert set(t) == set(HEADS) and all(int(v.max()) < HEADS[k] for k, v in t.items())


def test_feature_tokens_are_what_llava_reads():
    torch.manual_seed(0)
    model = lingvis.build("llava-nano").eval()
    model.projector = torch.nn.Identity()
    px = torch.randn(2, 3, model.vision.config.image_size, model.vision.config.image_size)
    with torch.no_grad():
        assert torch.allclose(feature_tokens(model.vision, px, model.config.vision_feature_layer),
                              model.image_features(px), atol=1e-6)


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    out = tmp_path_factory.mktemp("shapes")
    generate_shapes(out, n_train=24, n_val=6, n_test=1, n_test_unseen=0)
    return out


def test_tune_saves_a_tower_that_learned(shapes, tmp_path):
    torch.manual_seed(0)
    log = tune_tower(DenseTowerArgs(tower="vit-nano", data=str(shapes), out=str(tmp_path / "t"), steps=40, batch=8,
                                    lr=3e-3, n_scenes=24, n_val=6))
    tower = lingvis.load(tmp_path / "t")
    assert tower.family == "vit" and tower.config.grid == 4
    saved = json.loads((tmp_path / "t" / "dense.json").read_text())
    assert saved["after"] == log["after"] and set(log["after"]) == {"centre_f1", *HEADS}
    assert all(0 <= v <= 100 for v in log["after"].values())
    first, last = log["loss"][0][1], log["loss"][-1][1]
    assert last < 0.5 * first  # 40 steps on 24 scenes: the heads and the tower fit them
    again = tune_tower(DenseTowerArgs(tower=str(tmp_path / "t"), data=str(shapes), out=str(tmp_path / "t2"),
                                      steps=1, batch=2, n_scenes=4, n_val=2))  # a tower folder tunes further
    assert again["args"]["tower"] == str(tmp_path / "t")


def test_bad_arguments(shapes, tmp_path):
    with pytest.raises(ValueError, match="steps"):
        tune_tower(DenseTowerArgs(tower="vit-nano", data=str(shapes), out=str(tmp_path / "t"), steps=0))
    with pytest.raises(ValueError, match="not a ViT"):
        tune_tower(DenseTowerArgs(tower="gpt-nano", data=str(shapes), out=str(tmp_path / "t"), steps=1))
