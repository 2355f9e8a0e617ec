"""What the text-generating kinds (causal LMs, translation models) share: request limits, prompt lists,
message text, and submitting sequences to their engine as a `Run`."""
from __future__ import annotations

from collections.abc import Sequence

from ..errors import bad_request
from ..runs import Run
from ..schemas import ChatMessage, SamplingFields
from .base import Adapter

# extension fields only encoder-decoder models implement (see schemas.SamplingFields)
BEAM_FIELDS = ("num_beams", "length_penalty", "early_stopping")
TRANSLATION_FIELDS = (*BEAM_FIELDS, "target_lang")


def reject_set(req: SamplingFields, names: Sequence[str], model: str, why: str) -> None:
    """A 400 naming the first of the extension fields `names` that the request sets (num_beams 1 is unset)."""
    for name in names:
        value = getattr(req, name)
        if value is not None and not (name == "num_beams" and value == 1):
            raise bad_request(f"{name} is not supported by model {model!r} ({why})", name, "unsupported_parameter")


class TextAdapter(Adapter):
    """Subclasses set `context_length`, create `self.engine` (batching.Engine or a compatible one) and
    implement `completion_run(req)` / `chat_run(req)`."""

    context_length: int

    def __init__(self, name, model, tokenizer, path, config):
        super().__init__(name, model, tokenizer, path, config)
        self.vocab_size = tokenizer.vocab_size
        self.engine = None

    def start(self) -> None:
        self.engine.start()

    def close(self) -> None:
        self.engine.close()

    def stats(self) -> dict:
        return self.engine.stats()

    def queue_depth(self) -> int:
        return self.engine.stats()["waiting"]

    def batch_sizes(self) -> dict[int, int]:
        return dict(self.engine.batch_sizes)

    # ----- request checks -------------------------------------------------------------------
    def check_n(self, n: int) -> None:
        if n > self.config.max_n:
            raise bad_request(f"n must be <= {self.config.max_n}, got {n}", "n")

    def check_top(self, k: int | None, param: str) -> None:
        if k is not None and k > self.config.max_top_logprobs:
            raise bad_request(f"{param} must be <= {self.config.max_top_logprobs}, got {k}", param)

    def reject_set(self, req: SamplingFields, names: Sequence[str], why: str) -> None:
        reject_set(req, names, self.name, why)

    # ----- prompts --------------------------------------------------------------------------
    def prompt_list(self, prompt) -> list[tuple[str, str | list[int]]]:
        """The request's `prompt` (text, texts, token ids, or lists of token ids) as (param, text or ids)
        pairs; token ids are checked against the vocabulary."""
        if isinstance(prompt, str):
            return [("prompt", prompt)]
        if not prompt:
            raise bad_request("prompt is an empty list", "prompt")
        if isinstance(prompt[0], int):
            prompt = [prompt]
        out: list[tuple[str, str | list[int]]] = []
        for i, p in enumerate(prompt):
            if isinstance(p, str):
                out.append((f"prompt[{i}]", p))
                continue
            if not p:
                raise bad_request(f"prompt[{i}] is empty", "prompt")
            bad = [t for t in p if not 0 <= t < self.vocab_size]
            if bad:
                raise bad_request(f"prompt[{i}] holds token id {bad[0]}, outside the vocabulary of "
                                  f"{self.vocab_size} tokens", "prompt")
            out.append((f"prompt[{i}]", list(p)))
        return out

    def echo_texts(self, req, prompts: list[list[int]]) -> list[str]:
        """The prompt of each choice as `echo` shows it."""
        return [self.tokenizer.decode(p) for p in prompts]

    def message_text(self, m: ChatMessage, i: int) -> str:
        """A message's text; images are refused (text-only models)."""
        if isinstance(m.content, list):
            if any(p.type in ("image_url", "video_url") for p in m.content):
                raise bad_request(f"model {self.name!r} is a text-only model; messages[{i}] holds an image or video",
                                  f"messages[{i}].content", "unsupported_content")
            return "".join(p.text for p in m.content)
        return m.content or ""

    def submit(self, specs: list) -> Run:
        try:
            return Run(self.engine, specs)
        except ValueError as e:
            raise bad_request(str(e)) from e
