"""Causal LMs (GPT and friends): completions and chat through the continuous-batching engine."""
from __future__ import annotations

from collections.abc import Sequence

from ...generate import SamplingConfig
from ...models.causal_lm import CausalLM
from ...text_generation import check_vocab
from ..batching import Engine
from ..errors import APIError, bad_request
from ..runs import Run
from ..schemas import ChatCompletionRequest, ChatMessage, CompletionRequest, SamplingFields
from ..sequences import SeqSpec
from ..speculation import Speculation
from .base import CHAT, COMPLETIONS, TOKENIZE
from .registry import register_adapter
from .text import TRANSLATION_FIELDS, TextAdapter


def speculation(model, tokenizer, config) -> Speculation | None:
    """The server's `--speculative` / `--draft` setting for this model (None: plain batched decoding)."""
    if config.draft is not None:
        from ...api import load

        draft = load(config.draft).to(next(model.parameters()).device).eval()
        check_vocab(draft, tokenizer)
        return Speculation(draft, config.draft_tokens)
    if config.speculative:
        return Speculation(config.speculative, config.draft_tokens)
    return None


@register_adapter("causal_lm", lambda m: isinstance(m, CausalLM) and not getattr(m, "reads_images", False))
class CausalLMAdapter(TextAdapter):
    capabilities = frozenset({COMPLETIONS, CHAT, TOKENIZE})

    def __init__(self, name, model, tokenizer, path, config):
        check_vocab(model, tokenizer)
        super().__init__(name, model, tokenizer, path, config)
        self.context_length = int(model.context_length)
        self.engine = Engine(model, config.max_batch, config.max_queue, name, speculation(model, tokenizer, config))

    def describe(self) -> dict:
        return {**super().describe(), "context_length": self.context_length, "max_model_len": self.context_length}

    # ----- prompts --------------------------------------------------------------------------
    def encode(self, text: str, param: str) -> list[int]:
        ids = self.tokenizer.encode(text)
        if not ids:
            raise bad_request(f"{param} encodes to zero tokens", param)
        return ids

    def prompts(self, prompt) -> list[list[int]]:
        """The request's `prompt` (text, texts, token ids, or lists of token ids) as token-id lists."""
        return [self.encode(p, param) if isinstance(p, str) else p for param, p in self.prompt_list(prompt)]

    def chat_prompt(self, messages: Sequence[ChatMessage]) -> list[int]:
        plain = [{"role": "system" if m.role == "developer" else m.role, "content": self.message_text(m, i)}
                 for i, m in enumerate(messages)]
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
        self.reject_set(req, TRANSLATION_FIELDS, "a causal LM samples; beam search and target languages are "
                        "for translation models")
        eos = self.tokenizer.eos_id
        return SamplingConfig(
            max_new_tokens=max_tokens, temperature=req.temperature,
            top_k=req.top_k if req.top_k and req.top_k > 0 else None,
            top_p=req.top_p if req.top_p < 1.0 else None, repetition_penalty=req.repetition_penalty,
            eos_ids=[] if req.ignore_eos or eos is None else [eos],
            seed=None if req.seed is None else req.seed + seed_offset)

    def completion_run(self, req: CompletionRequest) -> tuple[Run, list[list[int]]]:
        self.check_n(req.n)
        self.check_top(req.logprobs, "logprobs")
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
        return self.submit(specs), prompts

    def chat_run(self, req: ChatCompletionRequest) -> tuple[Run, list[int]]:
        self.check_n(req.n)
        self.check_top(req.top_logprobs, "top_logprobs")
        ids = self.chat_prompt(req.messages)
        limit = req.max_completion_tokens if req.max_completion_tokens is not None else req.max_tokens
        param = "max_completion_tokens" if req.max_completion_tokens is not None else "max_tokens"
        max_tokens = limit if limit is not None else max(self.context_length - len(ids), 0)
        self.check_context(len(ids), max_tokens, param)
        k = (req.top_logprobs or 0) if req.logprobs else None
        specs = [SeqSpec(ids, self.sampling(req, max_tokens, j), k) for j in range(req.n)]
        return self.submit(specs), ids
