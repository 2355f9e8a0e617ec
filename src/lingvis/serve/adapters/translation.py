"""Encoder-decoder models (lingvis seq2seq runs, Hugging Face Marian folders): /v1/completions translates the
prompt, /v1/chat/completions the last user message, through the dynamic-batching `Seq2SeqEngine`.

Decoding is greedy unless the request sets `temperature` > 0 (sampling) or `num_beams` > 1 (beam search, with
`length_penalty`, `early_stopping` and `n` <= num_beams best hypotheses). Models that translate into several
languages (a lingvis `--direction both` run, a multilingual Marian model with `>>xx<<` tokens) take the target
from the `target_lang` request field; the tag goes in front of the source as in `lingvis translate`.
"""
from __future__ import annotations

from pathlib import Path

from ...api import resolve_checkpoint
from ...generate import SamplingConfig
from ...recipes.translate import prepare_sources, read_meta
from ...tokenizers.loading import read_config
from ..errors import APIError, bad_request
from ..runs import Run
from ..schemas import ChatCompletionRequest, CompletionRequest, SamplingFields
from ..seq2seq_batching import BeamSettings, Seq2SeqEngine, TranslationSpec
from .base import CHAT, COMPLETIONS, TOKENIZE
from .registry import register_adapter
from .text import TextAdapter

SAMPLING_FIELDS = {"temperature": 0.0, "top_p": 1.0, "top_k": None, "repetition_penalty": 1.0}


def target_languages(meta: dict, tokenizer, path: Path) -> tuple[list[str], str | None]:
    """(languages chosen by a source tag, or [] for a one-target model; that one target when known)."""
    tags = sorted(meta.get("target_tags") or {})
    if tags:
        return tags, None
    codes = sorted(t[2:-2] for t in tokenizer.get_vocab() if len(t) > 4 and t.startswith(">>") and t.endswith("<<"))
    if codes:  # multilingual Marian: the tokenizer's language-code tokens
        return codes, None
    fixed = meta.get("target_lang")
    if fixed is None:  # Marian folders name it in tokenizer_config.json
        try:
            fixed = read_config(resolve_checkpoint(path)).get("target_lang")
        except (ValueError, OSError):
            fixed = None
    return [], fixed


def _is_seq2seq(model) -> bool:
    return getattr(model, "family", None) == "seq2seq" and hasattr(model, "decoder_view")


@register_adapter("translation", _is_seq2seq)
class TranslationAdapter(TextAdapter):
    capabilities = frozenset({COMPLETIONS, CHAT, TOKENIZE})

    def __init__(self, name, model, tokenizer, path, config):
        super().__init__(name, model, tokenizer, path, config)
        self.context_length = int(model.context_length)
        self.vocab_size = min(self.vocab_size, model.config.vocab_size)
        self.meta = read_meta(path)
        self.targets, self.fixed_target = target_languages(self.meta, tokenizer, Path(path))
        self.engine = Seq2SeqEngine(model, config.max_batch, config.max_queue, name)

    def describe(self) -> dict:
        return {**super().describe(), "context_length": self.context_length, "max_model_len": self.context_length,
                "target_languages": self.targets or ([self.fixed_target] if self.fixed_target else []),
                "target_lang_required": len(self.targets) > 1}

    # ----- sources --------------------------------------------------------------------------
    def target(self, asked: str | None) -> str | None:
        """The target language of a request; a 400 naming `target_lang` when it cannot be honoured."""
        if self.targets:
            if asked is None and len(self.targets) == 1:
                return self.targets[0]
            if asked not in self.targets:
                what = "choose one with" if asked is None else f"unknown target language {asked!r} in"
                raise bad_request(f"model {self.name!r} translates into {', '.join(self.targets)}: {what} the "
                                  "target_lang field", "target_lang")
            return asked
        if asked is not None and asked != self.fixed_target:
            if self.fixed_target is None:
                raise bad_request(f"model {self.name!r} does not say which language it translates into, so "
                                  "target_lang cannot be checked; leave it out", "target_lang", "unsupported_parameter")
            raise bad_request(f"model {self.name!r} translates into {self.fixed_target!r}, not {asked!r}",
                              "target_lang")
        return None

    def source_ids(self, text: str, to: str | None, param: str) -> list[int]:
        """`text` with the target tag the model expects, encoded with its special tokens (as in training)."""
        if not text.strip():
            raise bad_request(f"{param} is empty: nothing to translate", param)
        source = prepare_sources([text], to, self.meta, self.tokenizer)[0]
        ids = self.tokenizer.encode(source, add_special_tokens=True)
        if len(ids) > self.context_length:
            raise APIError(400, f"{param} has {len(ids)} tokens; this model reads at most {self.context_length}",
                           "invalid_request_error", param, "context_length_exceeded")
        return ids

    def echo_texts(self, req, prompts: list[list[int]]) -> list[str]:
        return [p if isinstance(p, str) else self.tokenizer.decode(ids)
                for (_, p), ids in zip(self.prompt_list(req.prompt), prompts)]

    # ----- decoding -------------------------------------------------------------------------
    def max_tokens(self, asked: int | None, param: str) -> int:
        """The request's limit, or (not given) as many as the decoder holds: translations end by themselves."""
        limit = self.context_length - 1
        if asked is None:
            return limit
        if asked > limit:
            raise APIError(400, f"{param} is {asked}, but this model writes at most {limit} tokens",
                           "invalid_request_error", param, "context_length_exceeded")
        return asked

    def decoding(self, req: SamplingFields, max_tokens: int, n: int) -> tuple[SamplingConfig, BeamSettings | None]:
        """Greedy by default (a given temperature > 0 samples), or beam search with num_beams > 1."""
        if req.ignore_eos:
            raise bad_request("ignore_eos is not supported by translation models", "ignore_eos",
                              "unsupported_parameter")
        given = req.model_fields_set
        temperature = req.temperature if "temperature" in given else 0.0
        beams = req.num_beams or 1
        if beams > 1:
            for name, neutral in SAMPLING_FIELDS.items():
                value = temperature if name == "temperature" else getattr(req, name)
                if value != neutral and not (name == "top_k" and value in (-1, 0)):
                    raise bad_request(f"beam search does not sample: drop {name} or use num_beams 1", name,
                                      "unsupported_parameter")
            if n > beams:
                raise bad_request(f"n ({n}) must be <= num_beams ({beams}): beam search returns the n best "
                                  "hypotheses", "n")
            beam = BeamSettings(beams, 1.0 if req.length_penalty is None else req.length_penalty,
                                False if req.early_stopping is None else req.early_stopping)
            return SamplingConfig(max_new_tokens=max_tokens, eos_ids=[self.model.config.eos_id]), beam
        self.reject_set(req, ("length_penalty", "early_stopping"), "it applies to beam search: set num_beams > 1")
        cfg = SamplingConfig(max_new_tokens=max_tokens, temperature=temperature,
                             top_k=req.top_k if req.top_k and req.top_k > 0 else None,
                             top_p=req.top_p if req.top_p < 1.0 else None, repetition_penalty=req.repetition_penalty,
                             eos_ids=[self.model.config.eos_id], seed=req.seed)
        return cfg, None

    def _specs(self, sources: list[list[int]], req: SamplingFields, max_tokens: int) -> list[TranslationSpec]:
        cfg, beam = self.decoding(req, max_tokens, req.n)
        return [TranslationSpec(ids, cfg, beam, group=i) for i, ids in enumerate(sources) for _ in range(req.n)]

    def completion_run(self, req: CompletionRequest) -> tuple[Run, list[list[int]]]:
        self.check_n(req.n)
        if req.logprobs is not None:
            raise bad_request("logprobs are not supported by translation models", "logprobs", "unsupported_parameter")
        if req.best_of is not None and req.best_of != req.n:
            raise bad_request("best_of other than n is not supported", "best_of", "unsupported_parameter")
        if req.suffix:
            raise bad_request("suffix (insertion) is not supported", "suffix", "unsupported_parameter")
        to = self.target(req.target_lang)
        prompts = []
        for param, p in self.prompt_list(req.prompt):
            if isinstance(p, str):
                prompts.append(self.source_ids(p, to, param))
            elif req.target_lang is not None:
                raise bad_request("token-id prompts are used as given (target tag included): leave target_lang "
                                  "out", "target_lang")
            elif len(p) > self.context_length:
                raise APIError(400, f"{param} has {len(p)} tokens; this model reads at most {self.context_length}",
                               "invalid_request_error", param, "context_length_exceeded")
            else:
                prompts.append(p)
        max_tokens = self.max_tokens(req.max_tokens if "max_tokens" in req.model_fields_set else None, "max_tokens")
        return self.submit(self._specs(prompts, req, max_tokens)), prompts

    def chat_run(self, req: ChatCompletionRequest) -> tuple[Run, list[int]]:
        """Translate the last user message (earlier turns and system messages are not read)."""
        self.check_n(req.n)
        if req.logprobs or req.top_logprobs is not None:
            field = "logprobs" if req.logprobs else "top_logprobs"
            raise bad_request("logprobs are not supported by translation models", field, "unsupported_parameter")
        users = [(i, m) for i, m in enumerate(req.messages) if m.role == "user"]
        if not users:
            raise bad_request("no user message to translate", "messages")
        i, last = users[-1]
        ids = self.source_ids(self.message_text(last, i), self.target(req.target_lang), f"messages[{i}].content")
        param = "max_completion_tokens" if req.max_completion_tokens is not None else "max_tokens"
        limit = req.max_completion_tokens if req.max_completion_tokens is not None else req.max_tokens
        return self.submit(self._specs([ids], req, self.max_tokens(limit, param))), ids
