"""Linking accuracy read back from a graph: right when the mention's entity has an image box on the object the
mention names; wrong when it denotes another object or has no box; mentions naming no object are skipped."""
from __future__ import annotations

import pytest

from lingvis.data.shapes_scene import Scene, ShapeObject
from lingvis.kg.evaluation import box_object, gold_object, linking_accuracy
from lingvis.kg.records import Entity, Mention, SourceDoc
from lingvis.kg.scene_graph import object_box
from lingvis.kg.stores import open_store


@pytest.fixture
def scene():
    return Scene([ShapeObject("circle", "red", "small", 0.25, 0.3, 0.1),
                  ShapeObject("square", "blue", "large", 0.7, 0.6, 0.2),
                  ShapeObject("circle", "green", "small", 0.4, 0.8, 0.1)])


def test_gold_lookups(scene):
    assert gold_object(scene, "blue", "square") == 1 and gold_object(scene, None, "square") == 1
    assert gold_object(scene, None, "circle") is None          # two circles: ambiguous
    assert gold_object(scene, "purple", "circle") is None
    box = object_box(scene.objects[0])
    assert box_object(scene, box) == 0
    assert box_object(scene, (0.9, 0.0, 1.0, 0.1)) is None     # overlaps nothing


def test_linking_accuracy(scene):
    red, blue, lone = "s.png/red-circle", "s.png/blue-square", "s.png/green-circle"
    boxes = {red: object_box(scene.objects[0]), blue: object_box(scene.objects[1])}
    img = SourceDoc("s.png", "image", file="s.png", scene="s.png",
                    entities=[Entity(red, "circle", scene="s.png"), Entity(blue, "square", scene="s.png")],
                    mentions=[Mention(e, "s.png", None, None, b, 0.9, "sg") for e, b in boxes.items()])
    text = "a small red circle, a large blue square, a green circle and a purple star"
    cap = SourceDoc("caption:1", "caption", text=text, scene="s.png",
                    entities=[Entity(red, "circle", scene="s.png"), Entity(lone, "circle", scene="s.png")],
                    mentions=[Mention(red, "caption:1", "small red circle", (2, 18), None, 1.0, "linker"),     # right
                              Mention(red, "caption:1", "large blue square", (22, 39), None, 0.6, "linker"),   # wrong object
                              Mention(lone, "caption:1", "green circle", (43, 55), None, 1.0, "linker"),       # no box
                              Mention(lone, "caption:1", "purple star", (62, 73), None, 1.0, "linker")])       # names nothing
    other = SourceDoc("caption:2", "caption", text="a red circle", scene="other.png",
                      mentions=[Mention(red, "caption:2", "red circle", (2, 12), None, 1.0, "linker")])
    store = open_store(None)
    store.add_docs([img, cap, other])
    r = linking_accuracy(store, {"s.png": scene})
    assert r == {"accuracy": pytest.approx(1 / 3), "mentions": 3, "correct": 1, "skipped": 1}
