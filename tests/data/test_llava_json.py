"""Reading LLaVA conversation JSON: images relative to the file (or --image-root), text-only rows, errors naming
the row, its id and the problem."""
import json

import pytest

from lingvis.data.llava_json import read_llava_json


def write(tmp_path, rows, name="llava.json"):
    p = tmp_path / name
    p.write_text(json.dumps(rows) if name.endswith(".json") else "\n".join(json.dumps(r) for r in rows))
    return p


ROW = {"id": "a1", "image": "imgs/1.png", "conversations": [{"from": "human", "value": "<image>\nWhat?"},
                                                             {"from": "gpt", "value": "A star."}]}


def test_rows_images_and_text_only(tmp_path):
    text_only = {"id": "t", "conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"}]}
    two = {"id": "b", "image": ["x.png", "y.png"], "conversations": [
        {"from": "human", "value": "<image>\n<image>\nSame?"}, {"from": "gpt", "value": "No."}]}
    convs = read_llava_json(write(tmp_path, [ROW, text_only, two]))
    assert [c.id for c in convs] == ["a1", "t", "b"]
    assert convs[0].images == [tmp_path / "imgs/1.png"] and convs[1].images == []
    assert len(convs[2].images) == 2 and convs[0].messages[1] == {"role": "assistant", "content": "A star."}
    jsonl = read_llava_json(write(tmp_path, [ROW], "rows.jsonl"), image_root=tmp_path / "root")
    assert jsonl[0].images == [tmp_path / "root" / "imgs/1.png"]


@pytest.mark.parametrize("row,match", [
    ({"id": "z", "image": "1.png", "conversations": [{"from": "human", "value": "What?"},
                                                    {"from": "gpt", "value": "x"}]},
     r"row 0 \(id 'z'\) has 0 image placeholder\(s\) \(<image>\) but 1 image\(s\)"),
    ({"id": "z", "conversations": "nope"}, "expected an object with a 'conversations' list"),
    ({"id": "z", "image": 3, "conversations": []}, "'image' must be a path"),
    ({"id": "z", "conversations": [{"from": "robot", "value": "x"}]}, "turn 0 is from 'robot'"),
])
def test_bad_rows_are_named(tmp_path, row, match):
    with pytest.raises(ValueError, match=match):
        read_llava_json(write(tmp_path, [row]))


def test_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_llava_json(tmp_path / "missing.json")
    (tmp_path / "x.json").write_text("{")
    with pytest.raises(ValueError, match=r"x\.json:1:2: invalid JSON"):
        read_llava_json(tmp_path / "x.json")
    (tmp_path / "x.jsonl").write_text('{"id": "a", "conversations": []}\n[1]\n')
    with pytest.raises(ValueError, match=r"x\.jsonl:2: expected a JSON object, got list"):
        read_llava_json(tmp_path / "x.jsonl")
    with pytest.raises(ValueError, match="expected a JSON list"):
        read_llava_json(write(tmp_path, {"a": 1}))
