import pytest

from lingvis.jsonfile import read_json


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
