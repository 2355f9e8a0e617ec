"""Reading training text (file, folder, JSONL) and the deterministic train/val split."""

import re

import pytest

from lingvis.data.text import CorpusError, read_documents, read_texts, train_val_split


def write(path, content, mode="w"):
    path.parent.mkdir(parents=True, exist_ok=True)
    if mode == "wb":
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def test_single_file_normalises_line_endings_and_bom(tmp_path):
    path = write(tmp_path / "a.txt", b"\xef\xbb\xbfline one\r\nline two\rend\n", mode="wb")
    docs = read_documents(path)
    assert len(docs) == 1
    assert docs[0].text == "line one\nline two\nend\n"
    assert docs[0].source == str(path)


def test_folder_is_recursive_sorted_and_filtered(tmp_path):
    write(tmp_path / "b.txt", "bee")
    write(tmp_path / "a" / "z.md", "zed")
    write(tmp_path / "a" / "sub" / "y.TXT", "why")
    write(tmp_path / "c.jsonl", '{"text": "sea"}\n')
    write(tmp_path / "skip.py", "print('no')")
    write(tmp_path / "blank.txt", "  \n ")
    assert read_texts(tmp_path) == ["why", "zed", "bee", "sea"]


def test_jsonl_text_field(tmp_path):
    path = write(tmp_path / "d.jsonl", '{"body": "first", "id": 1}\n\n{"body": "second 🙂"}\n')
    docs = read_documents(path, text_field="body")
    assert [d.text for d in docs] == ["first", "second 🙂"]
    assert [d.source for d in docs] == [f"{path}:1", f"{path}:3"]


def test_missing_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"training text not found: .*missing\.txt"):
        read_documents(tmp_path / "missing.txt")


@pytest.mark.parametrize(
    ("files", "match"),
    [
        ({"empty.txt": ""}, r"empty corpus: .*empty\.txt \(1 file\(s\), 1 document\(s\), all empty\)"),
        ({"e.jsonl": '{"text": "  "}\n\n'}, r"empty corpus: .*e\.jsonl"),
        ({"folder/notes.csv": "a,b"}, r"empty corpus: .*folder \(no \.txt/\.md/\.jsonl/\.ndjson files\)"),
    ],
    ids=["empty-file", "blank-jsonl", "no-text-files"],
)
def test_empty_corpus(tmp_path, files, match):
    for name, content in files.items():
        write(tmp_path / name, content)
    target = tmp_path / next(iter(files)).split("/")[0]
    with pytest.raises(CorpusError, match=match):
        read_documents(target)


def test_non_utf8_names_file_and_offset(tmp_path):
    write(tmp_path / "ok.txt", "fine")
    bad = write(tmp_path / "zz" / "bad.txt", b"abc\xff\xfedef", mode="wb")
    with pytest.raises(CorpusError, match=rf"{re.escape(str(bad))}: not valid UTF-8 at byte offset 3 \(bytes: ff\)"):
        read_documents(tmp_path)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ('{"text": "ok"}\n{"text": "broken\n', r"bad\.jsonl:2: invalid JSON"),
        ('{"text": "ok"}\n\n{"title": "x", "id": 2}\n', r"bad\.jsonl:3: missing field 'text' \(keys present: id, title\)"),
        ('{"text": 5}\n', r"bad\.jsonl:1: field 'text' must be a string, got int"),
        ('["text"]\n', r"bad\.jsonl:1: expected a JSON object, got list"),
    ],
    ids=["bad-json", "missing-field", "non-string", "non-object"],
)
def test_jsonl_errors_name_line(tmp_path, content, match):
    path = write(tmp_path / "bad.jsonl", content)
    with pytest.raises(CorpusError, match=match):
        read_documents(path)


def test_split_documents_is_deterministic_and_disjoint():
    docs = [f"doc {i}" for i in range(20)]
    train, val = train_val_split(docs, val_fraction=0.2, seed=3)
    assert (train, val) == train_val_split(docs, val_fraction=0.2, seed=3)
    assert len(val) == 4 and len(train) == 16
    assert sorted(train + val) == sorted(docs)
    assert train == [d for d in docs if d in train]  # original order kept
    other_seeds = {tuple(train_val_split(docs, 0.2, seed=s)[1]) for s in range(5)}
    assert len(other_seeds) > 1  # the seed changes the choice
    assert train_val_split(docs, 0.2, seed=None)[1] == docs[-4:]


def test_split_keeps_at_least_one_document_each_side():
    train, val = train_val_split(["a", "b"], val_fraction=0.01)
    assert len(train) == 1 and len(val) == 1
    train, val = train_val_split(["a", "b", "c"], val_fraction=0.99)
    assert len(train) == 1 and len(val) == 2


def test_split_single_text_takes_tail():
    text = "".join(chr(ord("a") + i % 26) for i in range(1000))
    train, val = train_val_split(text, val_fraction=0.1)
    assert train == [text[:900]] and val == [text[900:]]
    assert train_val_split([text], 0.1) == (train, val)


def test_split_errors():
    with pytest.raises(ValueError, match="val_fraction must be in \\(0, 1\\), got 1.0"):
        train_val_split(["a", "b"], val_fraction=1.0)
    with pytest.raises(CorpusError, match="empty list"):
        train_val_split([], 0.1)
    with pytest.raises(CorpusError, match=r"text is too short to split \(1 characters"):
        train_val_split("a", val_fraction=0.1)
