"""Held-out scoring of image chat on the shapes scenes (`lingvis.recipes.llava_eval`): POPE metrics on a fixed
example, key words with their rivals, the whole scoring pipeline with gold and degenerate answers (and the
no-image baseline really asks without the image), and batched greedy answers equal to one-by-one answers."""
import string

import pytest
import torch

import lingvis
from lingvis.data.shapes import make_split_scenes, render_scene
from lingvis.data.shapes_instruct import Probe
from lingvis.data.shapes_scene import Scene, ShapeObject
from lingvis.recipes import llava_eval
from lingvis.recipes.llava import with_image_token
from lingvis.recipes.llava_eval import (
    answer_chats,
    evaluate_shapes_chat,
    keyword_correct,
    named_objects,
    object_naming,
    pope_metrics,
    shapes_questions,
)
from lingvis.tokenizers import train_char


def test_pope_metrics_on_a_fixed_example():
    pairs = [("Yes, there is.", "yes"), ("No.", "yes"), ("Yes.", "no"), ("No, there is not.", "no"), ("yes", "yes")]
    m = pope_metrics(pairs)  # said yes: 1 0 1 0 1; gold yes: 1 1 0 0 1 -> tp 2, fp 1, fn 1, tn 1
    assert m["n"] == 5
    assert m["accuracy"] == pytest.approx(60.0)
    assert m["precision"] == pytest.approx(200 / 3) and m["recall"] == pytest.approx(200 / 3)
    assert m["f1"] == pytest.approx(200 / 3) and m["yes_ratio"] == pytest.approx(60.0)
    assert pope_metrics([("No.", "yes")])["f1"] == 0.0  # no positive answers: no division by zero


def test_keyword_needs_the_key_and_no_rival():
    colour = Probe("What colour is the cross?", "The cross is blue.", "colour", "blue")
    assert keyword_correct("It is Blue.", colour)
    assert not keyword_correct("It is blue and red.", colour)  # a rival colour makes it ambiguous
    assert not keyword_correct("It is bluish.", colour)  # whole words only
    left = Probe("Where is the star relative to the square?", "To the left of it.", "position", "left", True)
    assert keyword_correct("The star is to the left of the square.", left)
    assert not keyword_correct("It is left or right of it.", left)
    corner = Probe("Where is the star?", "In the top left corner.", "position", "in the top left corner")
    assert keyword_correct("The star is in the top left corner.", corner)
    assert not keyword_correct("The star is at the top.", corner)
    exists = Probe("Is there a red circle in the image?", "No, there is not.", "exists", "no")
    assert keyword_correct("No.", exists) and not keyword_correct("Not sure, no.", exists)


def test_object_naming_counts_pairs_shapes_and_colours():
    text = "A small Red star, two blue crosses and a green object."
    assert named_objects(text) == {("red", "star"), ("blue", "cross")}
    star = ShapeObject("star", "red", "small", 0.2, 0.2, 0.1)
    cross = ShapeObject("cross", "blue", "large", 0.7, 0.7, 0.18)
    scenes = [Scene([star, cross]), Scene([ShapeObject("circle", "green", "small", 0.5, 0.5, 0.1)])]
    # scene 0: the red star named, the blue cross called a square; scene 1: the green circle (named twice, counted
    # once) and a purple cross that is not there
    hyps = {0: "a red star and a blue square", 1: "a green circle, the green circle, a purple cross"}
    m = object_naming(scenes, hyps)
    assert m["objects"] == 3
    assert m["pair_recall"] == pytest.approx(200 / 3) and m["pair_precision"] == pytest.approx(50.0)  # 2 of 4 named
    assert m["shape_recall"] == pytest.approx(200 / 3) and m["colour_recall"] == pytest.approx(100.0)


def _gold(split, n, seed, always_yes=False):
    """The answers a perfect model gives, in the order `evaluate_shapes_chat` asks the questions."""
    items, _ = shapes_questions(split, n, seed)
    out = []
    for _, probes, (_, second) in items:
        out += ["Yes." if always_yes and p.kind == "exists" else p.answer for p in probes]
        out.append(second.answer)
    return out


@pytest.mark.parametrize("with_image", [True, False])
def test_gold_answers_score_full_marks(monkeypatch, with_image):
    asked = []

    def oracle(model, tok, chats, max_new_tokens, batch_size):
        asked.extend(chats)
        return _gold("test", 6, 0)

    monkeypatch.setattr(llava_eval, "answer_chats", oracle)
    r = evaluate_shapes_chat(None, None, "test", 6, with_image=with_image)
    assert r["keyword_overall"] == 100.0 and r["position"] == 100.0
    assert set(r["per_kind"]) == {"colour", "count", "exists", "follow_up", "position", "shape"}
    assert r["pope"]["accuracy"] == 100.0 and r["pope"]["yes_ratio"] == 50.0 and r["pope"]["n"] == 12
    assert r["cider"] > 1.0 and r["questions"] == len(asked) - 6  # descriptions are scored by CIDEr-D only
    assert r["description_objects"]["pair_recall"] == 100.0 and r["description_objects"]["pair_precision"] == 100.0
    for messages, images in asked:  # one image per chat, in the first turn; none for the no-image baseline
        assert len(images) == (1 if with_image else 0)
        assert messages[0]["content"].startswith("<image>\n") == with_image
        assert sum(m["content"].count("<image>") for m in messages) == len(images)


def test_always_yes_gets_half_of_pope(monkeypatch):
    monkeypatch.setattr(llava_eval, "answer_chats", lambda *a, **k: _gold("val", 5, 1, always_yes=True))
    r = evaluate_shapes_chat(None, None, "val", 5, seed=1)
    assert r["pope"]["accuracy"] == 50.0 and r["pope"]["yes_ratio"] == 100.0 and r["pope"]["recall"] == 100.0
    assert r["per_kind"]["exists"] == 50.0 and r["per_kind"]["colour"] == 100.0


def test_batched_answers_equal_one_by_one():
    torch.manual_seed(0)
    tok = train_char(string.printable)
    image_id = with_image_token(tok)
    base = lingvis.build("llava-nano").config
    model = lingvis.build("llava-nano", text={**base.text, "vocab_size": tok.vocab_size, "block_size": 160},
                          image_token_id=image_id).eval()
    with torch.no_grad():  # larger random weights: varied replies instead of a run of blanks
        for p in model.parameters():
            if p.dim() > 1:
                p.normal_(0, 0.3)
    a, b = (render_scene(s, 64) for s in make_split_scenes("test", 2))
    chats = [([{"role": "user", "content": "<image>\nWhat colour is it?"}], [a]),
             ([{"role": "user", "content": "Hello there, no picture in this longer message."}], []),
             ([{"role": "user", "content": "<image>\nDescribe it."}, {"role": "assistant", "content": "A star."},
               {"role": "user", "content": "Where is it?"}], [b])]
    one = [answer_chats(model, tok, [c], max_new_tokens=6, batch_size=1)[0] for c in chats]
    assert len(set(one)) == 3 and all(one)
    assert answer_chats(model, tok, chats, max_new_tokens=6, batch_size=3) == one
    assert answer_chats(model, tok, chats, max_new_tokens=6, batch_size=2) == one
    swapped = answer_chats(model, tok, [(chats[0][0], [b])], max_new_tokens=6)[0]
    assert swapped != one[0]  # the image reaches the answer

    long_chat = ([{"role": "user", "content": "<image>\n" + "Tell me about it. " * 20}], [a])
    with pytest.raises(ValueError, match=r"a chat of \d+ prompt tokens .* context of 160 tokens"):
        answer_chats(model, tok, [chats[0], long_chat], max_new_tokens=6)
