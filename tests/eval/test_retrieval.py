import pytest
import torch

from lingvis.eval.retrieval import retrieval_ranks, retrieval_recall, zero_shot_accuracy


def test_hand_computed_recall():
    # 2 images, 3 texts; texts 0,1 describe image 0, text 2 describes image 1
    sim = torch.tensor([[0.9, 0.1, 0.8],
                        [0.2, 0.5, 0.3]])  # (I=2, T=3)
    gt = [0, 0, 1]
    t2i, i2t = retrieval_ranks(sim, gt)
    assert t2i.tolist() == [0, 1, 1]  # text 1 prefers image 1, text 2 prefers image 0
    assert i2t.tolist() == [0, 1]     # image 1's best text is text 1 (wrong), then text 2
    r = retrieval_recall(sim, gt, ks=(1, 2))
    assert r["t2i_R@1"] == pytest.approx(1 / 3) and r["t2i_R@2"] == 1.0
    assert r["i2t_R@1"] == pytest.approx(0.5) and r["i2t_R@2"] == 1.0
    assert r["rsum"] == pytest.approx(1 / 3 + 1 + 0.5 + 1)


def test_ties_count_against():
    r = retrieval_recall(torch.zeros(3, 3), [0, 1, 2], ks=(1, 3))
    assert r["t2i_R@1"] == 0.0 and r["t2i_R@3"] == 1.0


def _naive(sim, gt, k):
    t2i = sum(int(gt[t] in sim[:, t].argsort(descending=True)[:k].tolist()) for t in range(sim.shape[1]))
    i2t = 0
    for i in range(sim.shape[0]):
        top = sim[i].argsort(descending=True)[:k].tolist()
        i2t += int(any(gt[t] == i for t in top))
    return t2i / sim.shape[1], i2t / sim.shape[0]


def test_matches_sort_based_reference():
    g = torch.Generator().manual_seed(0)
    images, per_image = 20, 5
    gt = [i for i in range(images) for _ in range(per_image)]  # COCO-style 5 captions per image
    img = torch.randn(images, 16, generator=g)
    txt = img.repeat_interleave(per_image, 0) + 1.5 * torch.randn(images * per_image, 16, generator=g)
    sim = torch.nn.functional.normalize(img, dim=-1) @ torch.nn.functional.normalize(txt, dim=-1).T  # (I, T)
    r = retrieval_recall(sim, gt, ks=(1, 5, 10))
    for k in (1, 5, 10):
        t2i, i2t = _naive(sim, gt, k)
        assert r[f"t2i_R@{k}"] == pytest.approx(t2i) and r[f"i2t_R@{k}"] == pytest.approx(i2t)
    assert 0 < r["t2i_R@1"] < r["t2i_R@10"] <= 1


def test_zero_shot_accuracy():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(50, 10, generator=g)
    labels = torch.randint(0, 10, (50,), generator=g)
    acc = zero_shot_accuracy(logits, labels, ks=(1, 5))
    assert acc["top1"] == pytest.approx((logits.argmax(1) == labels).float().mean().item())
    top5 = (logits.topk(5, dim=1).indices == labels[:, None]).any(1).float().mean().item()
    assert acc["top5"] == pytest.approx(top5)
    assert zero_shot_accuracy([[0.0, 1.0], [2.0, 1.0]], [1, 1])["top1"] == 0.5


def test_errors():
    with pytest.raises(ValueError, match="text_to_image has 2 entries but similarity has 3 texts"):
        retrieval_ranks(torch.zeros(2, 3), [0, 1])
    with pytest.raises(ValueError, match=r"values must lie in \[0, 2\)"):
        retrieval_ranks(torch.zeros(2, 2), [0, 2])
    with pytest.raises(ValueError, match="images without any caption"):
        retrieval_ranks(torch.zeros(3, 2), [0, 1])
    with pytest.raises(ValueError, match="expected a 2-D tensor, got shape"):
        zero_shot_accuracy(torch.zeros(4), [0])
    with pytest.raises(ValueError, match="labels has 1 entries but logits has 2 rows"):
        zero_shot_accuracy(torch.zeros(2, 3), [0])
