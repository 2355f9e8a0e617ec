"""Text relation extraction: linearisation, readers, strict F1, the shapes captions' gold annotation, and a
tiny seq2seq that learns the mapping."""
from __future__ import annotations

import json

import pytest
import torch

from lingvis.kg.text_triples import (Mention, Sentence, TextTriple, entity_f1, linearize, mention_attributes, parse,
                                     read_sentences_jsonl, read_spert, shapes_sentence, strict_triple_f1)


def test_linearize_parse_round_trip_with_spans():
    s = shapes_sentence("a small red star to the left of a large orange cross")
    assert [t.key() for t in s.triples] == [("small red star", "star", "left_of", "large orange cross", "cross")]
    text = linearize(s)
    assert text.startswith("<triplet> small red star <type> star <tail> large orange cross")
    triples, mentions = parse(text, s.text, confidences=[0.75])
    assert [t.key() for t in triples] == [t.key() for t in s.triples] and mentions == []
    assert triples[0].head.span == (2, 16) and triples[0].tail.span == (34, 52) and triples[0].confidence == 0.75
    lst = shapes_sentence("three shapes: an orange cross, a red star and a green cross")
    assert lst.triples == [] and [m.text for m in lst.mentions] == ["orange cross", "red star", "green cross"]
    assert [m.key() for m in parse(linearize(lst))[1]] == [m.key() for m in lst.mentions]


def test_parse_skips_malformed_segments():
    triples, mentions = parse("<triplet> a <type> circle <tail> b <rel> <triplet> x <type> t <tail> y <type> u <rel> r "
                              "<entity> z <type>")
    assert [t.key() for t in triples] == [("x", "t", "r", "y", "u")] and mentions == []


def test_strict_f1_counts_types_and_boundaries():
    gold = [Sentence("", triples=[TextTriple(Mention("John", "Peop"), "Live_In", Mention("Boston", "Loc"))])]
    assert strict_triple_f1(gold, [[TextTriple(Mention("john", "Peop"), "Live_In", Mention("Boston", "Loc"))]])["f1"] == 1
    assert strict_triple_f1(gold, [[TextTriple(Mention("John", "Org"), "Live_In", Mention("Boston", "Loc"))]])["f1"] == 0
    assert strict_triple_f1(gold, [[TextTriple(Mention("John S", "Peop"), "Live_In", Mention("Boston", "Loc"))]])["f1"] == 0
    r = strict_triple_f1(gold * 2, [[gold[0].triples[0]], []])
    assert (r["precision"], r["recall"]) == (1.0, 0.5)
    assert entity_f1([Sentence("", mentions=[Mention("a", "x")])], [[Mention("A", "x"), Mention("b", "x")]])["f1"] == \
        pytest.approx(2 / 3)


def test_spert_reader(tmp_path):
    doc = [{"tokens": ["John", "Smith", "lives", "in", "Boston", "."],
            "entities": [{"type": "Peop", "start": 0, "end": 2}, {"type": "Loc", "start": 4, "end": 5}],
            "relations": [{"type": "Live_In", "head": 0, "tail": 1}], "orig_id": 42}]
    p = tmp_path / "conll04.json"
    p.write_text(json.dumps(doc))
    s = read_spert(p)[0]
    assert s.text == "John Smith lives in Boston ." and s.id == "42"
    assert s.triples[0].key() == ("john smith", "Peop", "Live_In", "boston", "Loc")
    assert s.text[slice(*s.mentions[1].span)] == "Boston"
    doc[0]["relations"][0]["tail"] = 5
    p.write_text(json.dumps(doc))
    with pytest.raises(ValueError, match="entity index"):
        read_spert(p)


def test_jsonl_reader(tmp_path):
    p = tmp_path / "s.jsonl"
    p.write_text(json.dumps({"text": "Ann works for Acme.", "triples": [
        {"head": "Ann", "head_type": "Peop", "tail": "Acme", "tail_type": "Org", "relation": "Work_For"}]}) +
        "\n" + json.dumps({"text": "no gold here"}) + "\n")
    a, b = read_sentences_jsonl(p)
    assert a.triples[0].tail.span == (14, 18) and len(a.mentions) == 2 and b.triples == []
    p.write_text('{"text": "x", "triples": [{"head": "x"}]}\n')
    with pytest.raises(ValueError, match="s.jsonl:1"):
        read_sentences_jsonl(p)


def test_mention_attributes():
    assert mention_attributes(Mention("small red circle", "circle")) == {"colour": "red", "size": "small"}
    assert mention_attributes(Mention("blue star", "star")) == {"colour": "blue"}


def test_seq2seq_learns_to_write_triples():
    from lingvis.kg.text_train import SPECIALS, extract_triples
    from lingvis.models import registry
    from lingvis.tasks.seq2seq import EncodedPairs, Seq2SeqTask
    from lingvis.tokenizers import train_bpe
    from lingvis.kg.text_triples import MARKERS

    sents = [shapes_sentence(c) for c in ("a small red star to the left of a large orange cross",
                                          "a large blue circle above a small green square",
                                          "two shapes: a red star and a blue cross")]
    src, tgt = [s.text for s in sents], [linearize(s) for s in sents]
    tok = train_bpe(src + tgt, 330, SPECIALS, chat_markers=list(MARKERS))
    torch.manual_seed(0)
    model = registry.build("transformer-nano", vocab_size=tok.vocab_size, pad_id=tok.pad_id, eos_id=tok.eos_id,
                           decoder_start_id=tok.bos_id)
    task = Seq2SeqTask(tok, tok.bos_id, tok.eos_id, tok.pad_id, label_smoothing=0.0)
    batch = task.collate(list(EncodedPairs(src, tgt, tok, 64, 64)))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(150):
        loss, _ = task.loss(model, batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    out = extract_triples(model, tok, src)
    assert strict_triple_f1(sents, [o[0] for o in out])["f1"] == 1.0
    t = out[0][0][0]
    assert src[0][slice(*t.head.span)] == "small red star" and 0.5 < t.confidence <= 1.0
    assert [m.text for m in out[2][1]] == ["red star", "blue cross"]
