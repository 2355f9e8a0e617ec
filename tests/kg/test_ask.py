"""`kg ask`: question templates -> SPARQL retrieval -> answers that cite their triples and sources."""
from __future__ import annotations

import pytest

from lingvis.kg.ask import Asker, answer_with_model, describe, parse_question
from lingvis.kg.records import Entity, SourceDoc, Statement
from lingvis.kg.stores import open_store


@pytest.fixture
def store():
    red = Entity("s1/red-circle", "circle", "small red circle", {"colour": "red", "size": "small"}, scene="s1.png")
    blue = Entity("s1/blue-square", "square", "large blue square", {"colour": "blue", "size": "large"}, scene="s1.png")
    star = Entity("s1/green-star", "star", "small green star", {"colour": "green", "size": "small"}, scene="s1.png")
    other = Entity("s2/red-circle", "circle", "large red circle", {"colour": "red", "size": "large"}, scene="s2.png")
    img = SourceDoc("s1.png", "image", scene="s1.png", entities=[red, blue, star], statements=[
        Statement(red.id, "left_of", blue.id, "s1.png", 0.9, "sg"),
        Statement(star.id, "left_of", blue.id, "s1.png", 0.8, "sg"),
        Statement(blue.id, "colour", "blue", "s1.png", 0.99, "sg", literal=True),
        *[Statement(e.id, "type", e.type, "s1.png", 0.97, "sg") for e in (red, blue, star)]])
    cap = SourceDoc("caption:7", "caption", text="a small red circle to the left of a large blue square",
                    scene="s1.png", entities=[red, blue],
                    statements=[Statement(red.id, "left_of", blue.id, "caption:7", 0.95, "rebel", span=(0, 53))])
    img2 = SourceDoc("s2.png", "image", scene="s2.png", entities=[other],
                     statements=[Statement(other.id, "type", "circle", "s2.png", 0.9, "sg")])
    s = open_store(None)
    s.add_docs([img, cap, img2])
    return s


def test_question_templates():
    assert parse_question("Which shapes are left of the blue square?") == (
        "subjects_of", {"x": {}, "rel": "left_of", "y": {"colour": "blue", "type": "square"}})
    assert parse_question("what is the small red circle to the left of")[0] == "objects_of"
    assert parse_question("What colour is the large square?") == (
        "attribute", {"attr": "colour", "y": {"size": "large", "type": "square"}})
    assert parse_question("how many red circles are there in image s2.png?") == (
        "count", {"scene": "s2.png", "x": {"colour": "red", "type": "circle"}})
    assert describe("small stars") == {"size": "small", "type": "star"}


def test_answers_cite_triples_and_sources(store):
    a = Asker(store).ask("which shapes are left of the blue square?")
    assert a.intent == "subjects_of" and set(a.entities) >= {"s1/red-circle", "s1/green-star"}
    red = next(c for c in a.citations if c.subject == "s1/red-circle")
    assert red.sources == ["caption:7", "s1.png"] and red.confidence == 0.95 and red.predicate == "left_of"
    assert f"[{red.n}]" in a.answer
    b = Asker(store).ask("what colour is the square?")
    assert b.answer.startswith("s1/blue-square: blue") and b.citations[0].sources == ["s1.png"]
    assert Asker(store).ask("how many circles are there?").answer.startswith("2 ")
    assert Asker(store).ask("how many circles are there in s2.png?").answer.startswith("1 ")
    none = Asker(store).ask("which shapes are above the blue square?")
    assert none.citations == [] and "no triples" in none.answer


def test_a_causal_lm_writes_the_answer(store):
    import torch

    import lingvis
    from lingvis.tokenizers import train_char

    tok = train_char("abcdefghijklmnopqrstuvwxyz0123456789 []():;.,-_/\n?")
    torch.manual_seed(0)
    model = lingvis.build("gpt-nano", vocab_size=tok.vocab_size, block_size=512)
    a = Asker(store).ask("which shapes are left of the blue square?")
    text = answer_with_model(a, model, tok, max_new_tokens=8)
    assert isinstance(text, str)
