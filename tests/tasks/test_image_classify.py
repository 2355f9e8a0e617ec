"""ImageClassifyTask and the image classifier model: loss, metrics, predict, backbone transfer."""
import torch

import lingvis
from lingvis.models.image_classifier import with_backbone
from lingvis.tasks.image_classify import ImageClassifyTask


def test_loss_evaluate_and_predict():
    torch.manual_seed(0)
    model = lingvis.build("image_classifier", backbone=dict(image_size=32, patch_size=8, dim=32, depth=1, heads=4,
                                                             mlp_hidden=64), labels=["cat", "dog", "fox"])
    task = ImageClassifyTask()
    batch = task.collate([{"image": torch.randn(3, 32, 32), "label": i % 3} for i in range(6)] + [None])
    assert batch["pixel_values"].shape == (6, 3, 32, 32) and batch["labels"].tolist() == [0, 1, 2, 0, 1, 2]
    loss, m = task.loss(model, batch)
    assert abs(loss.item() - torch.log(torch.tensor(3.0)).item()) < 1e-4  # zero-initialised head: uniform
    loss.backward()
    assert model.head.weight.grad.abs().sum() > 0
    out = task.evaluate(model.eval(), [batch])
    assert set(out) == {"loss", "accuracy", "macro_f1"}
    top = model.predict(batch["pixel_values"][:2], top_k=2)
    assert len(top) == 2 and len(top[0]) == 2 and top[0][0][0] in ("cat", "dog", "fox")


def test_backbone_transfer_from_clip_tower():
    clip = lingvis.build("clip-nano").eval()
    model = with_backbone(clip.vision, ["a", "b"]).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(model.backbone(x), clip.vision(x))
    assert model.config.backbone_family == "vit" and model.config.num_labels == 2
