"""Chat prompts: message validation and Jinja chat templates (HF ``chat_template`` compatible).

The default template works with any vocabulary::

    <|system|>\\n{content}{eos}\\n<|user|>\\n{content}{eos}\\n<|assistant|>\\n

Each turn ends with the eos token string, so a model trained on these prompts stops after its answer.
It is written into ``tokenizer_config.json`` on save, so HF's ``apply_chat_template`` gives the same text.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Mapping, Sequence

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from lingvis.tokenizers.specials import CHAT_ROLES

DEFAULT_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>\n' + message['content'] + (eos_token or '') + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
)


def validate_messages(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
    """Check each message is ``{"role": system|user|assistant, "content": str}``; errors name the index."""
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence):
        raise TypeError(f"messages must be a list of dicts, got {type(messages).__name__}")
    checked = []
    for i, message in enumerate(messages):
        if not isinstance(message, Mapping):
            raise TypeError(f"messages[{i}] must be a dict, got {type(message).__name__}")
        for key in ("role", "content"):
            if key not in message:
                raise ValueError(f"messages[{i}] has no {key!r} key (keys: {', '.join(map(str, message))})")
        role, content = message["role"], message["content"]
        if role not in CHAT_ROLES:
            raise ValueError(f"messages[{i}] has role {role!r}; allowed roles are {', '.join(CHAT_ROLES)}")
        if not isinstance(content, str):
            raise TypeError(f"messages[{i}]['content'] must be a string, got {type(content).__name__}")
        checked.append({**message, "role": role, "content": content})
    return checked


def _raise_exception(message: str) -> None:
    raise jinja2.exceptions.TemplateError(message)


@lru_cache(maxsize=16)
def _compile(template: str) -> jinja2.Template:
    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"]
    )
    env.globals["raise_exception"] = _raise_exception
    try:
        return env.from_string(template)
    except jinja2.TemplateSyntaxError as err:
        raise ValueError(f"chat_template is not valid Jinja (line {err.lineno}): {err.message}") from None


def select_template(chat_template: str | list | None) -> str:
    """Pick the template text: HF allows a list of ``{"name", "template"}``; we use ``default``."""
    if chat_template is None:
        return DEFAULT_CHAT_TEMPLATE
    if isinstance(chat_template, str):
        return chat_template
    named = {t.get("name"): t.get("template") for t in chat_template if isinstance(t, dict)}
    if isinstance(named.get("default"), str):
        return named["default"]
    raise ValueError(f"chat_template list has no 'default' entry (names: {', '.join(map(str, named))})")


def render_chat(
    template: str,
    messages: Sequence[Mapping[str, Any]],
    add_generation_prompt: bool,
    special_tokens: Mapping[str, str],
) -> str:
    """Render validated messages through a Jinja chat template; special tokens are ``<role>_token``."""
    checked = validate_messages(messages)
    context = {f"{role}_token": token for role, token in special_tokens.items()}
    try:
        return _compile(template).render(
            messages=checked, add_generation_prompt=add_generation_prompt, **context
        )
    except jinja2.TemplateError as err:
        raise ValueError(f"chat_template failed to render: {err}") from None
