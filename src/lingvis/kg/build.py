"""`kg build`: COCO-format captions and/or a folder of images -> one source graph per caption and per image.

Per scene (an image file; its captions join by COCO `image_id` -> `file_name`): the scene-graph model turns
the image into objects, attributes and predicates; the text model turns each caption into typed triples and
mentions; mentions are linked to the image's objects and to the scene's entities already in the graph
(`linking`), so entities are shared across captions, images and later builds. Entity ids are
`<scene>/<colour>-<type>` (a numeric suffix if taken)."""
from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..jsonfile import read_json
from . import linking
from .mention_tagger import TaggedMention
from .records import TYPE, Entity, Mention, SourceDoc, Statement
from .scene_graph import SceneGraph
from .text_triples import mention_attributes


@dataclass
class SceneInput:
    scene: str                                    # scene key: the image file name (or "image:<id>")
    image: object | None = None                   # PIL image, or None (captions only)
    file: str | None = None
    captions: list[tuple[str, str]] = field(default_factory=list)  # (source name "caption:<id>", text)
    boxes: list[tuple[float, float, float, float]] | None = None    # given regions (normalised)


@dataclass
class Models:
    text: object | None = None                    # seq2seq model (sentence -> linearised triples)
    tokenizer: object | None = None
    scene: object | None = None                   # scene-graph model
    clip: object | None = None
    clip_tokenizer: object | None = None
    tagger: object | None = None                  # BERT BIO tagger: more caption mentions
    tagger_tokenizer: object | None = None
    text_name: str = "text-triples"
    scene_name: str = "scene-graph"
    link_name: str = "linker"
    tagger_name: str = "mention-tagger"


def read_coco_scenes(captions: str | Path | None, images: str | Path | None) -> list[SceneInput]:
    """Scenes from a COCO captions JSON and/or an image folder (either alone works). Images load lazily."""
    by_scene: dict[str, SceneInput] = {}
    if images is not None:
        from ..zeroshot import list_images

        root = Path(images)
        if not root.is_dir():
            raise FileNotFoundError(f"--images {root} is not a folder")
        for p in list_images(root):
            rel = p.relative_to(root).as_posix()
            by_scene[rel] = SceneInput(rel, file=str(p))
    if captions is not None:
        path = Path(captions)
        data = read_json(path, ValueError, "captions file")
        if not isinstance(data, dict) or not isinstance(data.get("annotations"), list):
            raise ValueError(f"{path}: not COCO captions: expected an object with an 'annotations' list")
        names = {}
        for im in data.get("images", []):
            try:
                names[im["id"]] = str(im["file_name"])
            except (KeyError, TypeError) as e:
                raise ValueError(f"{path}: an entry of 'images' lacks {e}") from e
        for n, a in enumerate(data["annotations"]):
            try:
                image_id, text = a["image_id"], str(a["caption"])
            except (KeyError, TypeError) as e:
                raise ValueError(f"{path}: annotation {n} lacks {e}") from e
            scene = names.get(image_id, f"image:{image_id}")
            if scene not in by_scene:
                if images is not None:
                    continue  # a caption of an image not in the folder: skipped with the image
                by_scene[scene] = SceneInput(scene)
            by_scene[scene].captions.append((f"caption:{a.get('id', f'{image_id}-{n}')}", text))
    if images is None and captions is None:
        raise ValueError("give --captions, --images or both")
    return sorted(by_scene.values(), key=lambda s: s.scene)


def _mint(scene: str, typ: str, attrs: dict[str, str], taken: set[str]) -> str:
    base = f"{scene}/{attrs['colour']}-{typ}" if "colour" in attrs else f"{scene}/{typ}"
    key, k = base, 2
    while key in taken:
        key, k = f"{base}-{k}", k + 1
    taken.add(key)
    return key


def _union(a, b):
    return (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))


def scene_docs(sc: SceneInput, graph: SceneGraph | None, extracted: list, existing: list[Entity],
               models: Models, threshold: float = 0.5) -> tuple[list[SourceDoc], dict]:
    """The source documents of one scene (its image and captions) and linking details: `extracted` holds
    (triples, mentions) per caption; `existing` the scene's entities already stored."""
    taken = {e.id for e in existing}
    cands = [linking.Candidate(e.id, e.type, dict(e.attributes)) for e in existing]
    obj_ids: list[str] = []
    docs, info = [], {"image_links": [], "caption_links": []}
    # 1. image objects: reuse a stored entity they agree with, else mint
    if graph is not None:
        stated = [{"type": o.type, **o.attributes} for o in graph.objects]
        links = linking.assign(linking.score_matrix(stated, cands), threshold=0.75) if cands else \
            [linking.Link(i, None, 1.0) for i in range(len(stated))]
        for o, l in zip(graph.objects, links):
            eid = cands[l.candidate].key if l.candidate is not None else _mint(sc.scene, o.type, o.attributes, taken)
            obj_ids.append(eid)
            info["image_links"].append(l.candidate is not None)
        img_cands = [linking.Candidate(eid, o.type, dict(o.attributes), crop=linking.crop(sc.image, o.box))
                     for eid, o in zip(obj_ids, graph.objects)]
        if models.clip is not None and img_cands:
            embs = linking.clip_image_embeddings(models.clip, [c.crop for c in img_cands])
            for c, e in zip(img_cands, embs):
                c.clip = e
        cands = img_cands + [c for c in cands if c.key not in set(obj_ids)]
        docs.append(_image_doc(sc, graph, obj_ids, models))
    # 2. caption mentions: link to image objects and stored entities, else dedup by minted key
    minted: dict[tuple, str] = {}
    for (source, text), (triples, mentions) in zip(sc.captions, extracted):
        ments = _caption_mentions(triples, mentions)
        stated = [{"type": m.type, **mention_attributes(m)} for m in ments]
        text_clip = None
        if models.clip is not None and ments and any(c.clip is not None for c in cands):
            text_clip = linking.clip_text_embeddings(models.clip, models.clip_tokenizer, [m.text for m in ments])
        links = linking.assign(linking.score_matrix(stated, cands, text_clip), threshold)
        ids = []
        for m, st, l in zip(ments, stated, links):
            if l.candidate is not None:
                ids.append(cands[l.candidate].key)
            else:
                key = (st.get("type"), st.get("colour"))
                if key not in minted:
                    minted[key] = _mint(sc.scene, m.type, st, taken)
                    cands.append(linking.Candidate(minted[key], m.type, {k: v for k, v in st.items() if k != "type"}))
                ids.append(minted[key])
        info["caption_links"].append([(m.text, i, l.score, l.candidate is not None) for m, i, l in zip(ments, ids, links)])
        docs.append(_caption_doc(sc, source, text, triples, ments, stated, ids, links, models))
    return docs, info


def _caption_mentions(triples, mentions) -> list:
    """Distinct mentions of a caption (by span, else text), in order of appearance."""
    seen, out = set(), []
    for m in [x for t in triples for x in (t.head, t.tail)] + list(mentions):
        key = m.span or m.text.lower()
        if key not in seen:
            seen.add(key)
            out.append(m)
    return sorted(out, key=lambda m: m.span[0] if m.span else 0)


def _image_doc(sc: SceneInput, g: SceneGraph, ids: list[str], models: Models) -> SourceDoc:
    ents, sts, ms = [], [], []
    for eid, o in zip(ids, g.objects):
        ents.append(Entity(eid, o.type, o.name, dict(o.attributes), [sc.scene], sc.scene))
        sts.append(Statement(eid, TYPE, o.type, sc.scene, round(o.score, 6), models.scene_name, box=o.box))
        for k, v in o.attributes.items():
            sts.append(Statement(eid, k, v, sc.scene, round(o.score, 6), models.scene_name, box=o.box, literal=True))
        ms.append(Mention(eid, sc.scene, None, None, o.box, round(o.score, 6), models.scene_name))
    for r in g.relations:
        box = _union(g.objects[r.subject].box, g.objects[r.object].box)
        sts.append(Statement(ids[r.subject], r.predicate, ids[r.object], sc.scene, round(r.score, 6),
                             models.scene_name, box=box))
    return SourceDoc(sc.scene, "image", file=sc.scene, scene=sc.scene, entities=ents, statements=sts, mentions=ms)


def _caption_doc(sc, source, text, triples, ments, stated, ids, links, models: Models) -> SourceDoc:
    by_span = {m.span or m.text.lower(): i for m, i in zip(ments, ids)}
    ents, sts, out_m = {}, [], []
    conf_of = {}
    for t in triples:
        for m in (t.head, t.tail):
            conf_of[m.span or m.text.lower()] = max(conf_of.get(m.span or m.text.lower(), 0.0), t.confidence)
    for m, st, eid, l in zip(ments, stated, ids, links):
        attrs = {k: v for k, v in st.items() if k != "type"}
        if eid not in ents:
            ents[eid] = Entity(eid, m.type, m.text, attrs, [source], sc.scene)
        conf = round(conf_of.get(m.span or m.text.lower(), 1.0), 6)
        by = models.tagger_name if isinstance(m, TaggedMention) else models.text_name
        sts.append(Statement(eid, TYPE, m.type, source, conf, by, span=m.span))
        for k, v in attrs.items():
            sts.append(Statement(eid, k, v, source, conf, by, span=m.span, literal=True))
        out_m.append(Mention(eid, source, m.text, m.span, None, round(l.score if l.candidate is not None else 1.0, 6),
                             models.link_name))
    for t in triples:
        h, tl = by_span[t.head.span or t.head.text.lower()], by_span[t.tail.span or t.tail.text.lower()]
        span = (min(t.head.span[0], t.tail.span[0]), max(t.head.span[1], t.tail.span[1])) \
            if t.head.span and t.tail.span else None
        sts.append(Statement(h, t.relation, tl, source, round(t.confidence, 6), models.text_name, span=span))
    return SourceDoc(source, "caption", text=text, scene=sc.scene, entities=list(ents.values()), statements=sts,
                     mentions=out_m)


def stored_scene_entities(store, scenes: Sequence[str]) -> dict[str, list[Entity]]:
    """Entities already stored for each scene, with their attributes."""
    from . import queries as Q
    from . import vocab as V
    from .rdf import lit

    if not scenes:
        return {}
    values = " ".join(lit(s) for s in scenes)
    q = Q.PREFIX + f"""SELECT ?e ?scene ?type ?p ?v WHERE {{
      VALUES ?scene {{ {values} }}
      ?e a kg:Entity ; kg:scene ?scene .
      OPTIONAL {{ ?e a ?type . FILTER(?type != kg:Entity) }}
      OPTIONAL {{ ?e ?p ?v . FILTER(isLiteral(?v) && ?p != rdfs:label && ?p != kg:scene) }} }}"""
    ents: dict[str, Entity] = {}
    for r in store.query(q).rows:
        eid = V.entity_id(r["e"]["value"])
        e = ents.setdefault(eid, Entity(eid, "Entity", scene=r["scene"]["value"]))
        if "type" in r:
            e.type = V.local_name(r["type"]["value"])
        if "p" in r:
            e.attributes.setdefault(V.local_name(r["p"]["value"]), r["v"]["value"])
    out: dict[str, list[Entity]] = defaultdict(list)
    for e in sorted(ents.values(), key=lambda e: e.id):
        out[e.scene].append(e)
    return out


def build(store, scenes: Iterable[SceneInput], models: Models, batch_size: int = 64, threshold: float = 0.5,
          rel_threshold: float = 0.5, progress=None) -> dict:
    """Extract, link and store every scene; returns counts and throughput."""
    from ..data.images import load_image
    from .scene_train import predict_scene_graphs
    from .text_train import extract_triples

    scenes = list(scenes)
    if any(s.captions for s in scenes) and models.text is None:
        raise ValueError("captions need a text model (--text-model RUN; train one with `lingvis kg train-text`)")
    if any(s.file or s.image for s in scenes) and models.scene is None:
        raise ValueError("images need a scene-graph model (--scene-model RUN; train one with "
                         "`lingvis kg train-scenes`)")
    store.ensure_vocabulary()
    t0 = time.perf_counter()
    n_docs = links = linked = 0
    for start in range(0, len(scenes), batch_size):
        batch = scenes[start:start + batch_size]
        for s in batch:
            if s.image is None and s.file:
                s.image = load_image(s.file)
        with_img = [s for s in batch if s.image is not None]
        graphs = {}
        if with_img:
            given = [s.boxes for s in with_img]
            boxes = given if all(b is not None for b in given) else None
            preds = predict_scene_graphs(models.scene, [s.image for s in with_img], boxes, threshold=rel_threshold,
                                         names=[s.scene for s in with_img])
            graphs = {s.scene: g for s, g in zip(with_img, preds)}
        texts = [t for s in batch for _, t in s.captions]
        extracted = iter(with_tagged_mentions(extract_triples(models.text, models.tokenizer, texts), texts, models)
                         if texts else [])
        existing = stored_scene_entities(store, [s.scene for s in batch])
        docs = []
        for s in batch:
            d, info = scene_docs(s, graphs.get(s.scene), [next(extracted) for _ in s.captions],
                                 existing.get(s.scene, []), models, threshold)
            docs += d
            for caps in info["caption_links"]:
                links += len(caps)
                linked += sum(x[3] for x in caps)
            s.image = None  # free the pixels
        store.add_docs(docs)
        n_docs += len(docs)
        if progress:
            progress(start + len(batch), len(scenes))
    dt = time.perf_counter() - t0
    return {"scenes": len(scenes), "documents": n_docs, "mentions": links, "linked_mentions": linked,
            "seconds": round(dt, 2), "scenes_per_s": round(len(scenes) / dt, 2) if dt else None,
            "quads": len(store)}


def with_tagged_mentions(extracted: list, texts: list[str], models: Models) -> list:
    """(triples, mentions) per text, the tagger's mentions added where their spans overlap none of the
    generator's (so each entity is mentioned once per span)."""
    if models.tagger is None:
        return extracted
    from .mention_tagger import tag_mentions

    out = []
    for (triples, mentions), tagged in zip(extracted, tag_mentions(models.tagger, models.tagger_tokenizer, texts)):
        spans = [m.span for m in [x for t in triples for x in (t.head, t.tail)] + list(mentions) if m.span]
        extra = [m for m in tagged if not any(m.span[0] < b and a < m.span[1] for a, b in spans)]
        out.append((triples, list(mentions) + extra))
    return out


def load_models(text_model: str | None, scene_model: str | None, clip: str | None = None,
                device: str = "cpu", tagger: str | None = None) -> Models:
    from .. import api
    from ..models import scene_graph as _sg  # noqa: F401  (registers the family for api.load)

    m = Models()
    if text_model:
        m.text, m.tokenizer = api.load(text_model, device=device), api.load_tokenizer(text_model)
        if getattr(m.text, "family", None) != "seq2seq":
            raise ValueError(f"--text-model {text_model} holds a {getattr(m.text, 'family', '?')} model, not seq2seq")
        m.text_name = f"text-triples:{Path(text_model).resolve().name}"
    if scene_model:
        m.scene = api.load(scene_model, device=device)
        if getattr(m.scene, "family", None) != "scene-graph":
            raise ValueError(f"--scene-model {scene_model} holds a {getattr(m.scene, 'family', '?')} model, "
                             "not scene-graph")
        m.scene_name = f"scene-graph:{Path(scene_model).resolve().name}"
    if clip:
        m.clip, m.clip_tokenizer = api.load(clip, device=device), api.load_tokenizer(clip)
        if not hasattr(m.clip, "encode_image"):
            raise ValueError(f"--clip {clip} holds a {getattr(m.clip, 'family', '?')} model, not a CLIP")
        m.link_name = f"linker+clip:{Path(clip).resolve().name}"
    if tagger:
        m.tagger, m.tagger_tokenizer = api.load(tagger, device=device), api.load_tokenizer(tagger)
        m.tagger_name = f"mention-tagger:{Path(tagger).resolve().name}"
        if getattr(m.tagger.config, "head", None) != "tag":
            raise ValueError(f"--tagger {tagger} holds no BERT token classifier (head "
                             f"{getattr(m.tagger.config, 'head', '?')!r}); train one with `lingvis kg train-tagger`")
    return m
