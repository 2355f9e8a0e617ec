"""Image scene graphs: objects (box, type, attributes) and relationships, Visual Genome-style JSON read and
written, built from the shapes world's ground truth, and their metrics: predicate-classification Recall@K
and mean Recall@K (boxes and labels given), and triple F1 with detection (boxes proposed, a triple counts
when both labels match and both boxes overlap the truth with IoU >= 0.5)."""
from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..jsonfile import read_json


@dataclass
class SGObject:
    box: tuple[float, float, float, float]          # (x0, y0, x1, y1) normalised to [0, 1]
    type: str
    attributes: dict[str, str] = field(default_factory=dict)
    score: float = 1.0                                # detection / classification confidence

    @property
    def label(self) -> tuple:
        return (self.type, *sorted(self.attributes.items()))

    @property
    def name(self) -> str:
        return " ".join([*(self.attributes[k] for k in ("size", "colour") if k in self.attributes), self.type])


@dataclass
class SGRelation:
    subject: int                                      # index into objects
    predicate: str
    object: int
    score: float = 1.0


@dataclass
class SceneGraph:
    image: str                                        # file name (or id) of the image
    width: int
    height: int
    objects: list[SGObject] = field(default_factory=list)
    relations: list[SGRelation] = field(default_factory=list)
    image_id: int | None = None

    def triples(self) -> set[tuple[int, str, int]]:
        return {(r.subject, r.predicate, r.object) for r in self.relations}


# ---- the shapes world ----------------------------------------------------------------------------------------

def relation_name(phrase: str) -> str:
    """'left of' -> 'left_of' (the shapes world's relation phrases to vocabulary names)."""
    return phrase.strip().replace(" ", "_")


def object_box(o) -> tuple[float, float, float, float]:
    """Tight normalised box of a shapes `ShapeObject` as rendered (the proposer finds it within a pixel)."""
    if o.shape == "circle":
        return (o.cx - o.r, o.cy - o.r, o.cx + o.r, o.cy + o.r)
    from ..data.shapes_render import _polygon

    pts = _polygon(o, 1.0)
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    return (min(xs), min(ys), max(xs), max(ys))


def scene_graph_of(scene, image: str, size: int = 64, image_id: int | None = None) -> SceneGraph:
    """Ground-truth scene graph of a shapes `Scene`."""
    objs = [SGObject(object_box(o), o.shape, {"colour": o.colour, "size": o.size}) for o in scene.objects]
    rels = [SGRelation(t.subject, relation_name(t.relation), t.object) for t in scene.triples]
    return SceneGraph(image, size, size, objs, rels, image_id)


# ---- Visual Genome JSON --------------------------------------------------------------------------------------

def to_vg(g: SceneGraph, image_id: int) -> dict:
    """Visual Genome `scene_graphs.json` entry: pixel boxes x, y, w, h; `names`; `attributes` as VG's
    untyped strings plus our typed `attribute_types`; relationships by object id."""
    objs = []
    for k, o in enumerate(g.objects):
        x0, y0, x1, y1 = o.box
        objs.append({"object_id": image_id * 1000 + k, "x": round(x0 * g.width, 2), "y": round(y0 * g.height, 2),
                     "w": round((x1 - x0) * g.width, 2), "h": round((y1 - y0) * g.height, 2), "names": [o.type],
                     "attributes": list(o.attributes.values()), "attribute_types": dict(o.attributes),
                     "score": round(o.score, 6)})
    rels = [{"relationship_id": image_id * 1000 + k, "predicate": r.predicate,
             "subject_id": image_id * 1000 + r.subject, "object_id": image_id * 1000 + r.object,
             "score": round(r.score, 6)} for k, r in enumerate(g.relations)]
    return {"image_id": image_id, "file_name": g.image, "width": g.width, "height": g.height,
            "objects": objs, "relationships": rels}


def write_vg(path: str | Path, graphs: Sequence[SceneGraph]) -> Path:
    from ..io import atomic_write_text

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps([to_vg(g, g.image_id if g.image_id is not None else i + 1)
                                        for i, g in enumerate(graphs)]))
    return path


def _attr_types(obj: dict, value_to_attr: dict[str, str]) -> dict[str, str]:
    if isinstance(obj.get("attribute_types"), dict):
        return {str(k): str(v) for k, v in obj["attribute_types"].items()}
    out = {}
    for a in obj.get("attributes") or []:
        a = a if isinstance(a, str) else (a.get("attribute") or a.get("name") or "")
        out[value_to_attr.get(a, f"attribute_{len(out)}")] = a
    return out


def read_vg(path: str | Path, attribute_values: dict[str, Sequence[str]] | None = None) -> list[SceneGraph]:
    """Read Visual Genome scene-graph JSON (a list of images with objects and relationships; relationship ends
    by `subject_id`/`object_id` or as embedded `subject`/`object` dicts). Untyped VG attributes are typed by
    `attribute_values` ({"colour": [...], ...}); unknown ones become attribute_N."""
    path = Path(path)
    data = read_json(path, ValueError, "scene-graph file")
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a list of images with 'objects' and 'relationships'")
    value_to_attr = {v: k for k, vs in (attribute_values or {}).items() for v in vs}
    graphs = []
    for n, img in enumerate(data):
        where = f"{path}: image {n}"
        try:
            w, h = float(img.get("width") or 1), float(img.get("height") or 1)
            ids, objs = {}, []
            for o in img["objects"]:
                names = o.get("names") or ([o["name"]] if "name" in o else [])
                if not names:
                    raise ValueError(f"{where}: object {o.get('object_id')} has no names")
                ids[o["object_id"]] = len(objs)
                x, y, bw, bh = (float(o[k]) for k in ("x", "y", "w", "h"))
                objs.append(SGObject((x / w, y / h, (x + bw) / w, (y + bh) / h), names[0],
                                     _attr_types(o, value_to_attr), float(o.get("score", 1.0))))
            rels = []
            for r in img.get("relationships", []):
                s = r["subject_id"] if "subject_id" in r else r["subject"]["object_id"]
                t = r["object_id"] if "object_id" in r else r["object"]["object_id"]
                if s not in ids or t not in ids:
                    raise ValueError(f"{where}: relationship {r.get('relationship_id')} names an unknown object")
                rels.append(SGRelation(ids[s], str(r["predicate"]).strip().lower().replace(" ", "_"), ids[t],
                                       float(r.get("score", 1.0))))
        except KeyError as e:
            raise ValueError(f"{where}: missing field {e.args[0]!r}") from e
        graphs.append(SceneGraph(str(img.get("file_name") or img.get("url") or img.get("image_id", n)),
                                 int(w), int(h), objs, rels, img.get("image_id")))
    return graphs


# ---- metrics -------------------------------------------------------------------------------------------------

def predcls_recall(truth: Sequence[SceneGraph], scores: Sequence[torch.Tensor], predicates: Sequence[str],
                   ks: Sequence[int] = (20, 50, 100)) -> dict[str, float]:
    """Predicate classification with the true boxes and labels: every ordered pair (i, j), i != j, and
    predicate p is ranked by `scores[n][i, j, p]` (R, R, P) within its image; R@K = the share of true triples
    among the top K, averaged over images with at least one; mR@K = that recall per predicate, averaged over
    predicates (each over the images that contain it)."""
    out: dict[str, float] = {}
    index = {p: k for k, p in enumerate(predicates)}
    for K in ks:
        per_image, per_pred = [], defaultdict(list)
        for g, s in zip(truth, scores):
            gt = g.triples()
            if not gt:
                continue
            R = len(g.objects)
            s = s[:R, :R].clone().float()
            s[torch.arange(R), torch.arange(R)] = float("-inf")
            top = s.flatten().topk(min(K, R * (R - 1) * s.shape[-1])).indices.tolist()
            P = s.shape[-1]
            hit = {(t // (R * P), predicates[t % P], (t // P) % R) for t in top}
            for t in gt:
                if t[1] not in index:
                    raise ValueError(f"{g.image}: predicate {t[1]!r} is not one the model scores ({list(predicates)})")
            per_image.append(len(gt & hit) / len(gt))
            for p in {t[1] for t in gt}:
                mine = {t for t in gt if t[1] == p}
                per_pred[p].append(len(mine & hit) / len(mine))
        out[f"R@{K}"] = sum(per_image) / len(per_image) if per_image else 0.0
        out[f"mR@{K}"] = sum(sum(v) / len(v) for v in per_pred.values()) / len(per_pred) if per_pred else 0.0
    return out


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def triple_f1_with_detection(truth: Sequence[SceneGraph], predicted: Sequence[SceneGraph],
                             iou_threshold: float = 0.5, with_attributes: bool = True) -> dict[str, float]:
    """Scene-graph detection: a predicted triple is correct when a not-yet-matched true triple has the same
    predicate, both ends carry the same label (type, and attributes unless `with_attributes=False`) and both
    boxes overlap the truth with IoU >= `iou_threshold`. Micro precision, recall and F1 over all images."""
    if len(truth) != len(predicted):
        raise ValueError(f"{len(truth)} true scene graphs but {len(predicted)} predicted")
    tp = n_pred = n_true = 0

    def label(o: SGObject):
        return o.label if with_attributes else (o.type,)

    for g, p in zip(truth, predicted):
        n_true += len(g.relations)
        n_pred += len(p.relations)
        free = list(g.relations)
        for r in sorted(p.relations, key=lambda r: -r.score):
            ps, po = p.objects[r.subject], p.objects[r.object]
            for k, t in enumerate(free):
                ts, to = g.objects[t.subject], g.objects[t.object]
                if (t.predicate == r.predicate and label(ts) == label(ps) and label(to) == label(po)
                        and iou(ts.box, ps.box) >= iou_threshold and iou(to.box, po.box) >= iou_threshold):
                    tp += 1
                    del free[k]
                    break
    precision = tp / n_pred if n_pred else 0.0
    recall = tp / n_true if n_true else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "true": n_true, "predicted": n_pred, "correct": tp}
