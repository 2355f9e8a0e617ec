"""Why are position questions weak? Probes of a trained fusion VQA run (regions image encoder) on the shapes
`test` split, by position sub-type:

- accuracy on "where is X?" (absolute: one box read out), "is X to the left or to the right of Y?" and
  "is X above or below Y?" (relations: two referents compared);
- binding: the share of the subject words' attention ("is the RED CIRCLE ...") that goes to the region of
  the object they name, per layer, over all heads and in the best head (`attention_chance`: the mean of
  1 / number of regions);
- role sensitivity: how much the answer distribution of a relation question moves when subject and object
  are swapped in the question (0 = the model cannot tell them apart);
- with the region readout (`vqa_readout="regions"`): the weight each readout query puts on the subject's
  and on the object's region (binding in the head).

    python -m benchmarks.vqa_position_probe RUN DATA [--n 60]
"""
from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import torch
import torch.nn.functional as F

RELATION = re.compile(r"is the (\w+) (\w+) (to the left or to the right of|above or below) the (\w+) (\w+)\?")


def _scenes(data: Path, split: str) -> dict:
    out = {}
    with open(data / f"scenes_{split}.jsonl") as f:
        for line in f:
            s = json.loads(line)
            out[s["image_id"]] = s["objects"]
    return out


class AttentionSpy:
    """Records softmax attention weights (B, H, S, S) of every `scaled_dot_product_attention` call."""

    def __init__(self):
        self.weights: list[torch.Tensor] = []
        self._orig = F.scaled_dot_product_attention

    def _spy(self, q, k, v, attn_mask=None, **kw):
        scale = kw.get("scale") or q.shape[-1] ** -0.5
        w = (q @ k.transpose(-1, -2)) * scale  # (B, H, S, S)
        if attn_mask is not None:
            w = w.masked_fill(~attn_mask, float("-inf")) if attn_mask.dtype == torch.bool else w + attn_mask
        self.weights.append(w.softmax(-1))
        return self._orig(q, k, v, attn_mask=attn_mask, **kw)

    def __enter__(self):
        F.scaled_dot_product_attention = self._spy
        return self

    def __exit__(self, *exc):
        F.scaled_dot_product_attention = self._orig


@torch.no_grad()
def probe(run: str | Path, data: str | Path, split: str = "test", n: int = 60) -> dict:
    """Binding (subject words -> referent region, per layer) and role sensitivity on `n` relation questions."""
    from PIL import Image

    from lingvis import api
    from lingvis.data.vqa import read_vqa
    from lingvis.data.vqa_dataset import FusionImageTransform
    from lingvis.models.fusion_regions import propose_boxes
    from lingvis.tasks.vqa import VQATask, model_inputs

    data = Path(data)
    model, tok = api.load(run).eval(), api.load_tokenizer(run)
    if model.config.image_encoder != "regions":
        raise ValueError(f"{run}: the probe needs a regions image encoder, not {model.config.image_encoder!r}")
    scenes = _scenes(data, split)
    tf, task = FusionImageTransform.for_model(model.config), VQATask(tok, model.config.max_text_len)
    stem = model.image.stem
    share = [[] for _ in range(model.config.n_layer)]  # per question: (H,) share of each head
    moved, chance = [], []
    readout = model.vqa_readout
    read_share = {"subject": [], "object": []}  # per question: (K,) region-readout weight of each query
    examples = [e for e in read_vqa(data, split) if RELATION.fullmatch(e.question)][:n]
    for e in examples:
        c1, s1, phrase, c2, s2 = RELATION.fullmatch(e.question).groups()
        objs = scenes[e.image_id]
        target = next(o for o in objs if (o["colour"], o["shape"]) == (c1, s1))
        other = next(o for o in objs if (o["colour"], o["shape"]) == (c2, s2))
        px = tf(Image.open(e.image).convert("RGB"))
        swapped = f"is the {c2} {s2} {phrase} the {c1} {s1}?"
        batch = task.collate([{"pixel_values": px, "question": q, "answers": [], "question_id": i,
                               "question_type": ""} for i, q in enumerate((e.question, swapped))])
        boxes, bm = propose_boxes(batch["pixel_values"][:1], batch["pixel_mask"][:1], stem.cfg, stem.mean, stem.std)
        R = int(bm.sum())
        cx, cy = (boxes[0, :R, 0] + boxes[0, :R, 2]) / 2, (boxes[0, :R, 1] + boxes[0, :R, 3]) / 2
        region = int(((cx - target["cx"]) ** 2 + (cy - target["cy"]) ** 2).argmin())
        obj_region = int(((cx - other["cx"]) ** 2 + (cy - other["cy"]) ** 2).argmin())
        subject = [i for i, t in enumerate(batch["input_ids"][0].tolist())
                   if t in set(tok.encode_batch([f"{c1} {s1}"])[0])][:2]  # first mention: the subject
        with AttentionSpy() as spy:
            out = model(**model_inputs(batch))
        probs = model.vqa_probs(out)  # (2, A)
        if readout is not None:
            _, regions = readout.attention(*model.readout_inputs(out))  # (2, K, N)
            read_share["subject"].append(regions[0, :, region])
            read_share["object"].append(regions[0, :, obj_region])
        T = batch["input_ids"].shape[1]
        for layer, w in enumerate(spy.weights):  # (2, H, S, S)
            a = w[0, :, subject, T + 1:T + 1 + R].mean(1)  # (H, R) subject words -> regions
            share[layer].append(a[:, region] / a.sum(-1))
        moved.append(float((probs[0] - probs[1]).abs().sum()))
        chance.append(1 / R)
    if not examples:
        raise ValueError(f"{data}: no relation questions in split {split!r}")
    # readout_subject_share / readout_object_share (vqa_readout="regions"): mean weight each readout query
    # puts on the subject's / the object's region (binding in the head: one query per role near 1)
    return {"questions": len(examples),
            "subject_to_referent_attention": [round(float(torch.stack(s).mean()), 3) for s in share],
            "best_head_share": [round(float(torch.stack(s).mean(0).max()), 3) for s in share],
            "attention_chance": round(sum(chance) / len(chance), 3),
            "role_swap_l1": round(sum(moved) / len(moved), 4),
            **({f"readout_{k}_share": [round(float(x), 3) for x in torch.stack(v).mean(0)]
                for k, v in read_share.items()} if readout is not None else {})}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run", help="a `lingvis finetune vqa` run folder (fusion, regions image encoder)")
    p.add_argument("data", help="the shapes folder it was trained on")
    p.add_argument("--split", default="test", help="split to probe (default: test)")
    p.add_argument("--n", type=int, default=60, help="relation questions to probe")
    a = p.parse_args()
    from benchmarks.vqa_pretraining_learning import position_subtypes

    torch.set_num_threads(1)
    print(json.dumps({"position_subtypes": position_subtypes(Path(a.run), Path(a.data), a.split),
                      **probe(a.run, a.data, a.split, a.n)}))


if __name__ == "__main__":
    main()
