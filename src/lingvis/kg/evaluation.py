"""Held-out checks of a built graph against the true built-in shapes scenes: cross-modal entity linking read
back from the store (does each caption mention denote the entity whose image box covers the object the
mention names?)."""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence

from .scene_graph import iou, object_box


def gold_object(scene, colour: str | None, typ: str) -> int | None:
    """Index of the one object of `scene` with this type (and colour, when given); None if not exactly one."""
    hits = [i for i, o in enumerate(scene.objects) if o.shape == typ and (colour is None or o.colour == colour)]
    return hits[0] if len(hits) == 1 else None


def box_object(scene, box: Sequence[float], min_iou: float = 0.5) -> int | None:
    """Index of the object of `scene` whose true box overlaps `box` best, if by IoU >= min_iou."""
    if not scene.objects:
        return None
    best = max(range(len(scene.objects)), key=lambda i: iou(object_box(scene.objects[i]), box))
    return best if iou(object_box(scene.objects[best]), box) >= min_iou else None


def linking_accuracy(store, scenes: Mapping[str, object]) -> dict:
    """Caption mentions -> image objects, from the graph: a mention is right when its entity has an image
    mention (in the same scene's image) whose box finds the object the mention's words name (type and
    colour). Mentions naming no single object of the scene (extraction errors) are left out and counted.
    `scenes`: scene key (image file name) -> true shapes `Scene`."""
    from .text_triples import Mention as TextMention
    from .text_triples import mention_attributes

    mentions = store.mentions()
    boxes: dict[str, list] = defaultdict(list)
    for m in mentions:
        if m.box is not None:
            boxes[m.entity].append((m.source, m.box))
    scene_of = {d.name: d.scene for d in store.source_docs()}
    correct = total = skipped = 0
    for m in mentions:
        if m.text is None or scene_of.get(m.source) not in scenes:
            continue
        scene_key = scene_of[m.source]
        scene = scenes[scene_key]
        words = m.text.lower().split()
        truth = gold_object(scene, mention_attributes(TextMention(m.text, "")).get("colour"), words[-1]) \
            if words else None
        if truth is None:
            skipped += 1
            continue
        total += 1
        found = {box_object(scene, b) for src, b in boxes.get(m.entity, []) if src == scene_key}
        correct += truth in found
    return {"accuracy": correct / total if total else 0.0, "mentions": total, "correct": correct,
            "skipped": skipped}
