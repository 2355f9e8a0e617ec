"""Parallel (translation) data: a built-in English<->Chinese shapes corpus and file readers.

Readers: TSV (`src<TAB>tgt`), JSONL (`{"src", "tgt"}`) and two aligned plain-text files.
Empty sides are skipped and counted (`on_empty="skip"`) or raise (`on_empty="error"`).
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from pathlib import Path

from torch.utils.data import Dataset

from lingvis.data.shapes_scene import HELD_OUT, make_scene
from lingvis.data.shapes_zh import scene_sentence_pairs
from lingvis.jsonfile import iter_jsonl

log = logging.getLogger(__name__)
PARALLEL_SPLITS = ("train", "val", "test", "test_unseen")


@dataclass(frozen=True)
class ParallelPair:
    src: str
    tgt: str


@dataclass
class ParallelReadResult:
    """Pairs read from `files`, with how many were skipped for an empty source or target."""

    pairs: list[ParallelPair]
    files: tuple[str, ...]
    empty_src: int = 0
    empty_tgt: int = 0

    @property
    def skipped(self) -> int:
        return self.empty_src + self.empty_tgt


class ParallelFormatError(ValueError):
    """A malformed parallel-data file; the message names the file(s) and line."""


def mentions_held_out(sentence: str) -> bool:
    """True if an English sentence names a held-out (colour, shape) pair, e.g. 'red triangle'."""
    return any(f"{c} {s}" in sentence for c, s in HELD_OUT)


def _split_pairs(
    split: str, n: int, seed: int, taken: set[str], max_scenes_per_pair: int = 50
) -> list[ParallelPair]:
    rng = random.Random(f"lingvis-parallel/{seed}/{split}")
    unseen = split == "test_unseen"
    out: list[ParallelPair] = []
    for _ in range(max(1, n) * max_scenes_per_pair):
        if len(out) >= n:
            return out
        scene = make_scene(rng, held_out="require" if unseen else "exclude")
        en, zh = rng.choice(scene_sentence_pairs(scene, rng))
        if en in taken or mentions_held_out(en) != unseen:
            continue
        taken.add(en)
        out.append(ParallelPair(en, zh))
    if len(out) < n:
        raise ValueError(f"could only make {len(out)} distinct {split} pairs of the {n} requested")
    return out


def build_parallel_corpus(
    n_train: int = 5000, n_val: int = 500, n_test: int = 500, n_test_unseen: int | None = None,
    seed: int = 0,
) -> dict[str, list[ParallelPair]]:
    """English->Chinese pairs per split; no English sentence is repeated across or within splits.

    `test_unseen` sentences each name a held-out (colour, shape) pair that no other split names.
    """
    counts = {"train": n_train, "val": n_val, "test": n_test,
              "test_unseen": n_test if n_test_unseen is None else n_test_unseen}
    taken: set[str] = set()
    return {split: _split_pairs(split, n, seed, taken) for split, n in counts.items()}


def write_parallel_tsv(pairs: list[ParallelPair], path: str | Path) -> Path:
    path = Path(path)
    for i, p in enumerate(pairs):
        if any(ch in p.src + p.tgt for ch in "\t\n\r"):
            raise ValueError(f"pair {i} contains a tab or newline and cannot be written to TSV {path}")
    path.write_text("".join(f"{p.src}\t{p.tgt}\n" for p in pairs), encoding="utf-8")
    return path


def write_parallel_corpus(out_dir: str | Path, seed: int = 0, **sizes: int) -> dict[str, Path]:
    """Write `<split>.tsv` for each split of `build_parallel_corpus(seed=seed, **sizes)`."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    corpus = build_parallel_corpus(seed=seed, **sizes)
    return {split: write_parallel_tsv(pairs, out / f"{split}.tsv") for split, pairs in corpus.items()}


@dataclass
class _Collector:
    files: tuple[str, ...]
    on_empty: str
    result: ParallelReadResult = field(init=False)

    def __post_init__(self) -> None:
        if self.on_empty not in ("skip", "error"):
            raise ValueError(f"on_empty must be 'skip' or 'error', got {self.on_empty!r}")
        self.result = ParallelReadResult([], self.files)

    def add(self, src: str, tgt: str, where: str) -> None:
        src, tgt = src.strip(), tgt.strip()
        if src and tgt:
            self.result.pairs.append(ParallelPair(src, tgt))
            return
        side = "source" if not src else "target"
        if self.on_empty == "error":
            raise ParallelFormatError(f"{where}: empty {side} sentence")
        if not src:
            self.result.empty_src += 1
        else:
            self.result.empty_tgt += 1

    def finish(self) -> ParallelReadResult:
        if self.result.skipped:
            log.warning("%s: skipped %d pairs with an empty source and %d with an empty target",
                        ", ".join(self.files), self.result.empty_src, self.result.empty_tgt)
        return self.result


def _lines(path: Path) -> list[str]:
    if not path.is_file():
        raise FileNotFoundError(f"parallel data file not found: {path}")
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise ParallelFormatError(f"{path}: not valid UTF-8 ({e})") from e


def read_parallel_tsv(path: str | Path, on_empty: str = "skip") -> ParallelReadResult:
    """One `source<TAB>target` pair per line; a blank line counts as an empty source."""
    path = Path(path)
    acc = _Collector((str(path),), on_empty)
    for lineno, line in enumerate(_lines(path), 1):
        fields = line.split("\t") if line.strip() else ["", ""]
        if len(fields) != 2:
            raise ParallelFormatError(f"{path}:{lineno}: expected 2 tab-separated fields "
                                      f"(source, target), found {len(fields)}")
        acc.add(fields[0], fields[1], f"{path}:{lineno}")
    return acc.finish()


def read_parallel_jsonl(
    path: str | Path, src_key: str = "src", tgt_key: str = "tgt", on_empty: str = "skip"
) -> ParallelReadResult:
    """One JSON object per line with string fields `src_key` and `tgt_key`; blank lines ignored."""
    path = Path(path)
    acc = _Collector((str(path),), on_empty)
    for lineno, rec in iter_jsonl(path, ParallelFormatError, what="parallel data file"):
        where = f"{path}:{lineno}"
        for key in (src_key, tgt_key):
            if not isinstance(rec.get(key), str):
                raise ParallelFormatError(f"{where}: field {key!r} missing or not a string "
                                          f"(keys: {sorted(rec)})")
        acc.add(rec[src_key], rec[tgt_key], where)
    return acc.finish()


def read_parallel_text(
    src_path: str | Path, tgt_path: str | Path, on_empty: str = "skip"
) -> ParallelReadResult:
    """Two aligned files, line i of one translating line i of the other."""
    src_path, tgt_path = Path(src_path), Path(tgt_path)
    src_lines, tgt_lines = _lines(src_path), _lines(tgt_path)
    if len(src_lines) != len(tgt_lines):
        raise ParallelFormatError(
            f"misaligned parallel files: {src_path} has {len(src_lines)} lines, "
            f"{tgt_path} has {len(tgt_lines)} lines")
    acc = _Collector((str(src_path), str(tgt_path)), on_empty)
    for lineno, (s, t) in enumerate(zip(src_lines, tgt_lines), 1):
        acc.add(s, t, f"{src_path}:{lineno} / {tgt_path}:{lineno}")
    return acc.finish()


def read_parallel(
    path: str | Path, tgt_path: str | Path | None = None, on_empty: str = "skip", **kwargs: str
) -> ParallelReadResult:
    """Dispatch on the file: two paths -> aligned text; `.jsonl` -> JSONL; `.tsv`/`.txt` -> TSV."""
    if tgt_path is not None:
        return read_parallel_text(path, tgt_path, on_empty)
    suffix = Path(path).suffix.lower()
    if suffix in (".jsonl", ".json"):
        return read_parallel_jsonl(path, on_empty=on_empty, **kwargs)
    if suffix in (".tsv", ".txt"):
        return read_parallel_tsv(path, on_empty)
    raise ValueError(f"{path}: unknown parallel format {suffix!r}; use .tsv, .jsonl, or pass "
                     "tgt_path for two aligned plain-text files")


class ParallelDataset(Dataset):
    """Records {'src', 'tgt'}; `reversed()` swaps the direction (e.g. zh->en)."""

    def __init__(self, pairs: list[ParallelPair]) -> None:
        self.pairs = list(pairs)

    @classmethod
    def builtin(cls, split: str = "train", seed: int = 0, **sizes: int) -> "ParallelDataset":
        if split not in PARALLEL_SPLITS:
            raise ValueError(f"unknown split {split!r}; choose from {PARALLEL_SPLITS}")
        return cls(build_parallel_corpus(seed=seed, **sizes)[split])

    def reversed(self) -> "ParallelDataset":
        return ParallelDataset([ParallelPair(p.tgt, p.src) for p in self.pairs])

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> dict[str, str]:
        p = self.pairs[i]
        return {"src": p.src, "tgt": p.tgt}
