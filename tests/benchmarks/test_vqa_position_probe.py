"""The position probes: sub-type split, attention recording, and one probe of a 2-step run."""
import torch
import torch.nn.functional as F

from benchmarks import vqa_position_probe as probe
from benchmarks.vqa_pretraining_learning import position_kind


def test_position_kinds_and_relation_pattern():
    assert position_kind("where is the red circle?") == "where"
    assert position_kind("is the red circle to the left or to the right of the blue star?") == "left/right"
    assert position_kind("is the red circle above or below the blue star?") == "above/below"
    m = probe.RELATION.fullmatch("is the red circle above or below the blue star?")
    assert m.groups() == ("red", "circle", "above or below", "blue", "star")


def test_attention_spy_records_the_weights_sdpa_uses():
    q, k, v = torch.randn(3, 2, 2, 5, 4).unbind(0)
    mask = torch.tensor([True, True, True, False, True])[None, None, None]
    with probe.AttentionSpy() as spy:
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    assert F.scaled_dot_product_attention is not spy._spy  # restored
    (w,) = spy.weights
    assert torch.allclose(w.sum(-1), torch.ones(2, 2, 5)) and (w[..., 3] == 0).all()
    assert torch.allclose(w @ v, out, atol=1e-5)


def test_probe_of_a_short_run(tmp_path):
    from lingvis.recipes.fusion_common import ensure_shapes
    from lingvis.recipes.vqa import VQAFinetuneArgs, finetune_vqa
    from lingvis.train.config import TrainConfig

    data = ensure_shapes(tmp_path / "data", 24, 12)
    run = tmp_path / "run"
    finetune_vqa(VQAFinetuneArgs(out=str(run), data=str(data), preset="fusion-small", test_splits=[],
                                 overrides={"vqa_readout": "regions", "vqa_queries": 3}),
                 TrainConfig(max_steps=2, batch_size=4, eval_every=2, eval_batches=1, progress=False))
    res = probe.probe(run, data, n=4)
    assert res["questions"] >= 1 and len(res["subject_to_referent_attention"]) == 4  # fusion-small layers
    assert all(0.0 <= s <= 1.0 for s in res["subject_to_referent_attention"]) and res["role_swap_l1"] >= 0.0
    assert 1 / 6 <= res["attention_chance"] <= 1.0  # 1 / regions, at most 6
    for role in ("subject", "object"):  # one weight per readout query
        assert len(res[f"readout_{role}_share"]) == 3 and all(0.0 <= w <= 1.0 for w in res[f"readout_{role}_share"])
    assert all(a <= b + 1e-6 for a, b in zip(res["subject_to_referent_attention"], res["best_head_share"]))
