"""Conversation and preference readers: OpenAI/TRL, ShareGPT, prompt-completion rows; errors name the row
and the field."""
from __future__ import annotations

import json

import pytest

from lingvis.data.chat import ChatDataError, read_conversations, read_preferences, write_jsonl
from lingvis.data.tasks_text import TaskDataError

MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"},
            {"role": "assistant", "content": "4"}, {"role": "user", "content": "and 3+3?"},
            {"role": "assistant", "content": [{"type": "text", "text": "6"}]}]


def _write(tmp_path, rows, name="data.jsonl"):
    path = tmp_path / name
    path.write_text("\n".join(json.dumps(r) if not isinstance(r, str) else r for r in rows) + "\n")
    return path


def test_all_conversation_forms(tmp_path):
    sharegpt = {"system": "Be brief.", "conversations": [
        {"from": "human", "value": "2+2?"}, {"from": "gpt", "value": "4"},
        {"from": "human", "value": "and 3+3?"}, {"from": "gpt", "value": "6"}]}
    rows = [{"messages": MESSAGES}, sharegpt, {"prompt": "2+2?", "completion": "4"},
            {"prompt": MESSAGES[:2], "completion": [MESSAGES[2]]}, ""]
    convs = read_conversations(_write(tmp_path, rows))
    assert len(convs) == 4
    assert convs[0].messages == convs[1].messages
    assert convs[0].messages[-1] == {"role": "assistant", "content": "6"}
    assert convs[2].messages == [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]
    assert convs[3].messages == MESSAGES[:3]
    assert convs[1].source.endswith("data.jsonl:2")
    as_json = tmp_path / "data.json"
    as_json.write_text(json.dumps([c.to_row() for c in convs]))
    assert [c.messages for c in read_conversations(as_json)] == [c.messages for c in convs]


@pytest.mark.parametrize(("row", "match"), [
    ({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant"}]},
     r"data.jsonl:1: messages\[1\] has no 'content' \(keys: role\)"),
    ({"messages": [{"role": "robot", "content": "hi"}]}, r"data.jsonl:1: messages\[0\] has role 'robot'"),
    ({"messages": [{"role": "user", "content": 3}]}, r"messages\[0\]\['content'\] must be a string, got int"),
    ({"messages": [{"role": "user", "content": "hi"}]}, "has no non-empty assistant message"),
    ({"messages": []}, "'messages' must be a non-empty list of messages, got an empty list"),
    ({"conversations": [{"from": "alien", "value": "x"}]}, r"conversations\[0\] has 'from' 'alien'"),
    ({"conversations": [{"from": "human"}]}, r"conversations\[0\] has no 'value'"),
    ({"text": "hello"}, "expected a 'messages' list .* keys present: text"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": "x"}]}]},
     "only text parts"),
])
def test_conversation_errors_name_row_and_field(tmp_path, row, match):
    with pytest.raises(ChatDataError, match=match):
        read_conversations(_write(tmp_path, [row]))


def test_file_errors(tmp_path):
    with pytest.raises(TaskDataError, match=r"data.jsonl:2: invalid JSON"):
        read_conversations(_write(tmp_path, [{"messages": MESSAGES}, "{oops"]))
    with pytest.raises(ChatDataError, match="no conversations"):
        read_conversations(_write(tmp_path, [""]))
    with pytest.raises(ChatDataError, match="unknown format '.txt'"):
        read_conversations(_write(tmp_path, [{"messages": MESSAGES}], "data.txt"))
    with pytest.raises(FileNotFoundError, match="chat data not found"):
        read_conversations(tmp_path / "missing.jsonl")


def test_preference_forms(tmp_path):
    rows = [
        {"prompt": "2+2?", "chosen": "4", "rejected": "The answer is 4."},
        {"prompt": MESSAGES[:2], "chosen": [{"role": "assistant", "content": "4"}],
         "rejected": [{"role": "assistant", "content": "5"}]},
        {"chosen": MESSAGES[:3], "rejected": [*MESSAGES[:2], {"role": "assistant", "content": "five"}]},
    ]
    pairs = read_preferences(_write(tmp_path, rows))
    assert pairs[0].prompt == [{"role": "user", "content": "2+2?"}]
    assert pairs[0].rejected == [{"role": "assistant", "content": "The answer is 4."}]
    assert pairs[1].prompt == MESSAGES[:2] and pairs[1].chosen == [MESSAGES[2]]
    assert pairs[2].prompt == MESSAGES[:2] and pairs[2].rejected[0]["content"] == "five"  # implicit prompt
    path = write_jsonl(tmp_path / "out" / "p.jsonl", [p.to_row() for p in pairs])
    assert [p.to_row() for p in read_preferences(path)] == [p.to_row() for p in pairs]


@pytest.mark.parametrize(("row", "match"), [
    ({"prompt": "q", "chosen": "a"}, r"data.jsonl:1: missing 'rejected'"),
    ({"prompt": "q", "chosen": "a", "rejected": "a"}, "'chosen' and 'rejected' are identical"),
    ({"chosen": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}],
      "rejected": [{"role": "user", "content": "other"}, {"role": "assistant", "content": "b"}]},
     "must start with the same prompt messages"),
    ({"prompt": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}], "chosen": "b",
      "rejected": "c"}, "'prompt' must end with a user"),
    ({"prompt": "q", "chosen": [{"role": "assistant", "content": ""}], "rejected": "c"},
     "'chosen' completion has no non-empty assistant message"),
])
def test_preference_errors(tmp_path, row, match):
    with pytest.raises(ChatDataError, match=match):
        read_preferences(_write(tmp_path, [row]))
