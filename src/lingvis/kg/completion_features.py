"""Link prediction meets the graph: each entity's image features (the mean CLIP embedding of its image
crops, found through its image mentions' boxes and the source image files) for the multimodal KGE model,
and predicted triples written back with provenance."""
from __future__ import annotations

from pathlib import Path

import torch

from . import queries as Q
from . import vocab as V
from .records import SourceDoc, Statement


@torch.no_grad()
def entity_image_features(store, entities: list[str], clip: str, images: str | Path,
                          device: str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """(N, P) mean normalised CLIP image embedding of each entity's crops and (N,) presence (0 for entities
    with no image mention, e.g. attribute values)."""
    from .. import api
    from ..data.images import load_image
    from .linking import clip_image_embeddings, crop

    model = api.load(clip, device=device)
    if not hasattr(model, "encode_image"):
        raise ValueError(f"--clip {clip} holds a {getattr(model, 'family', '?')} model, not a CLIP")
    index = {e: i for i, e in enumerate(entities)}
    rows = store.query(Q.PREFIX + """SELECT ?e ?box ?file WHERE { ?m a kg:Mention ; kg:denotes ?e ; kg:box ?box ;
        prov:wasDerivedFrom ?src . ?src kg:fileName ?file }""").rows
    root = Path(images)
    crops: dict[int, list] = {}
    cache: dict[str, object] = {}
    for r in rows:
        eid = V.entity_id(r["e"]["value"])
        if eid not in index:
            continue
        f = r["file"]["value"]
        if f not in cache:
            path = root / f
            if not path.is_file():
                raise FileNotFoundError(f"image {f} of the graph is not in --images {root}")
            cache[f] = load_image(path)
        box = tuple(float(x) for x in r["box"]["value"].split())
        crops.setdefault(index[eid], []).append(crop(cache[f], box))
    width = int(model.encode_image(torch.zeros(1, 3, model.image_config.image_size, model.image_config.image_size,
                                               device=next(model.parameters()).device)).shape[-1])
    feats, present = torch.zeros(len(entities), width), torch.zeros(len(entities))
    for i, cs in crops.items():
        emb = clip_image_embeddings(model, cs).float().mean(0)
        feats[i] = emb / emb.norm().clamp(min=1e-6)
        present[i] = 1.0
    return feats, present


def write_predictions(store, predictions: list[dict], model_name: str) -> int:
    """Add predicted entity-to-entity triples as statements of the source 'completion:<model>' (replaced on
    each run), with the prediction score as confidence."""
    source = f"completion:{model_name}"
    sts = [Statement(p["subject"], p["predicate"], p["object"], source, float(p["score"]), model_name)
           for p in predictions if "=" not in p["object"]]  # attribute values are not entities
    store.add_docs([SourceDoc(source, "text", statements=sts)])
    return len(sts)
