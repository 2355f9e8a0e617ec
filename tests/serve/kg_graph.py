"""A small knowledge graph with real image files, for the entity-page routes and the browser test: two
images (a red circle left of and above a blue square; a green triangle), a caption linked to the first image's
entities, and an image source whose registered file name points outside the image folder."""
from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

RED, BLUE, GREEN = "s1.png/red-circle", "s1.png/blue-square", "s2.png/green-triangle"
RED_BOX, BLUE_BOX = (0.1, 0.1, 0.4, 0.4), (0.55, 0.5, 0.9, 0.85)
TEXT = "a small red circle to the left of a large blue square"


def _px(box, size=64):
    return [round(v * size) for v in box]


def make_kg(root: Path) -> tuple[Path, Path]:
    """-> (graph directory, image folder)."""
    from lingvis.kg.records import Entity, Mention, SourceDoc, Statement
    from lingvis.kg.stores import open_store

    images = root / "images"
    images.mkdir(parents=True)
    im = Image.new("RGB", (64, 64), "white")
    d = ImageDraw.Draw(im)
    d.ellipse(_px(RED_BOX), fill=(220, 30, 30))
    d.rectangle(_px(BLUE_BOX), fill=(30, 30, 220))
    im.save(images / "s1.png")
    im2 = Image.new("RGB", (64, 64), "white")
    ImageDraw.Draw(im2).polygon([(10, 50), (30, 10), (50, 50)], fill=(30, 200, 30))
    im2.save(images / "s2.png")
    Image.new("RGB", (64, 64), "black").save(root / "secret.png")  # outside the served folder

    red = Entity(RED, "circle", "small red circle", {"colour": "red", "size": "small"}, scene="s1.png")
    blue = Entity(BLUE, "square", "large blue square", {"colour": "blue", "size": "large"}, scene="s1.png")
    green = Entity(GREEN, "triangle", "large green triangle", {"colour": "green"}, scene="s2.png")
    union = (0.1, 0.1, 0.9, 0.85)
    s1 = SourceDoc("s1.png", "image", file="s1.png", scene="s1.png", entities=[red, blue], statements=[
        Statement(RED, "type", "circle", "s1.png", 0.97, "scene-graph", box=RED_BOX),
        Statement(RED, "colour", "red", "s1.png", 0.97, "scene-graph", box=RED_BOX, literal=True),
        Statement(BLUE, "type", "square", "s1.png", 0.96, "scene-graph", box=BLUE_BOX),
        Statement(RED, "left_of", BLUE, "s1.png", 0.91, "scene-graph", box=union),
        Statement(RED, "above", BLUE, "s1.png", 0.88, "scene-graph", box=union)],
        mentions=[Mention(RED, "s1.png", None, None, RED_BOX, 0.97, "scene-graph"),
                  Mention(BLUE, "s1.png", None, None, BLUE_BOX, 0.96, "scene-graph")])
    rs, bs = TEXT.index("small red circle"), TEXT.index("large blue square")
    red_span, blue_span = (rs, rs + len("small red circle")), (bs, bs + len("large blue square"))
    cap = SourceDoc("caption:1", "caption", text=TEXT, scene="s1.png", entities=[red, blue], statements=[
        Statement(RED, "type", "circle", "caption:1", 0.99, "text-triples", span=red_span),
        Statement(RED, "left_of", BLUE, "caption:1", 0.95, "text-triples", span=(rs, blue_span[1]))],
        mentions=[Mention(RED, "caption:1", "small red circle", red_span, None, 0.93, "linker"),
                  Mention(BLUE, "caption:1", "large blue square", blue_span, None, 0.9, "linker")])
    s2 = SourceDoc("s2.png", "image", file="s2.png", scene="s2.png", entities=[green], statements=[
        Statement(GREEN, "type", "triangle", "s2.png", 0.9, "scene-graph", box=(0.15, 0.15, 0.8, 0.8))],
        mentions=[Mention(GREEN, "s2.png", None, None, (0.15, 0.15, 0.8, 0.8), 0.9, "scene-graph")])
    evil = SourceDoc("evil.png", "image", file="../secret.png", scene="evil.png",
                     mentions=[Mention(GREEN, "evil.png", None, None, (0.0, 0.0, 1.0, 1.0), 0.5, "scene-graph")])
    graph = root / "kg"
    with open_store(graph) as store:
        store.ensure_vocabulary()
        store.add_docs([s1, cap, s2, evil])
    return graph, images
