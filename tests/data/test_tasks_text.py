"""Fine-tuning data readers: classification files, CoNLL, SQuAD; errors name file and line/record."""
import json

import pytest

from lingvis.data.tasks_text import (TaskDataError, check_labels, parse_squad, read_classification, read_conll,
                                     read_squad)


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_csv_tsv_jsonl_classification(tmp_path):
    csv_ = read_classification(write(tmp_path / "a.csv", 'text,label\n"Hello, world",pos\nBad day,neg\n'))
    assert [(e.text, e.label) for e in csv_] == [("Hello, world", "pos"), ("Bad day", "neg")]
    assert csv_[1].source.endswith("a.csv:3")
    tsv = read_classification(write(tmp_path / "b.tsv", "text\ttext_pair\tlabel\nA man\tA person\tentail\n"))
    assert tsv[0].text_pair == "A person" and tsv[0].label == "entail"
    jl = read_classification(write(tmp_path / "c.jsonl", '{"text": "x", "label": 1}\n\n{"text": "y", "label": 0}\n'))
    assert [e.label for e in jl] == ["1", "0"] and jl[1].source.endswith("c.jsonl:3")
    js = read_classification(write(tmp_path / "d.json", json.dumps([{"sentence": "z", "y": "k"}])),
                             text_field="sentence", label_field="y")
    assert js[0].text == "z" and js[0].label == "k"


def test_classification_errors_name_file_and_line(tmp_path):
    with pytest.raises(TaskDataError, match=r"a\.csv:3: missing or empty 'label'"):
        read_classification(write(tmp_path / "a.csv", "text,label\nok,pos\nno label here,\n"))
    with pytest.raises(TaskDataError, match=r"b\.jsonl:2: missing or empty 'label'"):
        read_classification(write(tmp_path / "b.jsonl", '{"text": "a", "label": "x"}\n{"text": "b"}\n'))
    with pytest.raises(TaskDataError, match=r"c\.jsonl:1: invalid JSON"):
        read_classification(write(tmp_path / "c.jsonl", '{"text": \n'))
    with pytest.raises(TaskDataError, match=r"d\.csv:2: 3 cells but the header has 2"):
        read_classification(write(tmp_path / "d.csv", "text,label\na,b,c\n"))
    with pytest.raises(TaskDataError, match="unknown format"):
        read_classification(write(tmp_path / "e.xml", "<x/>"))
    no_labels = read_classification(write(tmp_path / "f.csv", "text\nhello\n"), require_labels=False)
    assert no_labels[0].label is None
    with pytest.raises(TaskDataError, match=r"f\.csv:2: missing label"):
        check_labels(no_labels, ["pos"])
    examples = read_classification(write(tmp_path / "g.csv", "text,label\na,pos\nb,maybe\n"))
    with pytest.raises(TaskDataError, match=r"g\.csv:3: unknown label 'maybe'; known labels: \['neg', 'pos'\]"):
        check_labels(examples, ["pos", "neg"])


CONLL = """-DOCSTART- -X- O O

EU NNP B-ORG
rejects VBZ O
German JJ B-MISC

Peter NNP B-PER
Blackburn NNP I-PER
"""


def test_conll_sentences_and_tags(tmp_path):
    sents = read_conll(write(tmp_path / "x.conll", CONLL))
    assert [s.tokens for s in sents] == [["EU", "rejects", "German"], ["Peter", "Blackburn"]]
    assert sents[1].tags == ["B-PER", "I-PER"] and sents[1].source.endswith("x.conll:7")
    plain = read_conll(write(tmp_path / "p.txt", "Hello\nworld\n\nBye\n"), require_tags=False)
    assert plain[0].tags is None and plain[1].tokens == ["Bye"]


def test_conll_errors_name_file_and_line(tmp_path):
    with pytest.raises(TaskDataError, match=r"x\.conll:4: 2 columns, but line 3 has 3"):
        read_conll(write(tmp_path / "x.conll", CONLL.replace("rejects VBZ O", "rejects O")))
    with pytest.raises(TaskDataError, match=r"y\.conll:2: bad tag 'PER'"):
        read_conll(write(tmp_path / "y.conll", "Ann B-PER\nSmith PER\n"))
    with pytest.raises(TaskDataError, match=r"z\.conll:1: one column"):
        read_conll(write(tmp_path / "z.conll", "Ann\n"))


def squad(answer_start=11, impossible=False, answers=None, version="v2.0"):
    ctx = "Alice went to Paris in May."
    ans = [{"text": "Paris", "answer_start": answer_start}] if answers is None else answers
    return {"version": version, "data": [{"title": "t", "paragraphs": [{"context": ctx, "qas": [
        {"id": "q1", "question": "Where did Alice go?", "answers": ans, "is_impossible": impossible}]}]}]}


def test_squad_reader(tmp_path):
    examples, version = read_squad(write(tmp_path / "s.json", json.dumps(squad(answer_start=14))))
    assert version == "v2.0" and examples[0].answers == [("Paris", 14)]
    ex, _ = parse_squad(squad(answers=[], impossible=True))
    assert ex[0].is_impossible and ex[0].answers == []


def test_squad_errors_name_the_record(tmp_path):
    with pytest.raises(TaskDataError, match=r"s\.json: data\[0\]\.paragraphs\[0\]\.qas\[0\] \(id 'q1'\): "
                                            r"answers\[0\] 'Paris' is not in the context at answer_start 11"):
        read_squad(write(tmp_path / "s.json", json.dumps(squad(answer_start=11))))
    with pytest.raises(TaskDataError, match="no answers"):
        parse_squad(squad(answers=[], version="1.1"))
    with pytest.raises(TaskDataError, match="is_impossible is true but"):
        parse_squad(squad(answer_start=14, impossible=True))
    with pytest.raises(TaskDataError, match=r"bad\.json:1: invalid JSON"):
        read_squad(write(tmp_path / "bad.json", "{oops"))
