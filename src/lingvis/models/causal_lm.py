"""What every causal decoder shares: `generate` on token ids."""
from __future__ import annotations

import torch
from torch import nn

from ..nn.eval_mode import eval_mode


class CausalLM(nn.Module):
    """Subclasses implement `forward(input_ids, attention_mask, position_ids, cache, last_only)`,
    `new_cache(batch, max_len)` and `context_length`."""

    family = "causal_lm"
    row_independent = True  # batch rows never interact: decoding may drop or regroup rows (generate.py)

    def generate(self, input_ids: torch.Tensor, max_new_tokens: int = 32, temperature: float = 0.0,
                 top_k: int | None = None, top_p: float | None = None, repetition_penalty: float = 1.0,
                 eos_id: int | list[int] | None = None, attention_mask: torch.Tensor | None = None,
                 seed: int | None = None, use_cache: bool = True,
                 inputs_embeds: torch.Tensor | None = None, speculative=None,
                 num_draft_tokens: int | None = None, compile: bool = False) -> torch.Tensor:
        """Return (B, T + max_new_tokens) ids (fewer columns if every row ended with `eos_id`). With
        `inputs_embeds` (B, T, C) the prompt is read from those embeddings; `input_ids` may then be None
        (placeholder ids are returned in the prompt columns). `speculative` ("prompt-lookup" or a smaller
        draft model with the same tokenizer) decodes one prompt (B = 1) speculatively, `num_draft_tokens`
        checked per forward pass (lingvis/speculative.py): greedy output as plain greedy decoding's, sampled
        output distributed as plain sampling's. `compile=True` runs the decode steps through a `torch.compile`d
        static-cache step (lingvis/decode_step.py; compiled once per model and cache size)."""
        from ..generate import generate_ids

        eos = [] if eos_id is None else ([eos_id] if isinstance(eos_id, int) else list(eos_id))
        if speculative is not None:
            from ..speculative import generate_speculative_ids

            padded = attention_mask is not None and not bool(attention_mask.all())
            if input_ids is None or inputs_embeds is not None or not use_cache or padded:
                raise ValueError("speculative decoding needs token ids, the KV cache and no padding")
            with torch.no_grad(), eval_mode(self):
                return generate_speculative_ids(
                    self, input_ids, speculative, num_draft_tokens, max_new_tokens=max_new_tokens,
                    temperature=temperature, top_k=top_k, top_p=top_p, repetition_penalty=repetition_penalty,
                    eos_ids=eos, seed=seed)
        if input_ids is None:
            if inputs_embeds is None:
                raise ValueError("pass input_ids or inputs_embeds")
            input_ids = torch.zeros(inputs_embeds.shape[:2], dtype=torch.long, device=inputs_embeds.device)
        with eval_mode(self):
            return generate_ids(self, input_ids, attention_mask, use_cache, inputs_embeds=inputs_embeds,
                                max_new_tokens=max_new_tokens,
                                temperature=temperature, top_k=top_k, top_p=top_p,
                                repetition_penalty=repetition_penalty, eos_ids=eos, seed=seed, compile=compile)
