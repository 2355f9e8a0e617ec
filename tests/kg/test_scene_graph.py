"""Scene graphs: Visual Genome JSON, PredCls Recall@K / mean Recall@K, triple F1 with detection, the model
and its training task."""
from __future__ import annotations

import json

import pytest
import torch

from lingvis.data.shapes import make_split_scenes, render_scene
from lingvis.kg.scene_graph import (SceneGraph, SGObject, SGRelation, iou, object_box, predcls_recall, read_vg,
                                    scene_graph_of, triple_f1_with_detection, write_vg)
from lingvis.kg.scene_train import SceneGraphData, SceneGraphTask, predict_scene_graphs
from lingvis.models import registry

PREDS = ["left_of", "right_of", "above", "below"]


def _graph():
    objs = [SGObject((0.1, 0.1, 0.3, 0.3), "circle", {"colour": "red", "size": "small"}),
            SGObject((0.6, 0.1, 0.9, 0.4), "square", {"colour": "blue", "size": "large"}),
            SGObject((0.4, 0.6, 0.6, 0.8), "star", {"colour": "green", "size": "small"})]
    rels = [SGRelation(0, "left_of", 1), SGRelation(1, "right_of", 0), SGRelation(0, "above", 2)]
    return SceneGraph("a.png", 64, 48, objs, rels, image_id=7)


def test_visual_genome_round_trip(tmp_path):
    g = _graph()
    path = write_vg(tmp_path / "sg.json", [g])
    data = json.loads(path.read_text())
    assert {"objects", "relationships", "image_id"} <= set(data[0])
    o = data[0]["objects"][1]
    assert o["names"] == ["square"] and o["x"] == pytest.approx(0.6 * 64) and o["h"] == pytest.approx(0.3 * 48)
    back = read_vg(path)[0]
    assert back.triples() == g.triples() and back.image == "a.png"
    for a, b in zip(back.objects, g.objects):
        assert a.type == b.type and a.attributes == b.attributes
        assert a.box == pytest.approx(b.box, abs=1e-3)


def test_visual_genome_untyped_attributes_and_embedded_relations(tmp_path):
    vg = [{"image_id": 1, "width": 100, "height": 100, "objects": [
        {"object_id": 5, "x": 0, "y": 0, "w": 10, "h": 10, "names": ["circle"], "attributes": ["red", "shiny"]},
        {"object_id": 6, "x": 50, "y": 0, "w": 10, "h": 10, "name": "square"}],
        "relationships": [{"predicate": "LEFT OF", "subject": {"object_id": 5}, "object": {"object_id": 6}}]}]
    p = tmp_path / "vg.json"
    p.write_text(json.dumps(vg))
    g = read_vg(p, {"colour": ["red", "blue"]})[0]
    assert g.objects[0].attributes == {"colour": "red", "attribute_1": "shiny"}
    assert g.triples() == {(0, "left_of", 1)}
    vg[0]["relationships"][0]["object"]["object_id"] = 99
    p.write_text(json.dumps(vg))
    with pytest.raises(ValueError, match="unknown object"):
        read_vg(p)


def test_predcls_recall_and_mean_recall():
    g = _graph()
    s = torch.zeros(3, 3, 4)
    s[0, 1, 0] = 5.0        # left_of: top
    s[0, 2, 2] = 4.0        # above: second
    s[1, 0, 1] = -1.0       # right_of: below a wrong triple
    s[2, 1, 3] = 3.0        # a wrong triple, third
    r = predcls_recall([g], [s], PREDS, ks=(1, 2, 3, 100))
    assert r["R@1"] == pytest.approx(1 / 3) and r["R@2"] == pytest.approx(2 / 3) and r["R@3"] == pytest.approx(2 / 3)
    assert r["mR@2"] == pytest.approx((1 + 0 + 1) / 3) and r["R@100"] == 1.0


def test_triple_f1_with_detection_needs_labels_and_overlap():
    g = _graph()
    p = _graph()
    assert triple_f1_with_detection([g], [p])["f1"] == 1.0
    p.objects[2] = SGObject((0.4, 0.6, 0.6, 0.8), "star", {"colour": "blue", "size": "small"})  # wrong colour
    assert triple_f1_with_detection([g], [p])["correct"] == 2
    assert triple_f1_with_detection([g], [p], with_attributes=False)["correct"] == 3
    p = _graph()
    p.objects[1] = SGObject((0.0, 0.6, 0.2, 0.9), "square", {"colour": "blue", "size": "large"})  # box elsewhere
    r = triple_f1_with_detection([g], [p])
    assert r["correct"] == 1 and r["precision"] == pytest.approx(1 / 3)
    assert iou((0, 0, 1, 1), (0, 0, 0.5, 1)) == pytest.approx(0.5)


def test_shapes_ground_truth_boxes_are_what_the_proposer_finds():
    from lingvis.data.images import normalize, to_tensor
    from lingvis.models.fusion_regions import RegionConfig, propose_boxes
    from lingvis.models.vit import CLIP_MEAN, CLIP_STD

    scenes = make_split_scenes("val", 12)
    px = torch.stack([normalize(to_tensor(render_scene(s, 64)), CLIP_MEAN, CLIP_STD) for s in scenes])
    boxes, mask = propose_boxes(px, None, RegionConfig(), torch.tensor(CLIP_MEAN), torch.tensor(CLIP_STD))
    for k, s in enumerate(scenes):
        found = boxes[k][mask[k].bool()]
        assert len(found) == len(s.objects)
        for o in s.objects:
            assert max(iou(object_box(o), b.tolist()) for b in found) > 0.6  # within a pixel on a ~13 px box
    g = scene_graph_of(scenes[0], "x.png")
    assert {r.predicate for r in g.relations} <= set(PREDS) and len(g.objects) == len(scenes[0].objects)


def test_model_trains_and_predicts():
    from lingvis.models import scene_graph as _  # noqa: F401

    torch.manual_seed(0)
    model = registry.build("scene-graph-nano")
    scenes = make_split_scenes("train", 16, min_objects=2)
    graphs = [scene_graph_of(s, f"{i}.png") for i, s in enumerate(scenes)]
    data = SceneGraphData(graphs, [render_scene(s, 64) for s in scenes], model.config)
    task = SceneGraphTask()
    batch = task.collate([data[i] for i in range(16)])
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    first = None
    for _ in range(25):
        loss, m = task.loss(model, batch)
        first = first if first is not None else float(loss.detach())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss.detach()) < 0.6 * first and 0 <= m["pred_f1"] <= 1
    imgs = [render_scene(s, 64) for s in scenes[:3]]
    out, scores = predict_scene_graphs(model, imgs, return_scores=True)
    assert [len(g.objects) for g in out] == [len(s.objects) for s in scenes[:3]]
    assert scores[0].shape == (len(scenes[0].objects), len(scenes[0].objects), 4)
    given = predict_scene_graphs(model, imgs, [[object_box(o) for o in s.objects] for s in scenes[:3]])
    assert given[0].objects[0].box == pytest.approx(object_box(scenes[0].objects[0]))


def test_dataset_rejects_unknown_labels():
    from lingvis.models import scene_graph as _  # noqa: F401

    cfg = registry.preset_config("scene-graph-nano")[1]
    g = _graph()
    g.objects[0] = SGObject((0, 0, 0.1, 0.1), "hexagon", {"colour": "red", "size": "small"})
    with pytest.raises(ValueError, match="hexagon"):
        SceneGraphData([g], [None], cfg)
