"""Link prediction: KGE scores against PyKEEN's interaction functions, the filtered rank evaluator against
PyKEEN's RankBasedEvaluator on the same scores, the TSV reader and a short training run."""
from __future__ import annotations

import pytest
import torch

from lingvis.kg.completion import (CompletionArgs, KGData, LinkPredictionTask, filter_index, filtered_scores,
                                   metrics_from_ranks, rank_metrics, ranks_from_scores, read_tsv_folder,
                                   rules_graph, split_triples, train_completion)
from lingvis.models import registry
from lingvis.train.config import TrainConfig


def _model(kind: str, n_ent: int = 13, n_rel: int = 5, dim: int = 7, image_dim: int = 0, p_norm: int = 2):
    torch.manual_seed(0)
    return registry.build("kge", n_entities=n_ent, n_relations=n_rel, dim=dim, model=kind, p_norm=p_norm,
                          image_dim=image_dim)


def test_filtered_ranks_match_pykeen_evaluator():
    evaluation = pytest.importorskip("pykeen.evaluation")
    from pykeen.constants import LABEL_HEAD, LABEL_TAIL  # noqa: F401
    g = torch.Generator().manual_seed(0)
    n_ent = 30
    all_true = torch.unique(torch.stack([torch.randint(0, n_ent, (200,), generator=g),
                                         torch.randint(0, 4, (200,), generator=g),
                                         torch.randint(0, n_ent, (200,), generator=g)], 1), dim=0)
    test = all_true[:60]
    index = filter_index(all_true)

    class Fixed:  # a "model" whose scores are rounded random numbers: many ties
        def score_t(self, h, r):
            return torch.randint(0, 6, (len(h), n_ent), generator=g).float()

        def score_h(self, r, t):
            return torch.randint(0, 6, (len(r), n_ent), generator=g).float()

    ours, ev = [], evaluation.RankBasedEvaluator(filtered=True)
    for side, col, target in (("head", 0, "head"), ("tail", 2, "tail")):
        scores = filtered_scores(Fixed(), test, all_true, side, index)
        ours.append(ranks_from_scores(scores, test[:, col]))
        ev.process_scores_(test, target, scores, true_scores=scores.gather(1, test[:, col:col + 1]))
    mine = metrics_from_ranks(torch.cat(ours))
    ref = ev.finalize()
    assert mine["mrr"] == pytest.approx(ref.get_metric("both.realistic.inverse_harmonic_mean_rank"), rel=1e-6)
    assert mine["mean_rank"] == pytest.approx(ref.get_metric("both.realistic.arithmetic_mean_rank"), rel=1e-6)
    for k in (1, 3, 10):
        assert mine[f"hits@{k}"] == pytest.approx(ref.get_metric(f"both.realistic.hits_at_{k}"), rel=1e-6)


def test_filtering_ignores_other_true_answers():
    m = _model("transe")
    all_true = torch.tensor([[0, 0, 1], [0, 0, 2], [0, 0, 3]])
    s = filtered_scores(m, all_true[:1], all_true, "tail")
    assert torch.isnan(s[0, 2]) and torch.isnan(s[0, 3]) and not torch.isnan(s[0, 1])


def test_tsv_folder_reader(tmp_path):
    (tmp_path / "train.txt").write_text("/m/a\t/r/x\t/m/b\n/m/b\t/r/y\t/m/c\n")
    (tmp_path / "valid.txt").write_text("/m/a\t/r/y\t/m/c\n/m/zz\t/r/x\t/m/a\n")
    (tmp_path / "test.txt").write_text("/m/c\t/r/x\t/m/a\n")
    d = read_tsv_folder(tmp_path)
    assert d.entities == ["/m/a", "/m/b", "/m/c"] and d.relations == ["/r/x", "/r/y"]
    assert d.valid.tolist() == [[0, 1, 2]] and d.meta["dropped_unseen"] == 1
    (tmp_path / "test.txt").write_text("/m/c /r/x /m/a\n")
    with pytest.raises(ValueError, match=r"test.txt:1: expected 3 tab-separated"):
        read_tsv_folder(tmp_path)
    (tmp_path / "valid.txt").unlink()
    with pytest.raises(FileNotFoundError, match="valid.txt"):
        read_tsv_folder(tmp_path)


def test_rules_graph_held_out_triples_follow_from_training():
    d = rules_graph(60, seed=1)
    rel = {r: i for i, r in enumerate(d.relations)}
    train = {tuple(x) for x in d.train.tolist()}
    inv = {rel["parent_of"]: rel["child_of"], rel["child_of"]: rel["parent_of"]}
    explained = 0
    for h, r, t in d.test.tolist():
        if r in inv and (t, inv[r], h) in train or r == rel["sibling_of"] and (t, r, h) in train:
            explained += 1
        elif r in (rel["lives_in"], rel["works_in"]) and (h, rel["works_in"] if r == rel["lives_in"] else rel["lives_in"], t) in train:
            explained += 1
    assert explained >= 0.5 * len(d.test)


def test_training_beats_an_untrained_model(tmp_path):
    d = rules_graph(60, seed=0)
    cfg = TrainConfig(max_steps=120, batch_size=128, lr=0.02, warmup_steps=5, weight_decay=0.0, eval_every=120,
                      eval_batches=4, log_every=50, progress=False, device="cpu", grad_clip=None)
    untrained = rank_metrics(_model("rotate", len(d.entities), len(d.relations), 32), d.valid, d.all_true)["mrr"]
    model, res = train_completion(d, CompletionArgs(out=str(tmp_path / "kge"), model="rotate", dim=32,
                                                    negatives=16, margin=1.0), cfg)
    assert res["valid"]["mrr"] > untrained + 0.1
    assert set(res["test"]) >= {"mrr", "hits@1", "hits@3", "hits@10"}


def test_negative_sampling_corrupts_one_side():
    task = LinkPredictionTask(50, torch.zeros(0, 3, dtype=torch.long), negatives=8)
    b = task.collate([torch.tensor([1, 2, 3]), torch.tensor([4, 0, 5])])
    neg = b["neg"]
    assert neg.shape == (2, 8, 3) and (neg[..., 1] == b["pos"][:, None, 1]).all()
    same_h, same_t = neg[..., 0] == b["pos"][:, None, 0], neg[..., 2] == b["pos"][:, None, 2]
    assert (same_h | same_t).all()


def test_split_needs_triples():
    with pytest.raises(ValueError, match="too few triples"):
        split_triples([("a", "r", "b"), ("b", "r", "c")], 0.5, 0.5)
    assert isinstance(split_triples([("a", "r", "b"), ("b", "r", "c"), ("c", "r", "a")], 0.0, 0.0), KGData)
