import pytest

from lingvis.jsonfile import iter_jsonl, read_json


class MyError(ValueError):
    pass


def test_reads_and_checks_the_top_level_type(tmp_path):
    p = tmp_path / "a.json"
    p.write_text('{"x": [1, 2]}')
    assert read_json(p, expect=dict) == {"x": [1, 2]}
    with pytest.raises(MyError, match=r"a\.json: expected a JSON list, got dict"):
        read_json(p, MyError, expect=list)


def test_errors_name_the_file_line_and_column(tmp_path):
    with pytest.raises(FileNotFoundError, match="captions file not found: .*nope.json"):
        read_json(tmp_path / "nope.json", what="captions file")
    p = tmp_path / "bad.json"
    p.write_text('{"a": 1,\n  "b": }')
    with pytest.raises(MyError, match=r"bad\.json:2:8: invalid JSON \(Expecting value\)"):
        read_json(p, MyError)
    p.write_bytes(b'{"a": "\xff"}')
    with pytest.raises(MyError, match=r"bad\.json: not UTF-8 text"):
        read_json(p, MyError)


def test_jsonl_records_with_line_numbers(tmp_path):
    p = tmp_path / "a.jsonl"
    p.write_text('{"t": "x\u2028y"}\r\n\n  \n{"t": 2}\n', encoding="utf-8")  # U+2028 inside a string is no line end
    assert list(iter_jsonl(p)) == [(1, {"t": "x\u2028y"}), (4, {"t": 2})]
    assert list(iter_jsonl(p, text='{"a": 1}')) == [(1, {"a": 1})]


def test_jsonl_errors_name_the_file_and_line(tmp_path):
    with pytest.raises(FileNotFoundError, match="scenes file not found: .*nope.jsonl"):
        list(iter_jsonl(tmp_path / "nope.jsonl", what="scenes file"))
    p = tmp_path / "bad.jsonl"
    p.write_text('{"a": 1}\n{"a": \n')
    with pytest.raises(MyError, match=r"bad\.jsonl:2: invalid JSON \(Expecting value at column 7\)"):
        list(iter_jsonl(p, MyError))
    p.write_text('{"a": 1}\n[1, 2]\n')
    with pytest.raises(MyError, match=r"bad\.jsonl:2: expected a JSON object, got list"):
        list(iter_jsonl(p, MyError))
    p.write_bytes(b'{"a": "\xff"}\n')
    with pytest.raises(MyError, match=r"bad\.jsonl: not UTF-8 text"):
        list(iter_jsonl(p, MyError))
