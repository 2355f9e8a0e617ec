"""Shape twins: the twin scene and caption, the dataset wrapper and the diffusion task's pair-difference loss."""
import json
import random

import pytest
import torch

from lingvis.data.shape_twins import ShapeTwins, twin_of
from lingvis.data.shapes_render import render_scene
from lingvis.data.shapes_scene import Scene, ShapeObject, is_held_out
from lingvis.tasks.diffusion import DiffusionTask

FLOW = {"_class_name": "FlowMatchEulerDiscreteScheduler", "shift": 1.0}


def _scene() -> Scene:
    return Scene([ShapeObject("circle", "red", "large", 0.3, 0.5, 0.18),
                  ShapeObject("star", "red", "small", 0.75, 0.5, 0.10)])


def test_twin_changes_one_named_object_and_its_caption():
    rng = random.Random(0)
    seen = set()
    for _ in range(40):
        twin, text = twin_of(_scene(), "a large red circle to the left of a small red star", rng)
        changed = [(a, b) for a, b in zip(_scene().objects, twin.objects) if a != b]
        assert len(changed) == 1
        old, new = changed[0]
        assert (old.colour, old.size, old.cx, old.cy, old.r) == (new.colour, new.size, new.cx, new.cy, new.r)
        assert new.shape not in ("circle", "star") and not is_held_out(new.colour, new.shape)
        assert text.count("red " + new.shape) == 1 and text.count("red " + old.shape) == 0
        seen.add((old.shape, new.shape))
    assert {o for o, _ in seen} == {"circle", "star"}  # either object can be the one changed
    twin, text = twin_of(_scene(), "a large red circle", rng)  # only the named object is changed
    assert twin.objects[1].shape == "star" and "circle" not in text
    with pytest.raises(ValueError, match="names none"):
        twin_of(_scene(), "two shapes", rng)


class _Base:
    def __init__(self, groups, items):
        self.groups, self.items = groups, items

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


class _Rec:
    def __init__(self, name):
        self.image_path, self.key = None, name


def test_dataset_renders_the_twin_as_the_split_draws_images(tmp_path):
    scene = Scene([ShapeObject("square", "blue", "large", 0.5, 0.5, 0.18)])
    path = tmp_path / "scenes_train.jsonl"
    path.write_text(json.dumps({"file_name": "train_000000.png", **scene.to_dict()}) + "\n")
    pixels = torch.frombuffer(bytearray(render_scene(scene, 32).tobytes()), dtype=torch.uint8)
    image = pixels.view(32, 32, 3).permute(2, 0, 1).float() / 127.5 - 1
    ds = ShapeTwins(_Base([[_Rec("train_000000.png")]], [{"image": image, "text": "a large blue square"}]), path, 32)
    item = ds[0]
    assert item["text"] == "a large blue square" and item["twin_text"].startswith("a large blue ")
    new = item["twin_text"].split()[-1]
    assert new != "square"
    again = Scene([ShapeObject(new, "blue", "large", 0.5, 0.5, 0.18)])
    want = torch.frombuffer(bytearray(render_scene(again, 32).tobytes()), dtype=torch.uint8)
    assert torch.equal(item["twin_image"], want.view(32, 32, 3).permute(2, 0, 1).float() / 127.5 - 1)
    with pytest.raises(ValueError, match="no scene"):
        ShapeTwins(_Base([[_Rec("other.png")]], [{}]), path, 32)


class _Twins(torch.nn.Module):
    """Predicts `out` whatever its input; records the noisy inputs and timesteps."""

    def __init__(self, out):
        super().__init__()
        self.out, self.calls = out, []

    def to_latents(self, x, g=None):
        return x

    def encode_text(self, ids, mask):
        return torch.zeros(len(ids), 2, 4), None

    def update_ema(self):
        pass

    def forward(self, x_t, t, s, m):
        self.calls.append((x_t, t))
        return self.out


def test_twin_batches_share_noise_and_the_difference_is_charged():
    task = DiffusionTask(lambda texts: (torch.zeros(len(texts), 2), None), FLOW, text_dropout=0.0,
                         timesteps="logit_normal", twin_weight=2.0)
    a, b = torch.ones(3, 4, 4), -torch.ones(3, 4, 4)
    batch = task.collate([{"image": a, "text": "x", "twin_image": b, "twin_text": "y"},
                          {"image": b, "text": "z", "twin_image": a, "twin_text": "w"}])
    assert batch["pixel_values"].shape == (4, 3, 4, 4) and torch.equal(batch["pixel_values"][2], b)
    assert torch.equal(batch["twin_keep"], torch.ones(2))
    den = _Twins(torch.zeros(4, 3, 4, 4))
    loss = float(task._loss(den, batch, torch.Generator().manual_seed(0)))
    x_t, t = den.calls[-1]
    assert torch.equal(t[:2], t[2:])
    sigma = (t[:2] / 1000).view(2, 1, 1, 1)
    noise = (x_t[:2] - (1 - sigma) * batch["pixel_values"][:2]) / sigma  # the pair's shared noise
    assert torch.allclose(x_t[2:], (1 - sigma) * batch["pixel_values"][2:] + sigma * noise, atol=1e-5)
    target = noise.repeat(2, 1, 1, 1) - batch["pixel_values"]  # (4, 3, 4, 4); the prediction is 0
    mse = float(target.square().mean())
    diff = float((target[:2] - target[2:]).square().mean())  # = (x0_a - x0_b)^2 = 4
    assert diff == pytest.approx(4.0)
    assert loss == pytest.approx(mse + 2.0 * diff / 2, rel=1e-4)
    plain = DiffusionTask(lambda texts: (torch.zeros(len(texts), 2), None), FLOW, text_dropout=0.0,
                          timesteps="logit_normal")
    assert float(plain._loss(den, batch, torch.Generator().manual_seed(0))) == pytest.approx(mse, rel=1e-4)
    batch["twin_keep"] = torch.zeros(2)  # dropped captions: no difference term
    assert float(task._loss(den, batch, torch.Generator().manual_seed(0))) == pytest.approx(mse, rel=1e-4)
    with pytest.raises(ValueError, match="twin_weight"):
        DiffusionTask(lambda x: x, FLOW, twin_weight=-1.0)


def test_twin_input_same_reads_the_original_noisy_image_and_charges_the_x0_difference():
    def tok(texts):
        return torch.zeros(len(texts), 2), None

    a, b = torch.ones(3, 4, 4), -torch.ones(3, 4, 4)
    samples = [{"image": a, "text": "x", "twin_image": b, "twin_text": "y"},
               {"image": b, "text": "z", "twin_image": a, "twin_text": "w"}]
    for min_sigma in (0.0, 0.999):
        task = DiffusionTask(tok, FLOW, text_dropout=0.0, timesteps="logit_normal", twin_weight=3.0,
                             twin_input="same", twin_min_sigma=min_sigma)
        batch = task.collate(samples)
        den = _Twins(torch.zeros(4, 3, 4, 4))
        loss = float(task._loss(den, batch, torch.Generator().manual_seed(0)))
        x_t, t = den.calls[-1]
        assert torch.equal(x_t[2:], x_t[:2])  # the twins see the originals' noisy images
        sigma = t[:2] / 1000
        noise = (x_t[:2] - (1 - sigma.view(2, 1, 1, 1)) * batch["pixel_values"][:2]) / sigma.view(2, 1, 1, 1)
        mse = float((noise - batch["pixel_values"][:2]).square().mean())  # the originals' plain loss, prediction 0
        d_true = (batch["pixel_values"][2:] - batch["pixel_values"][:2]).square().mean(dim=(1, 2, 3))  # (2,) = 4
        term = float((d_true * (sigma >= min_sigma).float()).mean())  # the predictions' difference is 0
        assert loss == pytest.approx(mse + 3.0 * term, rel=1e-4)
    assert term == 0.0  # min_sigma 0.999: no pair is charged
    with pytest.raises(ValueError, match="twin_input"):
        DiffusionTask(tok, FLOW, twin_input="both")
    with pytest.raises(ValueError, match="twin_min_sigma"):
        DiffusionTask(tok, FLOW, twin_min_sigma=1.0)
