"""Built-in fine-tuning sets: play-level genre split, templated QA and tagging with held-out splits."""
import pytest

from lingvis.data.builtin_text import (FIRST, TEST_PLAYS, genre_passages, templated_squad, templated_tagging)
from lingvis.data.corpus import GENRES
from lingvis.data.tasks_text import check_tag, parse_squad


def test_genre_split_keeps_each_play_on_one_side():
    split = genre_passages(words=60)
    plays = {k: {ex.source.split(".txt")[0] for ex in v} for k, v in split.items()}
    assert plays["test"] == set(TEST_PLAYS)
    assert not plays["test"] & (plays["train"] | plays["val"])
    for part in split.values():
        assert {ex.label for ex in part} == set(GENRES)
    assert len(split["train"]) > 1000 and len(split["test"]) > 500
    texts = [ex.text for ex in split["train"][:200]]
    assert all(40 <= len(t.split()) <= 120 for t in texts)
    assert not any("SCENE" in t or "[Exit" in t for t in texts)  # headings and stage directions dropped
    assert len(plays["train"]) == 33  # the whole Folio but the test plays


def test_genre_split_of_the_nine_plays_has_the_same_test_set():
    nine, canon = genre_passages(canon=False), genre_passages()
    assert len({ex.source.split(".txt")[0] for ex in nine["train"]}) == 6
    assert [ex.text for ex in nine["test"]] == [ex.text for ex in canon["test"]]
    assert len(canon["train"]) > 5 * len(nine["train"])


def test_templated_squad_is_valid_and_v2_has_unanswerable():
    examples, version = parse_squad(templated_squad(20, "train", "v2.0"))  # the reader checks every span
    assert version == "v2.0"
    impossible = [e for e in examples if e.is_impossible]
    assert len(impossible) == 20 and len(examples) == 80
    for e in examples:
        if not e.is_impossible:
            text, start = e.answers[0]
            assert e.context[start:start + len(text)] == text


def names(split, n):
    """The person each question asks about (the capitalised word of the question)."""
    return {w.rstrip("?") for e in parse_squad(templated_squad(n, split))[0] for w in e.question.split()[1:]
            if w[0].isupper()}


def test_unseen_split_uses_names_never_in_training():
    train_names, unseen = names("train", 100), names("test_unseen", 50)
    assert not train_names & unseen and unseen <= set(FIRST)
    assert names("test", 50) <= set(FIRST[:len(FIRST) // 2])
    a, b = templated_squad(5, "train"), templated_squad(5, "test")
    assert a["data"][0]["paragraphs"] != b["data"][0]["paragraphs"]
    with pytest.raises(ValueError, match="split must be one of"):
        templated_squad(1, "dev")


def test_templated_tagging_bio():
    sents = templated_tagging(50, "train")
    kinds = set()
    for s in sents:
        assert len(s.tokens) == len(s.tags)
        for i, tag in enumerate(s.tags):
            check_tag(tag, s.source)
            if tag.startswith("I-"):
                assert s.tags[i - 1][2:] == tag[2:]
            kinds.add(tag[2:])
    assert kinds == {"", "PER", "LOC", "ORG"}
