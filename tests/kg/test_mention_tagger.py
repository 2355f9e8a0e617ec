"""Entity mentions with the BERT tagger: spans -> BIO -> spans round trip, and a tiny tagger that learns the
shapes captions' mentions (text, type and character span) through the one Trainer."""
from __future__ import annotations

import pytest

from lingvis.kg.mention_tagger import (TaggerArgs, bio_sentence, evaluate_tagger, mentions_from_tags, tag_mentions,
                                       train_mention_tagger, words)
from lingvis.kg.text_triples import shapes_sentence
from lingvis.train.config import TrainConfig


def test_bio_round_trip_keeps_spans_and_types():
    s = shapes_sentence("three shapes: an orange cross, a red star and a green cross", "c1")
    t = bio_sentence(s)
    assert t.tokens[:4] == ["three", "shapes", ":", "an"] and "," in t.tokens  # punctuation is its own word
    assert t.tags[t.tokens.index("orange")] == "B-cross" and t.tags[t.tokens.index("star")] == "I-star"
    back = mentions_from_tags(s.text, t.tags)
    assert [(m.text, m.type) for m in back] == [("orange cross", "cross"), ("red star", "star"),
                                               ("green cross", "cross")]
    assert all(s.text[a:b] == m.text for m in back for a, b in [m.span])
    assert {m.span for m in back} == {m.span for m in s.mentions} | {x.span for tr in s.triples
                                                                      for x in (tr.head, tr.tail)}


def test_tags_must_cover_every_word():
    with pytest.raises(ValueError, match="2 tags for 3 words"):
        mentions_from_tags("a red circle", ["O", "B-circle"])
    assert [w for w, _, _ in words("a red, circle")] == ["a", "red", ",", "circle"]


def test_tagger_learns_caption_mentions(tmp_path):
    from lingvis import api
    from lingvis.kg.text_train import shapes_caption_sentences

    cfg = TrainConfig(max_steps=120, batch_size=32, lr=3e-3, warmup_steps=10, weight_decay=0.01, eval_every=1000,
                      eval_batches=1, log_every=50, progress=False)
    summary = train_mention_tagger(TaggerArgs(out=str(tmp_path), n_train=150, n_val=10), cfg)
    assert summary["step"] == 120 and summary["labels"][0] == "O" and "B-circle" in summary["labels"]
    model, tok = api.load(tmp_path), api.load_tokenizer(tmp_path)
    test = shapes_caption_sentences("test", 20)
    r = evaluate_tagger(model, tok, test)
    assert r["entity_f1"] > 0.8 and r["span_recall"] > 0.8, r
    found = tag_mentions(model, tok, [test[0].text])[0]
    assert all(test[0].text[m.span[0]:m.span[1]] == m.text for m in found)

    # kg build's path: mentions the generator missed come from the tagger, attributed to it
    from lingvis.kg.build import Models, SceneInput, scene_docs, with_tagged_mentions

    text = test[0].text
    models = Models(tagger=model, tagger_tokenizer=tok, tagger_name="mention-tagger:t")
    (triples, ments), = with_tagged_mentions([([], [])], [text], models)
    assert not triples and {(m.text, m.span) for m in ments} == {(m.text, m.span) for m in found}
    docs, _ = scene_docs(SceneInput("s.png", captions=[("caption:1", text)]), None, [(triples, ments)], [], models)
    cap = docs[0]
    assert len(cap.mentions) == len(found) and {s.model for s in cap.statements} == {"mention-tagger:t"}
