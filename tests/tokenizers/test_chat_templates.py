"""Real chat templates (Qwen2/2.5 ChatML, Llama 3/3.1, Mistral [INST]) render and tokenize exactly as
transformers' `apply_chat_template` does, on tokenizers written to disk and loaded by both libraries;
assistant masks match transformers' `{% generation %}` masks."""
from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest
import tokenizers as hf_tok

from lingvis.tokenizers import Tokenizer

transformers = pytest.importorskip("transformers")

TEMPLATES = Path(__file__).parent / "chat_templates"
LLAMA3 = dict(roles={"bos": "<|begin_of_text|>", "eos": "<|eot_id|>"},
              extra=["<|start_header_id|>", "<|end_header_id|>", "<|end_of_text|>", "<|eom_id|>", "<|python_tag|>"])
CHATML = dict(roles={"eos": "<|im_end|>", "pad": "<|endoftext|>"}, extra=["<|im_start|>"])
MISTRAL = dict(roles={"bos": "<s>", "eos": "</s>", "unk": "<unk>"},
               extra=["[INST]", "[/INST]", "[AVAILABLE_TOOLS]", "[/AVAILABLE_TOOLS]", "[TOOL_CALLS]",
                      "[TOOL_RESULTS]", "[/TOOL_RESULTS]"])
FAMILIES = {
    "qwen2": ("qwen2-instruct.jinja", CHATML),
    "qwen2.5": ("qwen2.5-instruct.jinja", CHATML),
    "llama-3": ("llama-3-instruct.jinja", LLAMA3),
    "llama-3.1": ("llama-3.1-instruct.jinja", LLAMA3),
    "mistral-v0.1": ("mistral-7b-instruct-v0.1.jinja", MISTRAL),
    "mistral-v0.2": ("mistral-7b-instruct-v0.2.jinja", MISTRAL),
    "mistral-nemo": ("mistral-nemo-instruct.jinja", MISTRAL),
}
SYSTEM = {"role": "system", "content": "You are terse. Answer in one line."}
TURNS = [
    {"role": "user", "content": "  Reverse 'abc', please.\n"},
    {"role": "assistant", "content": "cba"},
    {"role": "user", "content": "Übersetze 你好 🙂 — und zähle: a a b"},
    {"role": "assistant", "content": " 2 a's\n\nDone. "},
    {"role": "user", "content": "Thanks!"},
]
CONVERSATIONS = {"system": [SYSTEM, *TURNS], "plain": TURNS, "one_turn": TURNS[:1], "closed": TURNS[:4]}
TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Current weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string", "description": "the city"}},
                   "required": ["city"]}}}]


def _tokenizer(tmp_path: Path, bpe_tok, name: str, template: str | list) -> Path:
    spec = FAMILIES[name][1]
    backend = hf_tok.Tokenizer.from_str(bpe_tok.backend.to_str())
    specials = list(dict.fromkeys([*spec["roles"].values(), *spec["extra"]]))
    backend.add_special_tokens([hf_tok.AddedToken(t, special=True, normalized=False) for t in specials])
    folder = tmp_path / name
    Tokenizer(backend, spec["roles"], chat_template=template).save(folder)
    return folder


@pytest.fixture(params=sorted(FAMILIES))
def family(request, bpe_tok, tmp_path):
    name = request.param
    folder = _tokenizer(tmp_path, bpe_tok, name, (TEMPLATES / FAMILIES[name][0]).read_text())
    return name, Tokenizer.load(folder), transformers.AutoTokenizer.from_pretrained(folder)


def _both(ours, theirs, messages, **kw):
    """(our text or error message, their text or error message)."""
    out = []
    for fn in (lambda: ours.apply_chat_template(messages, **kw),
               lambda: theirs.apply_chat_template(messages, tokenize=False, **kw)):
        try:
            out.append(fn())
        except Exception as err:  # both libraries must fail alike on what a template refuses
            out.append(("error", str(err).split(": ", 1)[-1] if "failed to render" in str(err) else str(err)))
    return out


@pytest.mark.parametrize("conversation", sorted(CONVERSATIONS))
@pytest.mark.parametrize("gen", [True, False])
def test_text_and_ids_match_transformers(family, conversation, gen):
    name, ours, theirs = family
    messages = CONVERSATIONS[conversation]
    a, b = _both(ours, theirs, messages, add_generation_prompt=gen)
    assert a == b, name
    if isinstance(a, str):
        ids = ours.apply_chat_template(messages, add_generation_prompt=gen, tokenize=True)
        assert ids == theirs.apply_chat_template(messages, add_generation_prompt=gen, tokenize=True,
                                                 return_dict=False)
        assert ours.decode(ids, skip_special_tokens=False) == a
    elif name.startswith("mistral-v0"):  # [INST] templates refuse a system message
        assert conversation == "system" and "alternate" in a[1]


@pytest.mark.parametrize("name", ["qwen2.5", "llama-3.1", "mistral-nemo"])
def test_tools_tool_calls_and_template_kwargs_match(name, bpe_tok, tmp_path):
    folder = _tokenizer(tmp_path, bpe_tok, name, (TEMPLATES / FAMILIES[name][0]).read_text())
    ours, theirs = Tokenizer.load(folder), transformers.AutoTokenizer.from_pretrained(folder)
    call = {"id": "call00001", "type": "function", "function": {"name": "get_weather",
                                                                "arguments": {"city": "Zürich"}}}
    messages = [{"role": "user", "content": "Weather in Zürich?"},
                {"role": "assistant", "content": None, "tool_calls": [call]},
                {"role": "tool", "content": '{"temp": 21}', "tool_call_id": "call00001", "name": "get_weather"},
                {"role": "assistant", "content": "21 °C."},
                {"role": "user", "content": "And tomorrow?"}]
    kwargs = [{}, {"date_string": "01 Jan 2025", "tools_in_user_message": False}]
    for kw in kwargs:
        a, b = _both(ours, theirs, messages, add_generation_prompt=True, tools=TOOLS, **kw)
        assert isinstance(a, str) and a == b
        assert "get_weather" in a and "Zürich" in a


def test_named_templates_pick_tool_use_like_transformers(bpe_tok, tmp_path):
    named = [{"name": "default", "template": "{% for m in messages %}{{ m['content'] }};{% endfor %}"},
             {"name": "tool_use", "template": "{{ tools | length }} tools: {{ tools[0]['function']['name'] }}"}]
    folder = _tokenizer(tmp_path, bpe_tok, "qwen2", named)
    assert isinstance(json.loads((folder / "tokenizer_config.json").read_text())["chat_template"], list)
    ours, theirs = Tokenizer.load(folder), transformers.AutoTokenizer.from_pretrained(folder)
    for kw in ({}, {"tools": TOOLS}, {"chat_template": "tool_use", "tools": TOOLS}):
        a, b = _both(ours, theirs, TURNS[:2], **kw)
        assert a == b and isinstance(a, str)
    assert ours.apply_chat_template(TURNS[:2], tools=TOOLS) == "1 tools: get_weather"


CHATML_GENERATION = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' }}"
    "{% if message['role'] == 'assistant' %}{% generation %}{{ message['content'] + '<|im_end|>' + '\n' }}"
    "{% endgeneration %}{% else %}{{ message['content'] + '<|im_end|>' + '\n' }}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
LLAMA3_GENERATION = (
    "{{ bos_token }}{% for message in messages %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' }}"
    "{% if message['role'] == 'assistant' %}{% generation %}{{ message['content'] | trim + '<|eot_id|>' }}"
    "{% endgeneration %}{% else %}{{ message['content'] | trim + '<|eot_id|>' }}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}")


@pytest.mark.parametrize(("name", "plain", "marked"), [
    ("qwen2", ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + "
               "'<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}"
               "{% endif %}"), CHATML_GENERATION),
    ("llama-3", (TEMPLATES / "llama-3-instruct.jinja").read_text(), LLAMA3_GENERATION),
])
def test_assistant_mask_matches_transformers_generation_mask(name, plain, marked, bpe_tok, tmp_path):
    """Our mask from `{% generation %}` blocks equals transformers'; our prefix-diff mask on the plain
    template (no generation blocks) equals transformers' mask on the marked one."""
    messages = [SYSTEM, *TURNS[:4]]
    marked_folder = _tokenizer(tmp_path / "marked", bpe_tok, name, marked)
    theirs = transformers.AutoTokenizer.from_pretrained(marked_folder).apply_chat_template(
        messages, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    for folder in (marked_folder, _tokenizer(tmp_path / "plain", bpe_tok, name, plain)):
        ours = Tokenizer.load(folder).apply_chat_template(messages, add_generation_prompt=False,
                                                          return_assistant_mask=True)
        assert ours["input_ids"] == theirs["input_ids"]
        assert ours["assistant_mask"] == theirs["assistant_masks"]
    assert sum(theirs["assistant_masks"]) > 4


def test_assistant_turns_of_a_rendered_conversation(bpe_tok, tmp_path):
    tok = Tokenizer.load(_tokenizer(tmp_path, bpe_tok, "llama-3", (TEMPLATES / "llama-3-instruct.jinja").read_text()))
    enc = tok.encode_chat(TURNS[:4])
    marked = [tok.decode([i for i, m in zip(enc.input_ids, enc.assistant_mask) if m], skip_special_tokens=False)]
    assert marked == ["cba<|eot_id|>2 a's\n\nDone.<|eot_id|>"]
    assert [enc.text[s:e] for s, e in enc.spans] == ["cba<|eot_id|>", "2 a's\n\nDone.<|eot_id|>"]
    completion = tok.encode_chat(TURNS[:4], completion_from=3)  # the last answer only
    assert [completion.text[s:e] for s, e in completion.spans] == ["2 a's\n\nDone.<|eot_id|>"]


def test_template_that_rewrites_earlier_turns_is_an_error(bpe_tok, tmp_path):
    """Mistral-Nemo puts the system message into the LAST user turn: prefixes do not prefix the whole."""
    tok = Tokenizer.load(_tokenizer(tmp_path, bpe_tok, "mistral-nemo",
                                    (TEMPLATES / "mistral-nemo-instruct.jinja").read_text()))
    assert tok.encode_chat(TURNS[:4]).spans  # without a system message the turns are found
    with pytest.raises(ValueError, match=r"cannot locate the assistant turns.*\{% generation %\}"):
        tok.encode_chat([SYSTEM, *TURNS[:4]])


@pytest.mark.parametrize("template", [
    "{{ ''.__class__.__mro__ }}", "{% set ns = namespace() %}{% set ns._x = 1 %}", "{{ messages.append(1) }}",
    "{{ cycler.__init__.__globals__ }}", "{{ (messages | first).update({'a': 1}) }}",
])
def test_sandbox_refuses_unsafe_templates(bpe_tok, template):
    tok = Tokenizer(bpe_tok.backend, bpe_tok.special_tokens, chat_template=template)
    with pytest.raises(ValueError, match="chat_template failed to render: .*(unsafe|underscore)"):
        tok.apply_chat_template(TURNS[:1])
    tok.chat_template = "{{ messages.__class__ }}{{ dict.__init__ }}"  # unsafe attributes read as undefined
    assert tok.apply_chat_template(TURNS[:1]) == ""


def test_template_globals(bpe_tok):
    tok = Tokenizer(bpe_tok.backend, bpe_tok.special_tokens, chat_template=(
        "{{ strftime_now('%Y') }}|{{ messages[0] | tojson }}|{{ dict(a=1) | tojson }}|{{ enable_thinking }}"))
    text = tok.apply_chat_template([{"role": "user", "content": "é"}], enable_thinking=False)
    assert text == f'{datetime.now().year}|{{"role": "user", "content": "é"}}|{{"a": 1}}|False'


def test_assistant_mask_with_the_default_template(bpe_tok):
    """A lingvis tokenizer without its own template: turns end with eos, found by prefix rendering."""
    enc = bpe_tok.encode_chat(TURNS[:4])
    assert [enc.text[s:e] for s, e in enc.spans] == ["cba<|endoftext|>\n", " 2 a's\n\nDone. <|endoftext|>\n"]
    picked = bpe_tok.decode([i for i, m in zip(enc.input_ids, enc.assistant_mask) if m], skip_special_tokens=False)
    assert picked == "cba<|endoftext|>\n 2 a's\n\nDone. <|endoftext|>\n"
    assert bpe_tok.apply_chat_template(TURNS[:4], add_generation_prompt=False, tokenize=True) == enc.input_ids
