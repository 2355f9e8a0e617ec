"""Built-in fine-tuning sets for the demo and tests.

* Genre classification: passages of the 36 embedded Shakespeare plays (the First Folio) labelled tragedy /
  comedy / history, split by play (one play per genre is held out for test), so no play is in both train
  and test. Thirty-three training plays, not six: with six, even TF-IDF + logistic regression reaches only
  0.54 on the unseen plays (0.74 with 33; docs/bert.md).
* Templated extractive QA (SQuAD JSON) about people, with unanswerable questions for v2.0.
* Templated entity tagging (PER / LOC / ORG, BIO tags).
QA and tagging splits are train / val / test (new sentences over the same name pools, drawn with separate
seeds) and test_unseen (names, places and organisations never seen in training). Half of the training
entities are made-up syllable strings, which teaches the model to read the context rather than memorise
the names."""
from __future__ import annotations

import random
import re

from .corpus import GENRES, shakespeare_plays
from .tasks_text import TaggedSentence, TextExample

TEST_PLAYS = ("julius_caesar", "much_ado_about_nothing", "john")  # one per genre


_SPEAKER = re.compile(r"^[A-Z][A-Z0-9 .,'&-]*\.$")  # "SIR TOBY." / "FIRST WITCH."
_HEADING = re.compile(r"^(ACT|SCENE|EPILOGUE|PROLOGUE)\b", re.I)


def _spoken(line: str) -> bool:
    """Dialogue and verse only: no speaker names, stage directions or act/scene headings."""
    return bool(line) and not (_SPEAKER.match(line) or _HEADING.match(line) or line.startswith(("[", "]")))


def _passages(text: str, words: int) -> list[tuple[str, int]]:
    """Spoken lines (after the cast list, from the first ACT heading) grouped into passages of about
    `words` words: (text, first line number)."""
    lines = text.split("\n")
    begin = next((i for i, line in enumerate(lines) if re.match(r"^\s*ACT\s+(I|1|FIRST)\b", line, re.I)), 0)
    out, buf, count, first = [], [], 0, 0
    for lineno, line in enumerate(lines[begin:], start=begin + 1):
        line = line.strip()
        if not _spoken(line):
            continue
        if not buf:
            first = lineno
        buf.append(line)
        count += len(line.split())
        if count >= words:
            out.append((" ".join(buf), first))
            buf, count = [], 0
    return out


def genre_passages(words: int = 80, val_fraction: float = 0.1, seed: int = 0,
                   canon: bool = True) -> dict[str, list[TextExample]]:
    """{"train", "val", "test"}: test = the plays in TEST_PLAYS; val = a seeded share of train-play passages.
    `canon=False`: only the nine selected plays (six for training)."""
    split: dict[str, list[TextExample]] = {"train": [], "val": [], "test": []}
    rng = random.Random(seed)
    for play in shakespeare_plays(canon=canon):
        examples = [TextExample(t, None, play.genre, f"{play.name}.txt:{line}")
                    for t, line in _passages(play.text, words)]
        if play.name in TEST_PLAYS:
            split["test"] += examples
            continue
        rng.shuffle(examples)
        n_val = max(1, round(len(examples) * val_fraction))
        split["val"] += examples[:n_val]
        split["train"] += examples[n_val:]
    return split


GENRE_LABELS = list(GENRES)

# ---- name pools (train | test halves are disjoint) ------------------------------------------------------
FIRST = ["Alice", "Bruno", "Chloe", "Dmitri", "Elena", "Farid", "Greta", "Hugo", "Ingrid", "Jonas", "Kaito", "Lucia",
         "Marek", "Nadia", "Oscar", "Priya", "Quentin", "Rosa", "Stefan", "Tamara", "Ugo", "Vera", "Wilhelm", "Yara",
         "Anton", "Beatrix", "Cyril", "Daria", "Emil", "Fiona", "Gustav", "Helga", "Ivan", "Julia", "Klaus", "Lena"]
LAST = ["Novak", "Berg", "Costa", "Dubois", "Eriksen", "Ferrari", "Gomez", "Horvat", "Ivanova", "Jansen", "Kowalski",
        "Larsen", "Moreau", "Nilsen", "Okafor", "Petrov", "Quinn", "Rossi", "Schmidt", "Tanaka", "Ueda", "Vargas"]
CITIES = ["Paris", "Lisbon", "Oslo", "Vienna", "Prague", "Dublin", "Madrid", "Athens", "Warsaw", "Zurich", "Lyon",
          "Porto", "Bergen", "Krakow", "Seville", "Munich", "Turin", "Ghent", "Tallinn", "Riga"]
ORGS = ["Acme Corp", "Globex", "Initech", "Umbrella Labs", "Stark Industries", "Wayne Holdings", "Hooli",
        "Vandelay Imports", "Soylent Foods", "Cyberdyne Systems", "Tyrell Group", "Wonka Works"]
JOBS = ["baker", "pilot", "teacher", "nurse", "painter", "lawyer", "farmer", "chemist", "sailor", "architect"]
COLORS = ["red", "blue", "green", "yellow", "purple", "orange", "black", "white"]


SYLLABLES = ["ka", "lo", "ren", "mi", "tas", "vo", "bel", "dri", "sun", "ga", "pel", "or", "zan", "ti", "mar", "quo"]
PSEUDO_SHARE = 0.5  # of the training entities


def pseudo_name(rng: random.Random) -> str:
    """A made-up capitalised name of 2-3 syllables."""
    return "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 3))).capitalize()


def _pick(rng: random.Random, pools: dict, kind: str) -> str:
    if pools["pseudo"] and rng.random() < PSEUDO_SHARE:
        return pseudo_name(rng) + (" " + rng.choice(["Corp", "Labs", "Group"]) if kind == "org" else "")
    return rng.choice(pools[kind])


def _pool(items: list[str], split: str) -> list[str]:
    half = len(items) // 2
    return items[:half] if split == "train" else items[half:]


SPLITS = ("train", "val", "test", "test_unseen")


def _pools(split: str) -> dict[str, list[str]]:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    part = "test" if split == "test_unseen" else "train"
    return {"first": _pool(FIRST, part), "last": _pool(LAST, part), "city": _pool(CITIES, part),
            "org": _pool(ORGS, part), "pseudo": split == "train"}


# ---- templated QA ------------------------------------------------------------------------------------
def _person(rng: random.Random, pools: dict) -> dict:
    return {"name": _pick(rng, pools, "first"), "city": _pick(rng, pools, "city"), "year": str(rng.randint(1850, 2005)),
            "job": rng.choice(JOBS), "color": rng.choice(COLORS), "org": _pick(rng, pools, "org")}


FACTS = {"city": ("{name} was born in {city}.", "Where was {name} born?"),
         "year": ("{name} was born in the year {year}.", "In which year was {name} born?"),
         "job": ("{name} works as a {job}.", "What is the job of {name}?"),
         "color": ("The favourite colour of {name} is {color}.", "What is the favourite colour of {name}?"),
         "org": ("{name} is employed by {org}.", "Which company employs {name}?")}


def _paragraph(rng: random.Random, pools: dict, p_id: str, version: str, n_people: int) -> dict:
    people: list[dict] = []
    while len(people) < n_people:
        cand = _person(rng, pools)
        if all(cand["name"] != p["name"] for p in people):
            people.append(cand)
    sentences, told = [], []
    for person in people:
        for key in rng.sample(list(FACTS), 3):
            sentences.append((FACTS[key][0].format(**person), person, key))
            told.append((person["name"], key))
    rng.shuffle(sentences)
    context, qas = "", []
    for text, person, key in sentences:
        start = len(context) + len(FACTS[key][0].split("{" + key + "}")[0].format(**person))
        context += text + " "
        qas.append({"id": f"{p_id}-{len(qas)}", "question": FACTS[key][1].format(**person),
                    "answers": [{"text": person[key], "answer_start": start}], "is_impossible": False})
    if version == "v2.0":
        person = rng.choice(people)
        missing = [k for k in FACTS if (person["name"], k) not in told]
        qas.append({"id": f"{p_id}-{len(qas)}", "question": FACTS[rng.choice(missing)][1].format(**person),
                    "answers": [], "is_impossible": True})
    return {"context": context.strip(), "qas": qas}


def templated_squad(n_paragraphs: int = 300, split: str = "train", version: str = "v1.1", seed: int = 0,
                    people: int = 1) -> dict:
    """A SQuAD-format dict: each paragraph states three facts about each of `people` people (with two or
    more, the question's name picks the sentence); v2.0 adds one unanswerable question per paragraph
    (a fact the context does not state)."""
    if version not in ("v1.1", "v2.0"):
        raise ValueError(f"version must be v1.1 or v2.0, got {version!r}")
    rng = random.Random(f"{split}-{seed}")
    pools = _pools(split)
    paragraphs = [_paragraph(rng, pools, f"{split}{seed}-{i}", version, people) for i in range(n_paragraphs)]
    return {"version": version, "data": [{"title": f"people-{split}", "paragraphs": paragraphs}]}


# ---- templated tagging -------------------------------------------------------------------------------
TAG_TEMPLATES = [
    "{PER} moved from {LOC} to {LOC} last year .", "{PER} works for {ORG} in {LOC} .",
    "Yesterday {PER} met {PER} at the {ORG} office .", "The {ORG} team in {LOC} hired {PER} .",
    "{PER} and {PER} visited {LOC} in spring .", "According to {PER} , {ORG} will open a branch in {LOC} .",
    "{ORG} announced that {PER} will lead the project .", "Flights from {LOC} to {LOC} were cancelled .",
]


def _entity(rng: random.Random, kind: str, pools: dict) -> list[str]:
    if kind == "PER":
        return [_pick(rng, pools, "first")] + ([_pick(rng, pools, "last")] if rng.random() < 0.6 else [])
    if kind == "LOC":
        return [_pick(rng, pools, "city")]
    return _pick(rng, pools, "org").split()


def templated_tagging(n_sentences: int = 600, split: str = "train", seed: int = 0) -> list[TaggedSentence]:
    """Sentences from templates with PER / LOC / ORG entities tagged in BIO."""
    rng = random.Random(f"tag-{split}-{seed}")
    pools = _pools(split)
    out = []
    for i in range(n_sentences):
        words, tags = [], []
        for piece in rng.choice(TAG_TEMPLATES).split():
            if piece.startswith("{") and piece.endswith("}"):
                kind = piece[1:-1]
                ent = _entity(rng, kind, pools)
                words += ent
                tags += [f"B-{kind}"] + [f"I-{kind}"] * (len(ent) - 1)
            else:
                words.append(piece)
                tags.append("O")
        out.append(TaggedSentence(words, tags, f"builtin-tagging-{split}:{i + 1}"))
    return out


TAG_LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"]
