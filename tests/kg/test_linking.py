"""Cross-modal entity linking and the builder's entity identity: shared across captions, images and later
builds; nothing duplicated when a document is added again."""
from __future__ import annotations

import pytest
import torch

from lingvis.data.shapes import make_split_scenes, render_scene
from lingvis.kg import linking
from lingvis.kg.build import Models, SceneInput, read_coco_scenes, scene_docs, stored_scene_entities
from lingvis.kg.scene_graph import scene_graph_of
from lingvis.kg.text_triples import parse, shapes_sentence, linearize


def test_agreement_and_assignment():
    assert linking.agreement({"type": "circle", "colour": "red"}, "circle", {"colour": "red"}) == 1.0
    assert linking.agreement({"type": "circle", "colour": "red", "size": "small"}, "circle",
                             {"colour": "blue", "size": "small"}) == pytest.approx(1.5 / 2.5)
    cands = [linking.Candidate("a", "circle", {"colour": "red"}), linking.Candidate("b", "circle", {"colour": "blue"})]
    s = linking.score_matrix([{"type": "circle", "colour": "blue"}, {"type": "circle"}], cands)
    links = linking.assign(s)
    assert [(l.candidate, round(l.score, 2)) for l in links] == [(1, 1.0), (0, 1.0)]  # distinct candidates
    assert linking.assign(s, distinct=False)[1].candidate in (0, 1)
    none = linking.assign(linking.score_matrix([{"type": "star"}], cands))
    assert none[0].candidate is None


def test_clip_similarity_moves_the_score():
    cands = [linking.Candidate("a", "circle", {}, clip=torch.tensor([1.0, 0.0])),
             linking.Candidate("b", "circle", {}, clip=torch.tensor([0.0, 1.0]))]
    s = linking.score_matrix([{"type": "circle"}], cands, text_clip=torch.tensor([[0.0, 1.0]]))
    assert s[0, 1] > 0.95 and s[0, 0] < 0.55
    assert linking.assign(s)[0].candidate == 1


def _scene_inputs():
    scene = next(s for s in make_split_scenes("val", 50) if len(s.objects) == 3)
    img = render_scene(scene, 64)
    graph = scene_graph_of(scene, "s.png")
    caps = []
    for n, o in enumerate(scene.objects[:2]):
        other = scene.objects[2]
        text = f"a {o.size} {o.colour} {o.shape} to the left of a {other.size} {other.colour} {other.shape}"
        caps.append((f"caption:{n}", text))
    extracted = [parse(linearize(shapes_sentence(t)), t) for _, t in caps]
    return scene, img, graph, caps, extracted


def test_mentions_link_to_image_objects_and_share_entities():
    scene, img, graph, caps, extracted = _scene_inputs()
    sc = SceneInput("s.png", img, "s.png", caps)
    docs, info = scene_docs(sc, graph, extracted, [], Models())
    image_doc, cap_docs = docs[0], docs[1:]
    ids = [e.id for e in image_doc.entities]
    assert len(set(ids)) == 3 and all(i.startswith("s.png/") for i in ids)
    for caps_info in info["caption_links"]:
        assert all(linked for *_, linked in caps_info)
    third = ids[2]
    assert all(any(s.object == third for s in d.statements if s.predicate == "left_of") for d in cap_docs)
    m = cap_docs[0].mentions[0]
    assert m.entity == ids[0] and caps[0][1][slice(*m.span)] == m.text


def test_adding_later_documents_reuses_entities(store):
    """On the embedded store and on the Oxigraph server alike."""
    scene, img, graph, caps, extracted = _scene_inputs()
    # captions first (no image yet): entities minted from the text
    docs, _ = scene_docs(SceneInput("s.png", None, None, caps), None, extracted, [], Models())
    store.add_docs(docs)
    first = {e.id for e in store.entities()}
    assert len(first) == 3
    # then the image: its objects link to the stored entities instead of minting new ones
    existing = stored_scene_entities(store, ["s.png"])["s.png"]
    docs, info = scene_docs(SceneInput("s.png", img, "s.png", []), graph, [], existing, Models())
    assert all(info["image_links"])
    store.add_docs(docs)
    assert {e.id for e in store.entities()} == first
    n = len(store)
    # everything again: nothing new
    existing = stored_scene_entities(store, ["s.png"])["s.png"]
    docs, _ = scene_docs(SceneInput("s.png", img, "s.png", caps), graph, extracted, existing, Models())
    store.add_docs(docs)
    assert len(store) == n and {e.id for e in store.entities()} == first
    srcs = {e.id: e.sources for e in store.entities()}
    assert all("s.png" in v for v in srcs.values())


def test_read_coco_scenes(tmp_path):
    import json

    (tmp_path / "imgs").mkdir()
    render_scene(make_split_scenes("val", 1)[0], 32).save(tmp_path / "imgs" / "a.png")
    coco = {"images": [{"id": 1, "file_name": "a.png"}, {"id": 2, "file_name": "b.png"}],
            "annotations": [{"id": 10, "image_id": 1, "caption": "a red star"},
                            {"id": 11, "image_id": 2, "caption": "a blue circle"}]}
    (tmp_path / "c.json").write_text(json.dumps(coco))
    only_caps = read_coco_scenes(tmp_path / "c.json", None)
    assert [(s.scene, s.captions) for s in only_caps] == [("a.png", [("caption:10", "a red star")]),
                                                          ("b.png", [("caption:11", "a blue circle")])]
    both = read_coco_scenes(tmp_path / "c.json", tmp_path / "imgs")
    assert [(s.scene, len(s.captions), s.file is not None) for s in both] == [("a.png", 1, True)]
    assert [s.scene for s in read_coco_scenes(None, tmp_path / "imgs")] == ["a.png"]
    (tmp_path / "bad.json").write_text("{\"annotations\": [{\"image_id\": 1}]}")
    with pytest.raises(ValueError, match="annotation 0 lacks"):
        read_coco_scenes(tmp_path / "bad.json", None)
