"""Chat prompts: message validation and Jinja chat templates, rendered like transformers does.

Templates run in jinja2's ``ImmutableSandboxedEnvironment`` with the settings, filters and globals of
``transformers``' ``apply_chat_template`` (``trim_blocks``, ``lstrip_blocks``, loop controls, a ``tojson``
that keeps non-ASCII text, ``raise_exception``, ``strftime_now``, a restricted ``namespace`` and ``dict``,
and the ``{% generation %}`` block that marks assistant text). The variables passed are ``messages``,
``tools``, ``documents``, ``add_generation_prompt``, the special tokens as ``<role>_token`` and any extra
keyword arguments (e.g. ``date_string``, ``enable_thinking``), so a model's own template renders the same
text here as in ``AutoTokenizer.apply_chat_template``.

The default template works with any vocabulary::

    <|system|>\\n{content}{eos}\\n<|user|>\\n{content}{eos}\\n<|assistant|>\\n

Each turn ends with the eos token string, so a model trained on these prompts stops after its answer.
It is written into ``tokenizer_config.json`` on save, so HF's ``apply_chat_template`` gives the same text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime
from functools import lru_cache
from typing import Any

import jinja2
from jinja2.ext import Extension
from jinja2.sandbox import ImmutableSandboxedEnvironment

from lingvis.tokenizers.specials import CHAT_ROLES

DEFAULT_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>\n' + message['content'] + (eos_token or '') + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
)

# ChatML (Qwen, OpenHermes...): the template lingvis gives chat models it trains from scratch.
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
CHATML_MARKERS = ("<|im_start|>", "<|im_end|>")

# Roles a message may have: the three chat roles plus the tool/function roles real templates handle.
MESSAGE_ROLES = (*CHAT_ROLES, "tool", "ipython", "tool_results", "function", "developer")
_GENERATION_TAG = re.compile(r"\{%-?\s*generation\s*-?%\}")
_REASONING_FIELDS = ("reasoning_content", "thinking", "reasoning")


# ----- messages --------------------------------------------------------------------------------
def validate_messages(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Check each message is ``{"role": ..., "content": str | list of parts}``; errors name the index.

    Keys whose value is None are dropped (as transformers does), so an OpenAI message with
    ``content=None`` and ``tool_calls`` is accepted; any other message needs content.
    """
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence):
        raise TypeError(f"messages must be a list of dicts, got {type(messages).__name__}")
    checked = []
    for i, message in enumerate(messages):
        if not isinstance(message, Mapping):
            raise TypeError(f"messages[{i}] must be a dict, got {type(message).__name__}")
        message = {k: v for k, v in message.items() if v is not None}
        if "role" not in message:
            raise ValueError(f"messages[{i}] has no 'role' key (keys: {', '.join(map(str, message))})")
        if "content" not in message and "tool_calls" not in message:
            raise ValueError(f"messages[{i}] has no 'content' key (keys: {', '.join(map(str, message))})")
        role = message["role"]
        if role not in MESSAGE_ROLES:
            raise ValueError(f"messages[{i}] has role {role!r}; allowed roles are {', '.join(MESSAGE_ROLES)}")
        content = message.get("content", "")
        if not isinstance(content, (str, list)):
            raise TypeError(f"messages[{i}]['content'] must be a string or a list of parts, "
                            f"got {type(content).__name__}")
        reasoning = next((message[k] for k in _REASONING_FIELDS if k in message), None)
        if reasoning is not None:  # templates read `reasoning_content` (gpt-oss reads `thinking`)
            message = {"thinking": reasoning, **message, "reasoning_content": reasoning}
        checked.append(_plain(message))
    return checked


def _plain(value: Any) -> Any:
    """Rebuild a value from plain JSON types only, so the sandbox never sees user objects' methods;
    anything else becomes a placeholder naming its type (transformers does the same)."""
    if value is None or type(value) in (str, int, float, bool):
        return value
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, int):
        return int.__int__(value)
    if isinstance(value, float):
        return float.__float__(value)
    if isinstance(value, Mapping):
        return {_plain(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value] if isinstance(value, list) else tuple(_plain(v) for v in value)
    return f"<{type(value).__name__}>"


# ----- the Jinja environment -------------------------------------------------------------------
class GenerationTracker(Extension):
    """``{% generation %}...{% endgeneration %}``: renders its body and, while tracking, records the
    (start, end) character span of the body in the output."""

    tags = {"generation"}

    def __init__(self, environment: jinja2.Environment):
        super().__init__(environment)
        self._tracking: ContextVar[tuple[list[str], list[tuple[int, int]]] | None] = ContextVar(
            "lingvis_generation_tracking", default=None)
        environment.extend(track_generation=self.track)

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return jinja2.nodes.CallBlock(self.call_method("_support"), [], [], body).set_lineno(lineno)

    def _support(self, caller) -> str:
        text = caller()
        tracking = self._tracking.get()
        if tracking is not None:
            blocks, spans = tracking
            start = sum(len(b) for b in blocks)
            spans.append((start, start + len(text)))
        return text

    @contextmanager
    def track(self, blocks: list[str], spans: list[tuple[int, int]]) -> Iterator[None]:
        token = self._tracking.set((blocks, spans))
        try:
            yield
        finally:
            self._tracking.reset(token)


def _raise_exception(message: str) -> None:
    raise jinja2.exceptions.TemplateError(message)


def _tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False) -> str:
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)


class _TemplateDict:
    """``dict(...)`` inside templates, without attribute access to the real type."""

    def __call__(self, *args, **kwargs):
        return dict(*args, **kwargs)

    def fromkeys(self, *args, **kwargs):
        return dict.fromkeys(*args, **kwargs)


class _Namespace(jinja2.utils.Namespace):
    """``namespace(...)`` that refuses underscore names (no way to reach Python internals)."""

    def __init__(*args, **kwargs):
        self, args = args[0], args[1:]
        attrs = dict(*args, **kwargs)
        for name in attrs:
            _Namespace._check(name)
        jinja2.utils.Namespace.__init__(self, attrs)

    def __setitem__(self, name, value):
        _Namespace._check(name)
        jinja2.utils.Namespace.__setitem__(self, name, value)

    @staticmethod
    def _check(name):
        if isinstance(name, str) and name.startswith("_"):
            raise jinja2.exceptions.SecurityError(f"chat templates cannot set underscore attributes ({name!r})")


@lru_cache(maxsize=1)
def _environment() -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[GenerationTracker, "jinja2.ext.loopcontrols"]
    )
    env.filters["tojson"] = _tojson
    env.globals.update(raise_exception=_raise_exception, strftime_now=_strftime_now, dict=_TemplateDict(),
                       namespace=_Namespace)
    return env


@lru_cache(maxsize=32)
def _compile(template: str) -> jinja2.Template:
    try:
        return _environment().from_string(template)
    except jinja2.TemplateSyntaxError as err:
        raise ValueError(f"chat_template is not valid Jinja (line {err.lineno}): {err.message}") from None


# ----- templates -------------------------------------------------------------------------------
def named_templates(chat_template: str | list | dict | None) -> dict[str, str]:
    """Name -> template text for the HF list form ``[{"name", "template"}]`` or a dict; {} for a string."""
    if isinstance(chat_template, dict):
        return dict(chat_template)
    if isinstance(chat_template, list):
        out = {}
        for i, entry in enumerate(chat_template):
            if not (isinstance(entry, dict) and isinstance(entry.get("name"), str)
                    and isinstance(entry.get("template"), str)):
                raise ValueError(f"chat_template[{i}] must be {{'name': str, 'template': str}}, got {entry!r}")
            out[entry["name"]] = entry["template"]
        return out
    return {}


def select_template(chat_template: str | list | dict | None, name: str | None = None,
                    tools: Sequence | None = None) -> str:
    """The template text to render: ``name`` picks a named template (or is itself a template text);
    otherwise ``tool_use`` when tools are given and the tokenizer has one, else ``default``."""
    named = named_templates(chat_template)
    if name is not None:
        return named.get(name, name)
    if chat_template is None:
        return DEFAULT_CHAT_TEMPLATE
    if isinstance(chat_template, str):
        return chat_template
    if tools is not None and "tool_use" in named:
        return named["tool_use"]
    if "default" in named:
        return named["default"]
    raise ValueError(f"chat_template list has no 'default' entry (names: {', '.join(named)}); "
                     "pass chat_template=<name>")


def has_generation_blocks(template: str) -> bool:
    """Whether the template marks assistant text with ``{% generation %}`` blocks."""
    return bool(_GENERATION_TAG.search(template))


def render_chat(
    template: str,
    messages: Sequence[Mapping[str, Any]],
    add_generation_prompt: bool,
    special_tokens: Mapping[str, str],
    *,
    tools: Sequence | None = None,
    documents: Sequence | None = None,
    **kwargs: Any,
) -> str:
    """Render validated messages through a Jinja chat template; special tokens are ``<role>_token``."""
    return render_chat_spans(template, messages, add_generation_prompt, special_tokens, tools=tools,
                             documents=documents, track=False, **kwargs)[0]


def render_chat_spans(
    template: str,
    messages: Sequence[Mapping[str, Any]],
    add_generation_prompt: bool,
    special_tokens: Mapping[str, str],
    *,
    tools: Sequence | None = None,
    documents: Sequence | None = None,
    track: bool = True,
    **kwargs: Any,
) -> tuple[str, list[tuple[int, int]]]:
    """Rendered text and the character spans of its ``{% generation %}`` blocks (empty without any)."""
    checked = validate_messages(messages)
    if tools is not None:
        tools = [_tool_schema(t, i) for i, t in enumerate(tools)]
    if documents is not None:
        for i, doc in enumerate(documents):
            if not isinstance(doc, Mapping):
                raise TypeError(f"documents[{i}] must be a dict with 'title' and 'text', got {type(doc).__name__}")
    context = {f"{role}_token": token for role, token in special_tokens.items()}
    context.update(_plain(kwargs))
    compiled = _compile(template)
    variables = dict(messages=checked, tools=_plain(tools), documents=_plain(documents),
                     add_generation_prompt=add_generation_prompt, **context)
    try:
        if not track:
            return compiled.render(**variables), []
        blocks: list[str] = []
        spans: list[tuple[int, int]] = []
        with compiled.environment.track_generation(blocks, spans):
            for block in compiled.generate(**variables):
                blocks.append(block)
        return "".join(blocks), spans
    except jinja2.TemplateError as err:
        raise ValueError(f"chat_template failed to render: {err}") from None


def _tool_schema(tool: Any, index: int) -> dict:
    if isinstance(tool, Mapping):
        return dict(tool)
    if callable(tool):
        from lingvis._optional import require

        utils = require("transformers.utils", "tools given as Python functions (JSON schema from type hints)")
        return utils.get_json_schema(tool)
    raise TypeError(f"tools[{index}] must be a JSON schema dict or a function, got {type(tool).__name__}")
