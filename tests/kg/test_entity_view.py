"""Entity search, the entity page's content (sentences with spans, image mentions, triples with provenance,
linked entities) and the crop lookup, read back from an embedded store."""
from __future__ import annotations

import pytest

from lingvis.kg.entity_view import EntityNotFound, entity_page, graph_summary, mention_crop, search_entities
from lingvis.kg.stores import open_store

from ..serve.kg_graph import BLUE, GREEN, RED, RED_BOX, TEXT, make_kg


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    graph, _ = make_kg(tmp_path_factory.mktemp("kg"))
    with open_store(graph, read_only=True) as s:
        yield s


def test_search(store):
    assert [e["id"] for e in search_entities(store, "")] == [BLUE, RED, GREEN]
    hits = search_entities(store, "Red CIRCLE")
    assert hits == [{"id": RED, "type": "circle", "label": "small red circle", "scene": "s1.png"}]
    assert [e["id"] for e in search_entities(store, "s1.png")] == [BLUE, RED]
    assert [e["id"] for e in search_entities(store, "triangle")] == [GREEN]  # by class
    assert search_entities(store, 'x" } DROP ALL { "') == []                 # quoted, not injected
    assert len(search_entities(store, "", limit=2)) == 2


def test_entity_page(store):
    page = entity_page(store, RED)
    assert page["type"] == "circle" and page["scene"] == "s1.png" and page["labels"] == ["small red circle"]
    assert page["attributes"] == {"colour": ["red"], "size": ["small"]}
    [sent] = page["sentences"]
    assert sent["text"] == TEXT and sent["source"] == "caption:1" and sent["score"] == pytest.approx(0.93)
    assert TEXT[slice(*sent["span"])] == "small red circle" == sent["mention_text"]
    [img] = page["images"]
    assert img["source"] == "s1.png" and img["file"] == "s1.png" and img["box"] == pytest.approx(list(RED_BOX))
    left = next(t for t in page["triples"] if t["predicate"] == "left_of")
    assert left["subject"] == RED and left["object"] == BLUE and not left["literal"]
    assert left["confidence"] == pytest.approx(0.95)
    assert [(p["source"], p["model"]) for p in left["provenance"]] == [("caption:1", "text-triples"),
                                                                      ("s1.png", "scene-graph")]
    assert left["provenance"][0]["span"] == [2, 53] and left["provenance"][1]["box"] is not None
    typ = next(t for t in page["triples"] if t["predicate"] == "type")
    assert typ["object"] == "circle" and typ["literal"] and len(typ["provenance"]) == 2
    assert page["entities"] == {BLUE: {"type": "square", "label": "large blue square"}}
    blue = entity_page(store, BLUE)  # as the object of triples
    assert {t["predicate"] for t in blue["triples"] if t["object"] == BLUE} == {"left_of", "above"}
    assert set(blue["entities"]) == {RED}
    with pytest.raises(EntityNotFound, match="nope"):
        entity_page(store, "nope")


def test_crop_lookup_and_summary(store):
    key = entity_page(store, RED)["images"][0]["mention"]
    assert mention_crop(store, key) == ("s1.png", pytest.approx(RED_BOX))
    caption_key = entity_page(store, RED)["sentences"][0]["mention"]
    assert mention_crop(store, caption_key) is None          # a caption mention has no box
    assert mention_crop(store, "../../etc/passwd") is None  # not a key
    assert mention_crop(store, "0" * 20) is None
    assert graph_summary(store) == {"entities": 3, "images": 3, "captions": 1, "statements": 8}
