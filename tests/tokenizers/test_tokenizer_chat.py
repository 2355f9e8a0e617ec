"""Chat prompts: default template, custom Jinja templates from tokenizer_config, validation errors."""

import json

import pytest

from lingvis.tokenizers import Tokenizer

MESSAGES = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Who wrote Macbeth?"},
    {"role": "assistant", "content": "Shakespeare."},
    {"role": "user", "content": "当然？"},
]


def test_default_template_text(bpe_tok):
    prompt = bpe_tok.apply_chat_template(MESSAGES)
    assert prompt == (
        "<|system|>\nYou are terse.<|endoftext|>\n"
        "<|user|>\nWho wrote Macbeth?<|endoftext|>\n"
        "<|assistant|>\nShakespeare.<|endoftext|>\n"
        "<|user|>\n当然？<|endoftext|>\n"
        "<|assistant|>\n"
    )
    without = bpe_tok.apply_chat_template(MESSAGES, add_generation_prompt=False)
    assert without == prompt[: -len("<|assistant|>\n")]


def test_default_template_markers_are_single_ids(bpe_tok):
    ids = bpe_tok.encode(bpe_tok.apply_chat_template(MESSAGES[:2]))
    markers = [bpe_tok.token_to_id(m) for m in ("<|system|>", "<|user|>", "<|assistant|>")]
    assert [i for i in ids if i in markers] == markers
    assert ids.count(bpe_tok.eos_id) == 2


def test_default_template_without_eos(char_tok):
    tok = Tokenizer(char_tok.backend, {"unk": "<|unk|>"})
    assert tok.apply_chat_template(MESSAGES[1:2]) == "<|user|>\nWho wrote Macbeth?\n<|assistant|>\n"


def test_custom_jinja_template_from_config(bpe_tok, tmp_path):
    folder = bpe_tok.save(tmp_path / "tok")
    config = json.loads((folder / "tokenizer_config.json").read_text())
    config["chat_template"] = (
        "{{ bos_token }}{% for m in messages %}[{{ m['role'] | upper }}] {{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}[ASSISTANT]{% endif %}"
    )
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    tok = Tokenizer.load(folder)
    prompt = tok.apply_chat_template(MESSAGES[:2])
    assert prompt == "<|endoftext|>[SYSTEM] You are terse.\n[USER] Who wrote Macbeth?\n[ASSISTANT]"


def test_template_from_chat_template_jinja_file(bpe_tok, tmp_path):
    folder = bpe_tok.save(tmp_path / "tok")
    config = json.loads((folder / "tokenizer_config.json").read_text())
    del config["chat_template"]
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    (folder / "chat_template.jinja").write_text("{% for m in messages %}{{ m['content'] }}|{% endfor %}")
    assert Tokenizer.load(folder).apply_chat_template(MESSAGES[:2]) == "You are terse.|Who wrote Macbeth?|"


def test_named_template_list(bpe_tok):
    tok = Tokenizer(bpe_tok.backend, bpe_tok.special_tokens, chat_template=[
        {"name": "tool_use", "template": "tools"}, {"name": "default", "template": "{{ messages | length }}"}
    ])
    assert tok.apply_chat_template(MESSAGES) == "4"
    tok.chat_template = [{"name": "tool_use", "template": "x"}]
    with pytest.raises(ValueError, match="no 'default' entry"):
        tok.apply_chat_template(MESSAGES)


@pytest.mark.parametrize(
    ("messages", "error", "match"),
    [
        ([{"role": "robot", "content": "hi"}], ValueError, r"messages\[0\] has role 'robot'; allowed roles"),
        ([{"role": "user"}], ValueError, r"messages\[0\] has no 'content' key"),
        ([{"content": "hi"}], ValueError, r"messages\[0\] has no 'role' key"),
        ([{"role": "user", "content": "a"}, {"role": "user", "content": 3}], TypeError,
         r"messages\[1\]\['content'\] must be a string or a list of parts, got int"),
        (["hello"], TypeError, r"messages\[0\] must be a dict, got str"),
        ("hello", TypeError, "messages must be a list of dicts, got str"),
    ],
)
def test_message_validation(bpe_tok, messages, error, match):
    with pytest.raises(error, match=match):
        bpe_tok.apply_chat_template(messages)


def test_template_errors(bpe_tok):
    tok = Tokenizer(bpe_tok.backend, bpe_tok.special_tokens, chat_template="{% for m in messages %}")
    with pytest.raises(ValueError, match="chat_template is not valid Jinja"):
        tok.apply_chat_template(MESSAGES)
    tok.chat_template = "{{ raise_exception('only one turn allowed') }}"
    with pytest.raises(ValueError, match="failed to render: only one turn allowed"):
        tok.apply_chat_template(MESSAGES)
