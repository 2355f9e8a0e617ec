"""KGE models: every-candidate scores agree with pointwise scores, pointwise scores agree with PyKEEN's
interaction functions on the same embeddings, image features enter the multimodal entity representation,
and checkpoints round-trip."""
from __future__ import annotations

import pytest
import torch

import lingvis
from lingvis.models import kge as _kge  # noqa: F401  (registers the family)
from lingvis.models import registry


def _model(kind: str, n_ent: int = 13, n_rel: int = 5, dim: int = 7, image_dim: int = 0, p_norm: int = 2):
    torch.manual_seed(0)
    return registry.build("kge", n_entities=n_ent, n_relations=n_rel, dim=dim, model=kind, p_norm=p_norm,
                          image_dim=image_dim)


@pytest.mark.parametrize("kind,p", [("transe", 1), ("transe", 2), ("rotate", 2), ("rotate", 1), ("complex", 2)])
def test_all_candidate_scores_match_pointwise_scores(kind, p):
    m = _model(kind, p_norm=p)
    h, r, t = torch.tensor([0, 3, 12]), torch.tensor([1, 4, 0]), torch.tensor([5, 5, 2])
    all_t, all_h = m.score_t(h, r), m.score_h(r, t)  # (3, 13)
    ents = torch.arange(13)
    for b in range(3):
        torch.testing.assert_close(all_t[b], m.score_hrt(h[b].expand(13), r[b].expand(13), ents), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(all_h[b], m.score_hrt(ents, r[b].expand(13), t[b].expand(13)), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", ["transe", "rotate", "complex"])
def test_scores_match_pykeen_interactions(kind):
    pykeen_modules = pytest.importorskip("pykeen.nn.modules")
    m = _model(kind, p_norm=1 if kind == "transe" else 2)
    h, r, t = torch.tensor([0, 3, 12, 7]), torch.tensor([1, 4, 0, 2]), torch.tensor([5, 5, 2, 7])
    ours = m.score_hrt(h, r, t)
    H, T = m.entity(h), m.entity(t)
    if kind == "transe":
        ref = pykeen_modules.TransEInteraction(p=1)(H, m.relation(r), T)
    else:
        d = m.config.dim
        Hc, Tc = torch.complex(H[:, :d], H[:, d:]), torch.complex(T[:, :d], T[:, d:])
        if kind == "rotate":
            Rc = torch.polar(torch.ones_like(m.relation(r)), m.relation(r))
            ref = pykeen_modules.RotatEInteraction(p=2)(Hc, Rc, Tc)
        else:
            R = m.relation(r)
            ref = pykeen_modules.ComplExInteraction()(Hc, torch.complex(R[:, :d], R[:, d:]), Tc)
    torch.testing.assert_close(ours, ref.float(), rtol=1e-5, atol=1e-5)


def test_multimodal_entities_use_image_features():
    m = _model("rotate", image_dim=6)
    before = m.entities(torch.tensor([2])).clone()
    feats, present = torch.zeros(13, 6), torch.zeros(13)
    feats[2], present[2] = torch.randn(6), 1
    m.set_image_features(feats, present)
    assert not torch.allclose(m.entities(torch.tensor([2])), before)
    assert torch.allclose(m.entities(torch.tensor([3])), m.entity(torch.tensor([3])))
    with pytest.raises(ValueError, match="image features must be"):
        m.set_image_features(torch.zeros(12, 6), torch.zeros(12))




def test_checkpoint_round_trip_keeps_image_features(tmp_path):
    m = _model("complex", image_dim=4)
    m.set_image_features(torch.randn(13, 4), (torch.arange(13) % 2).float())
    back = lingvis.load(lingvis.save(m, tmp_path / "kge"))
    h, r = torch.tensor([1, 2]), torch.tensor([0, 3])
    torch.testing.assert_close(back.score_t(h, r), m.score_t(h, r))


def test_bad_config_is_named():
    with pytest.raises(ValueError, match="model must be one of"):
        registry.build("kge", model="distmult")
