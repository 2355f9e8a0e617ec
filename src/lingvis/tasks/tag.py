"""Token classification (BIO tagging): word -> word-piece alignment, the training task, prediction.

Each word is labelled at its first word piece (the other pieces are ignored in the loss and in
prediction). A sentence longer than `max_len` tokens is split into consecutive chunks of whole words,
so every word still gets a tag; a single word with more pieces than fit keeps its first pieces."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..data.tasks_text import TaggedSentence, TaskDataError
from ..eval import entity_scores, get_entities
from ..train.task import Task
from .bert_inputs import collate_inputs, model_max_len, run_bucketed, special_ids


def _word_pieces(tokenizer, words: list[str]) -> list[list[int]]:
    unk = tokenizer.unk_id
    pieces = tokenizer.encode_batch(words)
    return [p if p else ([unk] if unk is not None else []) for p in pieces]


def encode_tagging(tokenizer, sentences: list[TaggedSentence], labels: list[str] | None,
                   max_len: int) -> list[dict]:
    """Features {ids, types, tag_ids (-100 off first pieces), sentence, first_word, first_positions}."""
    cls, sep = special_ids(tokenizer)
    index = {name: i for i, name in enumerate(labels or [])}
    budget = max_len - 2
    feats = []
    for s_i, sent in enumerate(sentences):
        if labels is not None and sent.tags is not None:
            for w, tag in enumerate(sent.tags):
                if tag not in index:
                    raise TaskDataError(f"{sent.source} (word {w + 1} {sent.tokens[w]!r}): unknown tag {tag!r}; "
                                        f"known tags: {sorted(index)}")
        pieces = [p[:budget] for p in _word_pieces(tokenizer, sent.tokens)]
        start = 0
        while start < len(pieces):
            ids, tag_ids, firsts, end = [cls], [-100], [], start
            while end < len(pieces) and len(ids) - 1 + len(pieces[end]) <= budget:
                firsts.append(len(ids))
                ids += pieces[end]
                gold = index[sent.tags[end]] if labels is not None and sent.tags is not None else -100
                tag_ids += [gold] + [-100] * (len(pieces[end]) - 1)
                end += 1
            ids.append(sep)
            tag_ids.append(-100)
            feats.append({"ids": ids, "types": [0] * len(ids), "tag_ids": tag_ids, "sentence": s_i,
                          "first_word": start, "first_positions": firsts})
            start = end
    return feats


class TagTask(Task):
    """Token-level cross-entropy; evaluation reports entity-level precision, recall and F1 (seqeval rules)."""

    name = "tag"
    metric_for_best = "f1"
    greater_is_better = True

    def __init__(self, pad_id: int, labels: list[str]):
        self.pad_id, self.labels = pad_id, labels

    def collate(self, samples: list[dict]) -> dict:
        batch = collate_inputs(samples, self.pad_id)
        tags = torch.full_like(batch["input_ids"], -100)
        for i, s in enumerate(samples):
            tags[i, :len(s["tag_ids"])] = torch.tensor(s["tag_ids"])
        batch["labels"] = tags
        return batch

    def loss(self, model: nn.Module, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        logits = model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"]).logits  # (B, T, L)
        labels = batch["labels"]
        loss = F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), ignore_index=-100)
        keep = labels != -100
        return loss, {"token_acc": float((logits.argmax(-1)[keep] == labels[keep]).float().mean())}

    @torch.no_grad()
    def evaluate(self, model: nn.Module, batches) -> dict[str, float]:
        gold, pred, losses = [], [], []
        for batch in batches:
            logits = model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"]).logits
            losses.append(float(F.cross_entropy(logits.flatten(0, 1).float(), batch["labels"].flatten(),
                                                ignore_index=-100)))
            for row_logits, row_labels in zip(logits, batch["labels"]):
                keep = row_labels != -100
                gold.append([self.labels[i] for i in row_labels[keep].tolist()])
                pred.append([self.labels[i] for i in row_logits[keep].argmax(-1).tolist()])
        if not gold:
            raise ValueError("evaluation got no batches: the validation set is empty")
        scores = entity_scores(gold, pred)
        return {"loss": sum(losses) / len(losses), "precision": scores.precision, "recall": scores.recall,
                "f1": scores.f1}


def predict_tags(model, tokenizer, sentences: list[list[str]], max_len: int | None = None) -> list[list[str]]:
    """One tag per word for each sentence (a list of words)."""
    if model.config.head != "tag":
        raise ValueError(f"this model's head is {model.config.head!r}, not a token classifier")
    names = model.config.label_names
    sents = [TaggedSentence(list(words), None, f"input {i}") for i, words in enumerate(sentences)]
    feats = encode_tagging(tokenizer, sents, None, model_max_len(model, max_len))
    tags: list[list[str]] = [["O"] * len(s.tokens) for s in sents]

    def keep(out, batch, idx):
        for row, i in zip(out.logits.argmax(-1).tolist(), idx):
            f = feats[i]
            for k, pos in enumerate(f["first_positions"]):
                tags[f["sentence"]][f["first_word"] + k] = names[row[pos]]
    run_bucketed(model.eval(), feats, tokenizer.pad_id or 0, keep)
    return tags


def entities(words: list[str], tags: list[str]) -> list[dict]:
    """[{"type", "text", "start", "end"}] (word indices, end inclusive) decoded from BIO tags."""
    return [{"type": t, "text": " ".join(words[s:e + 1]), "start": s, "end": e} for t, s, e in get_entities(tags)]
