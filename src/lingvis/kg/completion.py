"""Link prediction: triples (from a graph in the store, an FB15k-237-style folder of train/valid/test.txt
TSVs, or the built-in graph with known rules) -> a KGE model (`models.kge`) trained through the one Trainer
with `LinkPredictionTask` (negative sampling, PyKEEN's self-adversarial NSSA loss or softplus for ComplEx),
evaluated by filtered rank metrics (MRR, Hits@1/3/10, PyKEEN's "realistic" rank that averages the optimistic
and pessimistic rank on ties, both head and tail prediction)."""
from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from ..models import kge as _kge  # noqa: F401  (registers the kge family)
from ..models import registry
from ..train.config import TrainConfig
from ..train.task import Task
from ..train.trainer import Trainer


@dataclass
class KGData:
    """Labelled triples split into train/valid/test, with the id maps."""
    entities: list[str]
    relations: list[str]
    train: torch.Tensor                        # (n, 3) long (h, r, t)
    valid: torch.Tensor
    test: torch.Tensor
    meta: dict = field(default_factory=dict)

    @property
    def all_true(self) -> torch.Tensor:
        return torch.cat([self.train, self.valid, self.test])

    def summary(self) -> dict:
        return {"entities": len(self.entities), "relations": len(self.relations), "train": len(self.train),
                "valid": len(self.valid), "test": len(self.test)}


def _index(triples: Sequence[tuple[str, str, str]], ent: dict, rel: dict) -> torch.Tensor:
    return torch.tensor([(ent[h], rel[r], ent[t]) for h, r, t in triples], dtype=torch.long).view(-1, 3)


def from_labeled(train: Sequence, valid: Sequence, test: Sequence, meta: dict | None = None) -> KGData:
    """Id maps from the training triples; valid/test triples with an entity or relation unseen in training are
    dropped (transductive link prediction) and counted in meta."""
    ents = sorted({x for h, _, t in train for x in (h, t)})
    rels = sorted({r for _, r, _ in train})
    ent, rel = {e: i for i, e in enumerate(ents)}, {r: i for i, r in enumerate(rels)}
    keep = lambda ts: [x for x in ts if x[0] in ent and x[2] in ent and x[1] in rel]  # noqa: E731
    v, te = keep(valid), keep(test)
    meta = {**(meta or {}), "dropped_unseen": len(valid) - len(v) + len(test) - len(te)}
    return KGData(ents, rels, _index(train, ent, rel), _index(v, ent, rel), _index(te, ent, rel), meta)


def read_tsv(path: Path) -> list[tuple[str, str, str]]:
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        parts = line.rstrip("\n").split("\t")
        if len(parts) != 3:
            raise ValueError(f"{path}:{n}: expected 3 tab-separated fields (head, relation, tail), got {len(parts)}")
        out.append(tuple(p.strip() for p in parts))
    return out


def read_tsv_folder(folder: str | Path) -> KGData:
    """FB15k-237 / WN18RR layout: train.txt, valid.txt, test.txt of `head<TAB>relation<TAB>tail` lines."""
    folder = Path(folder)
    files = {s: folder / f"{s}.txt" for s in ("train", "valid", "test")}
    missing = [str(p) for p in files.values() if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"{folder}: an FB15k-237-style folder needs train.txt, valid.txt and test.txt; "
                                f"missing {missing}")
    return from_labeled(*(read_tsv(files[s]) for s in ("train", "valid", "test")), meta={"source": str(folder)})


def split_triples(triples: Sequence, valid: float = 0.1, test: float = 0.1, seed: int = 0) -> KGData:
    """A random split of one triple list (deduplicated)."""
    uniq = sorted(set(tuple(x) for x in triples))
    rng = random.Random(seed)
    rng.shuffle(uniq)
    n_v, n_t = int(len(uniq) * valid), int(len(uniq) * test)
    if len(uniq) - n_v - n_t < 1:
        raise ValueError(f"too few triples ({len(uniq)}) to split off validation and test sets")
    return from_labeled(uniq[n_v + n_t:], uniq[:n_v], uniq[n_v:n_v + n_t], meta={"triples": len(uniq)})


def store_triples(store, attributes: bool = False) -> list[tuple[str, str, str]]:
    """Entity-to-entity triples asserted in the store (each once); with `attributes`, also
    (entity, attribute, "attribute=value") triples, so colours and sizes can be completed too."""
    from . import queries as Q
    from . import vocab as V

    out = {(V.entity_id(r["s"]["value"]), V.local_name(r["p"]["value"]), V.entity_id(r["o"]["value"]))
           for r in store.query(Q.RELATION_TRIPLES).rows}
    if attributes:
        for e in store.entities():
            for k, v in e.attributes.items():
                out.add((e.id, k, f"{k}={v}"))
    return sorted(out)


def rules_graph(n_people: int = 200, seed: int = 0, valid: float = 0.1, test: float = 0.1) -> KGData:
    """A built-in graph generated by known rules, so every held-out triple follows from training triples:
    three generations of people with parent_of / child_of (inverses), sibling_of (symmetric), grandparent_of
    (= parent_of . parent_of); families share a home, so lives_in = child_of . lives_in, and works_in equals
    lives_in; cities are located_in countries and citizen_of = lives_in . located_in."""
    rng = random.Random(seed)
    people = [f"person_{i}" for i in range(n_people)]
    countries = [f"country_{i}" for i in range(5)]
    cities = [f"city_{i}" for i in range(25)]
    country_of = {c: countries[i % len(countries)] for i, c in enumerate(cities)}
    triples = {(c, "located_in", k) for c, k in country_of.items()}
    gens = [people[i::3] for i in range(3)]  # three generations; a parent has ~2 children on average
    parent: dict[str, str] = {}
    for g in range(2):
        parents = gens[g][:max(1, len(gens[g]) // 2)]
        for child in gens[g + 1]:
            parent[child] = parents[rng.randrange(len(parents))]
    kids: dict[str, list[str]] = {}
    for child, p in parent.items():
        triples |= {(p, "parent_of", child), (child, "child_of", p)}
        kids.setdefault(p, []).append(child)
    for p, ks in kids.items():
        triples |= {(a, "sibling_of", b) for a in ks for b in ks if a != b}
        triples |= {(p, "grandparent_of", gk) for a in ks for gk in kids.get(a, [])}
    home: dict[str, str] = {}
    for person in (x for gen in gens for x in gen):  # generation by generation: a child lives with its parent
        home[person] = home[parent[person]] if person in parent else cities[rng.randrange(len(cities))]
    for person, city in home.items():
        triples |= {(person, "lives_in", city), (person, "works_in", city), (person, "citizen_of", country_of[city])}
    data = split_triples(sorted(triples), valid, test, seed)
    data.meta.update(source="rules", people=n_people)
    return data


# ---- training -------------------------------------------------------------------------------------------------

class TripleSet(Dataset):
    def __init__(self, triples: torch.Tensor):
        self.triples = triples

    def __len__(self) -> int:
        return len(self.triples)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.triples[i]


class LinkPredictionTask(Task):
    """Negative sampling (each positive gets `negatives` corruptions of its head or tail, 50/50, uniform over
    entities; PyKEEN's basic sampler). Loss 'nssa': self-adversarial negative sampling with margin and
    temperature (PyKEEN's NSSALoss); 'softplus': logistic loss (ComplEx). Evaluation: filtered MRR and
    Hits@1/3/10 on the validation triples."""

    name = "link-prediction"
    metric_for_best = "mrr"
    greater_is_better = True

    def __init__(self, n_entities: int, all_true: torch.Tensor, negatives: int = 64, loss: str = "nssa",
                 margin: float = 9.0, temperature: float = 1.0, seed: int = 0):
        if loss not in ("nssa", "softplus"):
            raise ValueError(f"loss must be 'nssa' or 'softplus', got {loss!r}")
        self.n_entities, self.all_true, self.negatives = n_entities, all_true, negatives
        self.loss_name, self.margin, self.temperature = loss, margin, temperature
        self.gen = torch.Generator().manual_seed(seed)

    def collate(self, samples: list[torch.Tensor]) -> dict:
        pos = torch.stack(samples)  # (B, 3)
        B, K = len(pos), self.negatives
        neg = pos[:, None, :].repeat(1, K, 1)  # (B, K, 3)
        corrupt_head = torch.rand(B, K, generator=self.gen) < 0.5
        rand = torch.randint(0, self.n_entities, (B, K), generator=self.gen)
        neg[..., 0] = torch.where(corrupt_head, rand, neg[..., 0])
        neg[..., 2] = torch.where(corrupt_head, neg[..., 2], rand)
        return {"pos": pos, "neg": neg}

    def loss(self, model: nn.Module, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        pos, neg = model(batch["pos"]), model(batch["neg"])  # (B,), (B, K)
        if self.loss_name == "nssa":
            w = (self.temperature * neg.detach()).softmax(-1)
            loss = 0.5 * (-F.logsigmoid(self.margin + pos).mean() + (w * -F.logsigmoid(-neg - self.margin)).sum(-1).mean())
        else:
            loss = 0.5 * (F.softplus(-pos).mean() + F.softplus(neg).mean())
        return loss, {"pos_score": float(pos.detach().mean()), "neg_score": float(neg.detach().mean())}

    def tokens_in(self, batch: dict) -> int:
        return int(batch["pos"].shape[0])

    @torch.no_grad()
    def evaluate(self, model: nn.Module, batches) -> dict[str, float]:
        batches = list(batches)
        out = Task.evaluate(self, model, batches)
        triples = torch.cat([b["pos"] for b in batches])
        out.update(rank_metrics(model, triples, self.all_true))
        return out


# ---- evaluation ----------------------------------------------------------------------------------------------

def filter_index(all_true: torch.Tensor) -> tuple[dict, dict]:
    """{(h, r): [tails]} and {(r, t): [heads]} of every known triple."""
    tails, heads = {}, {}
    for h, r, t in all_true.tolist():
        tails.setdefault((h, r), []).append(t)
        heads.setdefault((r, t), []).append(h)
    return tails, heads


def ranks_from_scores(scores: torch.Tensor, true_idx: torch.Tensor) -> torch.Tensor:
    """Realistic ranks: scores (B, N) with filtered candidates already set to NaN, true ids (B,) ->
    (B,) float ranks = (optimistic + pessimistic) / 2 (the expected rank under random tie-breaking)."""
    true = scores.gather(1, true_idx[:, None])  # (B, 1)
    optimistic = (scores > true).sum(1) + 1
    pessimistic = (scores >= true).sum(1)
    return (optimistic + pessimistic).float() / 2


def metrics_from_ranks(ranks: torch.Tensor, ks: Sequence[int] = (1, 3, 10)) -> dict[str, float]:
    out = {"mrr": float((1.0 / ranks).mean()), "mean_rank": float(ranks.mean())}
    for k in ks:
        out[f"hits@{k}"] = float((ranks <= k).float().mean())
    return out


@torch.no_grad()
def filtered_scores(model, triples: torch.Tensor, all_true: torch.Tensor, side: str,
                    index: tuple[dict, dict] | None = None) -> torch.Tensor:
    """(B, N) scores of every candidate tail ('tail') or head ('head'), with every other known true candidate
    set to NaN (the filtered setting)."""
    tails, heads = index or filter_index(all_true)
    h, r, t = triples.unbind(-1)
    scores = (model.score_t(h, r) if side == "tail" else model.score_h(r, t)).float().clone()
    for b, (hh, rr, tt) in enumerate(triples.tolist()):
        known = tails.get((hh, rr), []) if side == "tail" else heads.get((rr, tt), [])
        target = tt if side == "tail" else hh
        others = [x for x in known if x != target]
        if others:
            scores[b, others] = float("nan")
    return scores


@torch.no_grad()
def rank_metrics(model, triples: torch.Tensor, all_true: torch.Tensor, batch_size: int = 256,
                 ks: Sequence[int] = (1, 3, 10)) -> dict[str, float]:
    """Filtered MRR, mean rank and Hits@k over head and tail prediction of every triple (PyKEEN's 'both')."""
    was = model.training
    model.eval()
    device = next(model.parameters()).device
    index = filter_index(all_true)
    ranks = []
    for i in range(0, len(triples), batch_size):
        b = triples[i:i + batch_size].to(device)
        for side, col in (("head", 0), ("tail", 2)):
            ranks.append(ranks_from_scores(filtered_scores(model, b, all_true, side, index), b[:, col]).cpu())
    model.train(was)
    if not ranks:
        raise ValueError("no triples to evaluate")
    return metrics_from_ranks(torch.cat(ranks), ks)


@dataclass
class CompletionArgs:
    out: str
    model: str = "rotate"             # rotate | transe | complex
    dim: int = 200
    negatives: int = 64
    loss: str | None = None           # nssa | softplus (default: nssa, softplus for complex)
    margin: float = 9.0
    temperature: float = 1.0
    p_norm: int | None = None         # default: 1 for transe, 2 for rotate
    seed: int = 0


def build_model(data: KGData, args: CompletionArgs, image_dim: int = 0):
    p_norm = args.p_norm or (1 if args.model == "transe" else 2)
    return registry.build("kge", n_entities=len(data.entities), n_relations=len(data.relations), dim=args.dim,
                          model=args.model, p_norm=p_norm, image_dim=image_dim)


def train_completion(data: KGData, args: CompletionArgs, cfg: TrainConfig,
                     image_features: tuple[torch.Tensor, torch.Tensor] | None = None) -> tuple[nn.Module, dict]:
    """Train a KGE model on `data.train` (validation MRR picks the best checkpoint); returns the best model
    and {train summary, valid and test metrics}. `image_features`: (N, F) features + (N,) presence."""
    from .. import api

    torch.manual_seed(cfg.seed)
    if len(data.valid) == 0:
        raise ValueError("link prediction needs validation triples (none left after the split)")
    if len(data.train) < cfg.batch_size:  # a small graph: one batch is the whole training set
        import dataclasses

        cfg = dataclasses.replace(cfg, batch_size=len(data.train), grad_accum=1)
    model = build_model(data, args, image_dim=image_features[0].shape[1] if image_features is not None else 0)
    if image_features is not None:
        model.set_image_features(*image_features)
    loss = args.loss or ("softplus" if args.model == "complex" else "nssa")
    task = LinkPredictionTask(len(data.entities), data.all_true, args.negatives, loss, args.margin, args.temperature,
                              seed=args.seed)
    meta = {"task": "link-prediction", "entities": data.entities, "relations": data.relations}
    summary = Trainer(model, task, TripleSet(data.train), TripleSet(data.valid), cfg, args.out, meta=meta).fit()
    best = api.load(args.out)
    result = {"train": summary, "data": data.summary(),
              "valid": rank_metrics(best, data.valid, data.all_true)}
    if len(data.test):
        result["test"] = rank_metrics(best, data.test, data.all_true)
    return best, result


@torch.no_grad()
def predict_missing(model, data: KGData, top: int = 20, relations: Sequence[str] | None = None,
                    heads_per_relation: int | None = None, offset: float = 0.0) -> list[dict]:
    """The highest-scoring (h, r, t) not in the graph for heads that already use r, with a score in (0, 1):
    sigmoid(offset + raw score), the probability the training loss assigns (offset = the NSSA margin; 0 for
    the softplus loss). Relative, not calibrated."""
    model.eval()
    known = {tuple(x) for x in data.all_true.tolist()}
    rel_ids = [data.relations.index(r) for r in relations] if relations else range(len(data.relations))
    cands = []
    for r in rel_ids:
        heads = sorted({h for h, rr, _ in data.all_true.tolist() if rr == r})[:heads_per_relation]
        if not heads:
            continue
        h = torch.tensor(heads)
        scores = model.score_t(h, torch.full_like(h, r))  # (H, N)
        for i, hh in enumerate(heads):
            for s, t in zip(*scores[i].topk(min(5, scores.shape[1]))):
                if (hh, r, int(t)) not in known and hh != int(t):
                    cands.append((float(s), hh, r, int(t)))
    cands.sort(reverse=True)
    return [{"subject": data.entities[h], "predicate": data.relations[r], "object": data.entities[t],
             "score": round(float(torch.sigmoid(torch.tensor(offset + s))), 6), "raw_score": round(s, 4)}
            for s, h, r, t in cands[:top]]
