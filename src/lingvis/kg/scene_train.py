"""Training and running the scene-graph model: shapes scenes (or Visual Genome JSON + an image folder) ->
Trainer with `SceneGraphTask`; `predict_scene_graphs` turns images (+ optional boxes) into `SceneGraph`s."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from ..data.images import normalize, to_rgb, to_tensor
from ..models import registry
from ..models import scene_graph as _sg  # noqa: F401  (registers the scene-graph family)
from ..train.config import TrainConfig
from ..train.task import Task
from ..train.trainer import Trainer
from .scene_graph import SceneGraph, SGObject, SGRelation, predcls_recall, scene_graph_of

DEFAULT_PRESET = "scene-graph-small"


def pixels_of(img, cfg) -> torch.Tensor:
    """PIL image -> (3, S, S) normalised pixels (resized to the model's square; boxes stay normalised)."""
    img = to_rgb(img)
    if img.size != (cfg.image_size, cfg.image_size):
        img = img.resize((cfg.image_size, cfg.image_size))
    return normalize(to_tensor(img), cfg.image_mean, cfg.image_std)


class SceneGraphData(Dataset):
    """(image, SceneGraph) pairs -> tensors: pixels, boxes (N, 4), type ids (N,), attribute ids {name: (N,)},
    relation targets (N, N, P) multi-hot. `images` are PIL images or a callable index -> PIL image."""

    def __init__(self, graphs: Sequence[SceneGraph], images, cfg):
        self.graphs, self.images, self.cfg = list(graphs), images, cfg
        self.type_id = {t: i for i, t in enumerate(cfg.types)}
        self.attr_id = {k: {v: i for i, v in enumerate(vs)} for k, vs in cfg.attributes.items()}
        self.pred_id = {p: i for i, p in enumerate(cfg.predicates)}
        for g in self.graphs:
            self._check(g)

    def _check(self, g: SceneGraph) -> None:
        for o in g.objects:
            if o.type not in self.type_id:
                raise ValueError(f"{g.image}: object type {o.type!r} is not one of the model's {self.cfg.types}")
            for k in self.attr_id:
                if o.attributes.get(k) not in self.attr_id[k]:
                    raise ValueError(f"{g.image}: attribute {k}={o.attributes.get(k)!r} is not one of "
                                     f"{self.cfg.attributes[k]}")
        for r in g.relations:
            if r.predicate not in self.pred_id:
                raise ValueError(f"{g.image}: predicate {r.predicate!r} is not one of {self.cfg.predicates}")
        if len(g.objects) > self.cfg.regions.get("max_regions", 6):
            raise ValueError(f"{g.image}: {len(g.objects)} objects but the model takes at most "
                             f"{self.cfg.regions.get('max_regions', 6)} regions")

    def __len__(self) -> int:
        return len(self.graphs)

    def __getitem__(self, i: int) -> dict:
        g = self.graphs[i]
        img = self.images(i) if callable(self.images) else self.images[i]
        n, P = len(g.objects), len(self.cfg.predicates)
        rel = torch.zeros(n, n, P)
        for r in g.relations:
            rel[r.subject, r.object, self.pred_id[r.predicate]] = 1.0
        return {"pixels": pixels_of(img, self.cfg),
                "boxes": torch.tensor([o.box for o in g.objects], dtype=torch.float32).view(n, 4),
                "types": torch.tensor([self.type_id[o.type] for o in g.objects], dtype=torch.long),
                "attrs": {k: torch.tensor([self.attr_id[k][o.attributes[k]] for o in g.objects], dtype=torch.long)
                          for k in self.attr_id},
                "rel": rel}


def shapes_scene_graphs(split: str, n: int, seed: int = 0, image_size: int = 64) -> SceneGraphData:
    """Scene graphs of built-in shapes scenes (rendered on access)."""
    from ..data.shapes import make_split_scenes, render_scene

    scenes = make_split_scenes(split, n, seed)
    graphs = [scene_graph_of(s, f"{split}_{k:06d}.png", image_size) for k, s in enumerate(scenes)]
    cfg = registry.preset_config(DEFAULT_PRESET, image_size=image_size)[1]
    return SceneGraphData(graphs, lambda i: render_scene(scenes[i], image_size), cfg)


class SceneGraphTask(Task):
    """Cross-entropy on object types and attributes, binary cross-entropy on every ordered pair's
    predicates. Boxes are jittered by up to `jitter` (image fraction) in training, as proposals wobble."""

    name = "scene-graph"
    metric_for_best = "score"
    greater_is_better = True

    def __init__(self, jitter: float = 1.5 / 64):
        self.jitter = jitter

    def collate(self, samples: list[dict]) -> dict:
        B, R = len(samples), max(1, max(len(s["types"]) for s in samples))
        P = samples[0]["rel"].shape[-1]
        boxes = torch.zeros(B, R, 4)
        boxes[..., 2:] = 1.0  # padding boxes: the whole image (masked out)
        mask = torch.zeros(B, R, dtype=torch.long)
        types = torch.zeros(B, R, dtype=torch.long)
        attrs = {k: torch.zeros(B, R, dtype=torch.long) for k in samples[0]["attrs"]}
        rel = torch.zeros(B, R, R, P)
        for b, s in enumerate(samples):
            n = len(s["types"])
            boxes[b, :n], mask[b, :n], types[b, :n], rel[b, :n, :n] = s["boxes"], 1, s["types"], s["rel"]
            for k in attrs:
                attrs[k][b, :n] = s["attrs"][k]
        return {"pixel_values": torch.stack([s["pixels"] for s in samples]), "boxes": boxes, "box_mask": mask,
                "types": types, "attrs": attrs, "rel": rel}

    def loss(self, model: nn.Module, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        boxes = batch["boxes"]
        if model.training and self.jitter:
            boxes = (boxes + (torch.rand_like(boxes) * 2 - 1) * self.jitter).clamp(0, 1)
        out = model(batch["pixel_values"], boxes, batch["box_mask"])
        m = batch["box_mask"].bool()  # (B, R)
        loss = F.cross_entropy(out["type_logits"][m], batch["types"][m])
        metrics = {"type_acc": float((out["type_logits"][m].argmax(-1) == batch["types"][m]).float().mean())}
        for k, logits in out["attr_logits"].items():
            loss = loss + F.cross_entropy(logits[m], batch["attrs"][k][m])
            metrics[f"{k}_acc"] = float((logits[m].argmax(-1) == batch["attrs"][k][m]).float().mean())
        R = m.shape[1]
        pair = m[:, :, None] & m[:, None, :] & ~torch.eye(R, dtype=torch.bool, device=m.device)  # (B, R, R)
        if pair.any():
            logits, target = out["pred_logits"][pair], batch["rel"][pair]  # (n_pairs, P)
            loss = loss + F.binary_cross_entropy_with_logits(logits, target)
            pred = logits > 0
            tp = float((pred & (target > 0)).sum())
            denom = float(pred.sum() + (target > 0).sum())
            metrics["pred_f1"] = 2 * tp / denom if denom else 1.0
        else:
            metrics["pred_f1"] = 1.0
        accs = [v for k, v in metrics.items() if k.endswith("_acc")] + [metrics["pred_f1"]]
        metrics["score"] = sum(accs) / len(accs)
        return loss, metrics

    def tokens_in(self, batch: dict) -> int:
        return int(batch["box_mask"].sum())


@dataclass
class SceneGraphArgs:
    out: str
    preset: str = DEFAULT_PRESET
    model: str | None = None          # fine-tune this checkpoint
    data: str | None = None           # Visual Genome JSON (default: built-in shapes scenes)
    images: str | None = None         # image folder for --data (file_name of each image)
    val_fraction: float = 0.1
    n_train: int = 4000               # built-in shapes sizes
    n_val: int = 200
    image_size: int = 64
    seed: int = 0


def _vg_data(args: SceneGraphArgs, cfg) -> tuple[SceneGraphData, SceneGraphData]:
    from ..data.images import load_image
    from .scene_graph import read_vg

    if not args.images:
        raise ValueError("--images (the folder holding each scene graph's file_name) is required with --data")
    graphs = read_vg(args.data, cfg.attributes)
    root = Path(args.images)
    n_val = max(1, int(len(graphs) * args.val_fraction))
    if len(graphs) < 2:
        raise ValueError(f"{args.data}: need at least 2 images to split off validation, got {len(graphs)}")
    train, val = graphs[n_val:], graphs[:n_val]
    return (SceneGraphData(train, lambda i: load_image(root / train[i].image), cfg),
            SceneGraphData(val, lambda i: load_image(root / val[i].image), cfg))


def train_scene_graph(args: SceneGraphArgs, cfg: TrainConfig, resume: bool = False) -> dict:
    """Train (or fine-tune / resume) a scene-graph model; returns the trainer summary."""
    torch.manual_seed(cfg.seed)
    if args.model:
        from .. import api

        model = api.load(args.model).train()
        if getattr(model, "family", None) != "scene-graph":
            raise ValueError(f"{args.model} holds a {getattr(model, 'family', '?')} model, not scene-graph")
    else:
        fam, mcfg = registry.preset_config(args.preset, image_size=args.image_size)
        if fam != "scene-graph":
            raise ValueError(f"preset {args.preset!r} is a {fam} model, not scene-graph")
        model = registry.family(fam).model_cls(mcfg)
    if args.data:
        train_set, val_set = _vg_data(args, model.config)
    else:
        train_set = shapes_scene_graphs("train", args.n_train, args.seed, args.image_size)
        val_set = shapes_scene_graphs("val", args.n_val, args.seed, args.image_size)
        train_set.cfg = val_set.cfg = model.config
    summary = Trainer(model, SceneGraphTask(), train_set, val_set, cfg, args.out,
                      meta={"task": "scene-graph"}).fit(resume)
    summary.update(train_images=len(train_set), val_images=len(val_set))
    return summary


@torch.no_grad()
def predict_scene_graphs(model, images: Sequence, boxes: Sequence | None = None, threshold: float = 0.5,
                         batch_size: int = 32, names: Sequence[str] | None = None,
                         return_scores: bool = False):
    """Scene graphs of PIL `images`; `boxes` (one list of normalised (x0, y0, x1, y1) per image) are used as
    given, otherwise regions are proposed. Relations are the ordered pairs whose predicate probability
    exceeds `threshold`. With `return_scores`, also each image's (R, R, P) predicate probabilities."""
    model.eval()
    c = model.config
    device = next(model.parameters()).device
    graphs, all_scores = [], []
    for start in range(0, len(images), batch_size):
        chunk = images[start:start + batch_size]
        px = torch.stack([pixels_of(im, c) for im in chunk]).to(device)
        if boxes is not None:
            bb = boxes[start:start + batch_size]
            R = max(1, max(len(b) for b in bb))
            bt = torch.zeros(len(bb), R, 4, device=device)
            bt[..., 2:] = 1.0
            bm = torch.zeros(len(bb), R, dtype=torch.long, device=device)
            for k, b in enumerate(bb):
                if len(b):
                    bt[k, :len(b)] = torch.tensor(b, dtype=torch.float32)
                    bm[k, :len(b)] = 1
            out = model(px, bt, bm)
        else:
            out = model(px)
        type_p = out["type_logits"].softmax(-1)  # (B, R, T)
        attr_p = {k: v.softmax(-1) for k, v in out["attr_logits"].items()}
        pred_p = out["pred_logits"].sigmoid()  # (B, R, R, P)
        for b in range(px.shape[0]):
            idx = out["box_mask"][b].nonzero().flatten().tolist()
            objs = []
            for r in idx:
                tp, ti = type_p[b, r].max(0)
                attrs, score = {}, float(tp)
                for k, p in attr_p.items():
                    ap, ai = p[b, r].max(0)
                    attrs[k] = c.attributes[k][int(ai)]
                    score *= float(ap)
                objs.append(SGObject(tuple(float(v) for v in out["boxes"][b, r].tolist()), c.types[int(ti)],
                                     attrs, score))
            rels = []
            sc = pred_p[b][idx][:, idx]  # (n, n, P)
            for i in range(len(idx)):
                for j in range(len(idx)):
                    if i == j:
                        continue
                    for p in (sc[i, j] > threshold).nonzero().flatten().tolist():
                        rels.append(SGRelation(i, c.predicates[p], j, float(sc[i, j, p])))
            name = names[start + b] if names is not None else str(start + b)
            graphs.append(SceneGraph(name, *chunk[b].size, objs, rels))
            all_scores.append(sc.cpu())
    return (graphs, all_scores) if return_scores else graphs


def evaluate_scene_graphs(model, truth: Sequence[SceneGraph], images: Sequence, ks=(20, 50, 100)) -> dict:
    """PredCls R@K / mR@K (true boxes given) and triple F1 with detection (boxes proposed) on held-out images,
    plus object type / attribute accuracy with the true boxes."""
    from .scene_graph import triple_f1_with_detection

    given, scores = predict_scene_graphs(model, images, [[o.box for o in g.objects] for g in truth],
                                         return_scores=True)
    out = predcls_recall(truth, scores, model.config.predicates, ks)
    n = sum(len(g.objects) for g in truth)
    out["type_acc"] = sum(o.type == t.type for g, p in zip(truth, given) for o, t in zip(p.objects, g.objects)) / n
    for k in model.config.attributes:
        out[f"{k}_acc"] = sum(o.attributes.get(k) == t.attributes.get(k)
                              for g, p in zip(truth, given) for o, t in zip(p.objects, g.objects)) / n
    detected = predict_scene_graphs(model, images)
    det = triple_f1_with_detection(truth, detected)
    out.update({f"sgdet_{k}": v for k, v in det.items()})
    return out
