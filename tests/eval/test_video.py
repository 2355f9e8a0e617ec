import pytest
import torch

from lingvis.eval.video import topk_accuracy, video_retrieval_metrics


def test_recall_median_and_mean_rank():
    # 3 videos, 4 texts; text 3 also describes video 0
    sim = torch.tensor([[0.9, 0.1, 0.8, 0.2],
                        [0.5, 0.7, 0.1, 0.1],
                        [0.6, 0.2, 0.3, 0.9]])
    m = video_retrieval_metrics(sim, [0, 1, 2, 0], ks=(1, 2))
    # t2v ranks (1-based): t0 -> 1, t1 -> 1, t2 -> 2 (video 0 scores 0.8 > 0.3), t3 -> 2 (video 2 scores 0.9)
    assert m["t2v_R@1"] == 0.5 and m["t2v_R@2"] == 1.0
    assert m["t2v_MdR"] == 1.5 and m["t2v_MnR"] == 1.5
    # v2t: video 0 best own text 0.9 -> 1; video 1 -> 1; video 2 own text 2 (0.3) behind 0.9 (t3) and 0.6 (t0) -> 3
    assert m["v2t_R@1"] == pytest.approx(2 / 3) and m["v2t_MdR"] == 1.0 and m["v2t_MnR"] == pytest.approx(5 / 3)
    assert m["rsum"] == pytest.approx(0.5 + 1.0 + 2 / 3 + 2 / 3)


def test_ties_count_against_the_model():
    m = video_retrieval_metrics(torch.ones(3, 3), [0, 1, 2])
    assert m["t2v_R@1"] == 0.0 and m["t2v_MdR"] == 3.0


def test_topk_accuracy_caps_k_at_the_class_count():
    scores = torch.tensor([[0.1, 0.5, 0.4], [0.8, 0.1, 0.1]])
    assert topk_accuracy(scores, [2, 0]) == {"top1": 0.5, "top5": 1.0}
    with pytest.raises(ValueError, match="2-D"):
        topk_accuracy(torch.zeros(3), [0])
