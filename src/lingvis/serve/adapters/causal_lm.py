"""Causal LMs (GPT and friends): completions and chat through the continuous-batching engine."""
from __future__ import annotations

from collections.abc import Sequence

from ...generate import SamplingConfig
from ...models.causal_lm import CausalLM
from ..batching import Engine
from ..errors import APIError, bad_request
from ..runs import Run
from ..schemas import ChatCompletionRequest, ChatMessage, CompletionRequest, SamplingFields
from ..sequences import SeqSpec
from .base import CHAT, COMPLETIONS, TOKENIZE, Adapter
from .registry import register_adapter


@register_adapter("causal_lm", lambda model: isinstance(model, CausalLM))
class CausalLMAdapter(Adapter):
    capabilities = frozenset({COMPLETIONS, CHAT, TOKENIZE})

    def __init__(self, name, model, tokenizer, path, config):
        super().__init__(name, model, tokenizer, path, config)
        self.context_length = int(model.context_length)
        self.vocab_size = tokenizer.vocab_size
        self.engine = Engine(model, config.max_batch, config.max_queue, name)

    def start(self) -> None:
        self.engine.start()

    def close(self) -> None:
        self.engine.close()

    def describe(self) -> dict:
        return {**super().describe(), "context_length": self.context_length, "max_model_len": self.context_length}

    def stats(self) -> dict:
        return self.engine.stats()

    # ----- prompts --------------------------------------------------------------------------
    def encode(self, text: str, param: str) -> list[int]:
        ids = self.tokenizer.encode(text)
        if not ids:
            raise bad_request(f"{param} encodes to zero tokens", param)
        return ids

    def prompts(self, prompt) -> list[list[int]]:
        """The request's `prompt` (text, texts, token ids, or lists of token ids) as token-id lists."""
        if isinstance(prompt, str):
            return [self.encode(prompt, "prompt")]
        if not prompt:
            raise bad_request("prompt is an empty list", "prompt")
        if isinstance(prompt[0], int):
            prompt = [prompt]
        out = []
        for i, p in enumerate(prompt):
            ids = self.encode(p, f"prompt[{i}]") if isinstance(p, str) else list(p)
            if not ids:
                raise bad_request(f"prompt[{i}] is empty", "prompt")
            bad = [t for t in ids if not 0 <= t < self.vocab_size]
            if bad:
                raise bad_request(f"prompt[{i}] holds token id {bad[0]}, outside the vocabulary of "
                                  f"{self.vocab_size} tokens", "prompt")
            out.append(ids)
        return out

    def chat_prompt(self, messages: Sequence[ChatMessage]) -> list[int]:
        plain = []
        for i, m in enumerate(messages):
            if isinstance(m.content, list):
                if any(p.type == "image_url" for p in m.content):
                    raise bad_request(f"model {self.name!r} is a text-only language model; messages[{i}] "
                                      "holds an image", f"messages[{i}].content", "unsupported_content")
                content = "".join(p.text for p in m.content)
            else:
                content = m.content or ""
            role = "system" if m.role == "developer" else m.role
            plain.append({"role": role, "content": content})
        try:
            text = self.tokenizer.apply_chat_template(plain, add_generation_prompt=True)
        except (ValueError, TypeError) as e:
            raise bad_request(f"cannot apply the chat template: {e}", "messages") from e
        return self.encode(text, "messages")

    # ----- sampling -------------------------------------------------------------------------
    def check_context(self, prompt_len: int, max_tokens: int, param: str = "max_tokens") -> None:
        if prompt_len + max_tokens > self.context_length:
            raise APIError(400, f"This model's maximum context length is {self.context_length} tokens. "
                           f"However, you requested {prompt_len + max_tokens} tokens ({prompt_len} in the "
                           f"prompt, {max_tokens} for the completion). Please reduce the prompt or {param}.",
                           "invalid_request_error", param, "context_length_exceeded")

    def sampling(self, req: SamplingFields, max_tokens: int, seed_offset: int) -> SamplingConfig:
        if req.presence_penalty or req.frequency_penalty or req.logit_bias:
            field = "presence_penalty" if req.presence_penalty else \
                "frequency_penalty" if req.frequency_penalty else "logit_bias"
            raise bad_request(f"{field} is not supported by lingvis; use repetition_penalty", field,
                              "unsupported_parameter")
        eos = self.tokenizer.eos_id
        return SamplingConfig(
            max_new_tokens=max_tokens, temperature=req.temperature,
            top_k=req.top_k if req.top_k and req.top_k > 0 else None,
            top_p=req.top_p if req.top_p < 1.0 else None, repetition_penalty=req.repetition_penalty,
            eos_ids=[] if req.ignore_eos or eos is None else [eos],
            seed=None if req.seed is None else req.seed + seed_offset)

    def _check_n(self, n: int) -> None:
        if n > self.config.max_n:
            raise bad_request(f"n must be <= {self.config.max_n}, got {n}", "n")

    def _check_top(self, k: int | None, param: str) -> None:
        if k is not None and k > self.config.max_top_logprobs:
            raise bad_request(f"{param} must be <= {self.config.max_top_logprobs}, got {k}", param)

    def completion_run(self, req: CompletionRequest) -> tuple[Run, list[list[int]]]:
        self._check_n(req.n)
        self._check_top(req.logprobs, "logprobs")
        if req.best_of is not None and req.best_of != req.n:
            raise bad_request("best_of other than n is not supported", "best_of", "unsupported_parameter")
        if req.suffix:
            raise bad_request("suffix (insertion) is not supported", "suffix", "unsupported_parameter")
        prompts = self.prompts(req.prompt)
        max_tokens = 16 if req.max_tokens is None else req.max_tokens
        for ids in prompts:
            self.check_context(len(ids), max_tokens)
        specs = [SeqSpec(ids, self.sampling(req, max_tokens, j), req.logprobs,
                         prompt_logprobs=req.echo and req.logprobs is not None)
                 for ids in prompts for j in range(req.n)]
        return self._submit(specs), prompts

    def chat_run(self, req: ChatCompletionRequest) -> tuple[Run, list[int]]:
        self._check_n(req.n)
        self._check_top(req.top_logprobs, "top_logprobs")
        ids = self.chat_prompt(req.messages)
        limit = req.max_completion_tokens if req.max_completion_tokens is not None else req.max_tokens
        param = "max_completion_tokens" if req.max_completion_tokens is not None else "max_tokens"
        max_tokens = limit if limit is not None else max(self.context_length - len(ids), 0)
        self.check_context(len(ids), max_tokens, param)
        k = (req.top_logprobs or 0) if req.logprobs else None
        specs = [SeqSpec(ids, self.sampling(req, max_tokens, j), k) for j in range(req.n)]
        return self._submit(specs), ids

    def _submit(self, specs: list[SeqSpec]) -> Run:
        try:
            return Run(self.engine, specs)
        except ValueError as e:
            raise bad_request(str(e)) from e
