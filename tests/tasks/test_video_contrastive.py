import torch

from lingvis.models import registry
from lingvis.tasks.video_contrastive import VideoContrastiveTask

NANO_CLIP = {**registry.PRESETS["clip-nano"][1], "eos_token_id": 3}


def _tokenize(texts):
    ids = torch.tensor([[1 + (sum(map(ord, t)) + k) % 60 for k in range(6)] + [3] for t in texts])
    return ids, torch.ones_like(ids)


def test_collate_loss_and_retrieval_metrics():
    torch.manual_seed(0)
    model = registry.build("video-clip-nano", clip=NANO_CLIP)
    task = VideoContrastiveTask(_tokenize)
    samples = [{"video": torch.randn(4, 3, 32, 32), "text": f"clip {i}"} for i in range(4)]
    batch = task.collate([*samples, None])
    assert batch["pixel_values"].shape == (4, 4, 3, 32, 32) and batch["input_ids"].shape == (4, 7)
    loss, m = task.loss(model, batch)
    assert loss.item() > 0 and 0 <= m["batch_acc"] <= 1
    loss.backward()
    assert model.temporal.blocks[0].attn.proj.weight.grad.abs().sum() > 0  # the temporal head trains
    model.eval()
    ev = task.evaluate(model, [batch, batch])
    assert ev["pairs"] == 8.0 and {"t2v_R@1", "v2t_R@10", "t2v_MdR", "v2t_MnR", "mean_R@1"} <= set(ev)
    # every video appears twice with identical embeddings: a tie, which counts against the model
    assert ev["t2v_R@1"] == 0.0 and ev["t2v_MdR"] >= 2


def test_collate_flattens_hard_negative_groups():
    task = VideoContrastiveTask(_tokenize)
    groups = [[{"video": torch.randn(4, 3, 32, 32), "text": f"clip {g} {i}"} for i in range(3)] for g in range(2)]
    batch = task.collate([groups[0], None, groups[1][:1]])
    assert batch["pixel_values"].shape == (4, 4, 3, 32, 32) and batch["input_ids"].shape[0] == 4
