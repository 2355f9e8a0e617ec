"""Built-in English-Chinese shapes corpus and the parallel-data readers."""

import random
import re

import pytest

from lingvis.data.parallel import (
    ParallelDataset, ParallelFormatError, ParallelPair, build_parallel_corpus, mentions_held_out,
    read_parallel, read_parallel_jsonl, read_parallel_text, read_parallel_tsv, write_parallel_corpus,
)
from lingvis.data.shapes_scene import Scene, ShapeObject
from lingvis.data.shapes_zh import ZH_COLOURS, ZH_SHAPES, scene_sentence_pairs

SIZES = dict(n_train=400, n_val=60, n_test=60, n_test_unseen=60)


@pytest.fixture(scope="module")
def corpus():
    return build_parallel_corpus(seed=0, **SIZES)


def test_corpus_sizes_determinism_and_disjoint_splits(corpus):
    assert {k: len(v) for k, v in corpus.items()} == {"train": 400, "val": 60, "test": 60, "test_unseen": 60}
    assert build_parallel_corpus(seed=0, **SIZES) == corpus
    assert build_parallel_corpus(seed=1, **SIZES)["train"] != corpus["train"]
    all_src = [p.src for pairs in corpus.values() for p in pairs]
    assert len(all_src) == len(set(all_src))


def test_unseen_split_holds_out_attribute_pairs(corpus):
    for split, pairs in corpus.items():
        flags = [mentions_held_out(p.src) for p in pairs]
        assert all(flags) if split == "test_unseen" else not any(flags), split


def test_example_translations_and_word_order():
    scene = Scene([ShapeObject("circle", "red", "small", 0.2, 0.5, 0.1),
                   ShapeObject("square", "blue", "large", 0.75, 0.5, 0.18)])
    pairs = dict(scene_sentence_pairs(scene, random.Random(0)))
    src = "a small red circle to the left of a large blue square"
    if src not in pairs:  # the related pair is drawn at random; either direction is valid
        src = "a large blue square to the right of a small red circle"
        assert pairs[src] == "一个大的蓝色正方形在一个小的红色圆形的右边"
    else:
        assert pairs[src] == "一个小的红色圆形在一个大的蓝色正方形的左边"
    assert pairs["a small red circle and a large blue square"] == "一个小的红色圆形和一个大的蓝色正方形"
    there = next(k for k in pairs if k.startswith("there is a"))
    assert re.fullmatch(r"在一个.+的(左边|右边)有一个.+", pairs[there])  # location first in Chinese


def test_every_pair_translates_each_attribute(corpus):
    for pairs in corpus.values():
        for p in pairs:
            words = re.findall(r"[a-z]+", p.src)
            for en, zh in (*ZH_COLOURS.items(), *ZH_SHAPES.items()):
                en_count = sum(w in (en, en + "s") for w in words)
                assert en_count == p.tgt.count(zh), (p, en)


def test_tsv_reader(tmp_path):
    path = tmp_path / "train.tsv"
    path.write_text("hello\t你好\n\tempty source\nworld\t世界\n\nbye\t\n")
    res = read_parallel_tsv(path)
    assert res.pairs == [ParallelPair("hello", "你好"), ParallelPair("world", "世界")]
    assert (res.empty_src, res.empty_tgt, res.skipped) == (2, 1, 3)
    with pytest.raises(ParallelFormatError, match=r"train.tsv:2: empty source"):
        read_parallel_tsv(path, on_empty="error")
    path.write_text("a\tb\nno tab here\n")
    with pytest.raises(ParallelFormatError, match=r"train.tsv:2: expected 2 tab-separated fields.*found 1"):
        read_parallel_tsv(path)
    with pytest.raises(ValueError, match="on_empty"):
        read_parallel_tsv(path, on_empty="ignore")


def test_jsonl_reader(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"src": "a", "tgt": "甲"}\n\n{"src": " ", "tgt": "乙"}\n{"src": "c", "tgt": "丙"}\n')
    res = read_parallel_jsonl(path)
    assert [p.src for p in res.pairs] == ["a", "c"] and res.empty_src == 1
    path.write_text('{"src": "a", "tgt": "甲"}\n{"src": "b", "tgt": }\n')
    with pytest.raises(ParallelFormatError, match=r"d.jsonl:2: invalid JSON"):
        read_parallel_jsonl(path)
    path.write_text('{"en": "a", "zh": "甲"}\n{"en": "b"}\n')
    with pytest.raises(ParallelFormatError, match=r"d.jsonl:2: field 'zh' missing"):
        read_parallel_jsonl(path, src_key="en", tgt_key="zh")


def test_text_pair_reader(tmp_path):
    en, zh = tmp_path / "train.en", tmp_path / "train.zh"
    en.write_text("one\n\nthree\n")
    zh.write_text("一\n二\n三\n")
    res = read_parallel_text(en, zh)
    assert res.pairs == [ParallelPair("one", "一"), ParallelPair("three", "三")] and res.empty_src == 1
    with pytest.raises(ParallelFormatError, match=r"train.en:2 / .*train.zh:2: empty source"):
        read_parallel_text(en, zh, on_empty="error")
    zh.write_text("一\n二\n")
    with pytest.raises(ParallelFormatError, match=r"train.en has 3 lines, .*train.zh has 2 lines"):
        read_parallel_text(en, zh)
    with pytest.raises(FileNotFoundError, match="train.de"):
        read_parallel_text(en, tmp_path / "train.de")


def test_write_and_read_back_builtin_corpus(tmp_path):
    paths = write_parallel_corpus(tmp_path / "mt", seed=2, n_train=50, n_val=10, n_test=10, n_test_unseen=10)
    assert sorted(paths) == ["test", "test_unseen", "train", "val"]
    again = build_parallel_corpus(seed=2, n_train=50, n_val=10, n_test=10, n_test_unseen=10)
    for split, path in paths.items():
        res = read_parallel(path)
        assert res.pairs == again[split] and res.skipped == 0
    with pytest.raises(ValueError, match="unknown parallel format"):
        read_parallel(tmp_path / "x.parquet")


def test_dataset_and_reverse():
    ds = ParallelDataset.builtin("val", seed=0, n_train=20, n_val=5, n_test=5, n_test_unseen=5)
    assert len(ds) == 5 and set(ds[0]) == {"src", "tgt"}
    rev = ds.reversed()
    assert rev[0] == {"src": ds[0]["tgt"], "tgt": ds[0]["src"]}
    with pytest.raises(ValueError, match="unknown split"):
        ParallelDataset.builtin("dev")
