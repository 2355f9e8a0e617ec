"""Video classification task: batching, clip-averaged evaluation, and a tiny order-dependent learning check."""
import torch

from lingvis.models import registry
from lingvis.tasks.video_classify import VideoClassifyTask

FRAME = dict(image_size=16, patch_size=8, dim=32, depth=1, heads=4, mlp_hidden=64)


def _order_data(n=12, T=4, seed=0):
    """Class 0: a random clip; class 1: the same frames reversed. Per-frame content is identical."""
    g = torch.Generator().manual_seed(seed)
    clips = torch.randn(n, T, 3, 16, 16, generator=g)
    return [{"video": c, "label": 0} for c in clips] + [{"video": c.flip(0), "label": 1} for c in clips]


def _train(model, task, samples, steps=150):
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    batch = task.collate(samples)
    model.train()
    for _ in range(steps):
        loss, _ = task.loss(model, batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    return task.evaluate(model, [batch])


def test_collate_and_clip_averaged_evaluation():
    task = VideoClassifyTask()
    samples = [{"video": torch.randn(2, 4, 3, 16, 16), "label": i % 3} for i in range(5)]  # 2 clips each
    batch = task.collate([samples[0], None, *samples[1:]])
    assert batch["pixel_values"].shape == (5, 2, 4, 3, 16, 16) and batch["labels"].tolist() == [0, 1, 2, 0, 1]
    model = registry.build("video-classifier-nano", labels=["a", "b", "c"],
                           backbone=dict(frame=FRAME, temporal_depth=1, max_frames=8)).eval()
    m = task.evaluate(model, [batch])
    assert m["videos"] == 5 and m["accuracy"] == 0.0  # a fresh (zero) head ties every class: ties count against
    assert m["top5"] == 1.0


def test_temporal_head_learns_order_that_mean_pooling_cannot_see():
    torch.manual_seed(0)
    task, data = VideoClassifyTask(), _order_data()
    seq = registry.build("video-classifier-nano", backbone=dict(frame=FRAME, temporal_depth=1, max_frames=8))
    assert _train(seq, task, data)["accuracy"] == 1.0
    torch.manual_seed(0)
    mean = registry.build("video-classifier-nano", backbone=dict(frame=FRAME, temporal="mean", max_frames=8))
    assert _train(mean, task, data)["accuracy"] == 0.5  # each clip and its reversal get the same score
