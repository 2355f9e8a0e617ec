"""The `kg` demo step end to end with second-long budgets and a few scenes (its numbers are not the point
here: the full step trains for about a minute and a half; benchmarks/kg_learning.py runs longer)."""
from __future__ import annotations

import pytest

pytest.importorskip("pyoxigraph")


def test_kg_demo_step(tmp_path, capsys):
    from lingvis.demo import load_steps

    step = load_steps()["kg"]
    res = step(tmp_path, text_seconds=1, scene_seconds=1, kge_seconds=1, n_scenes=6)
    out = capsys.readouterr().out
    assert (tmp_path / "kg" / "graph").is_dir() and res["graph"] == str(tmp_path / "kg" / "graph")
    for key in ("triple_f1", "entity_f1"):
        assert 0.0 <= res["text"][key] <= 1.0
    assert 0.0 <= res["scenes"]["R@20"] <= 1.0 and 0.0 <= res["scenes"]["sgdet_f1"] <= 1.0
    assert 0.0 <= res["linking"] <= 1.0 and res["quads"] > 100
    assert 0.0 < res["link_prediction"]["mrr"] <= 1.0 and res["link_prediction"]["steps"] >= 1
    assert "held-out strict micro-F1" in out and "PredCls R@20" in out and "filtered test MRR" in out
    assert "subject" in out and "confidence" in out and "SELECT ?subject" in out  # the query and its table
    assert 'kg ask "which shapes are left of the blue square?"' in out
    assert res["citations"] == out.count("    [")  # every citation printed
