"""Text in, text out: tokenise prompts, decode ids (batched or streamed), honour stop strings."""
from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch

from .data.llava_inputs import image_list, prompt_inputs
from .generate import SamplingConfig, pad_left, stream_ids
from .speculative import stream_speculative


def _stop_at(text: str, stops: Sequence[str]) -> int | None:
    hits = [text.find(s) for s in stops if s and s in text]
    return min(hits) if hits else None


def _held_back(text: str, stops: Sequence[str]) -> int:
    """Length of the longest tail of `text` that could still grow into a stop string."""
    best = 0
    for s in stops:
        for n in range(min(len(s) - 1, len(text)), 0, -1):
            if s.startswith(text[-n:]):
                best = max(best, n)
                break
    return best


def stream_text(model, tokenizer, prompt: str, cfg: SamplingConfig, stop: Sequence[str] = (),
                device: torch.device | str | None = None, speculative=None,
                num_draft_tokens: int | None = None, images=None) -> Iterator[str]:
    """Yield text pieces as they are generated; stops at eos, `max_new_tokens` or a stop string.
    `speculative` ("prompt-lookup" or a draft model) decodes speculatively (lingvis/speculative.py).
    `images` (image-chat models) fill the prompt's `<image>` placeholders, one per image, in order."""
    (ids,), pixels = prompt_inputs(model, tokenizer, [prompt], [image_list(images)])
    if speculative is not None and pixels is not None:
        raise ValueError("speculative decoding does not take images")
    if not ids:
        raise ValueError("the prompt encodes to zero tokens")
    device = device or next(model.parameters()).device
    x = torch.tensor([ids], dtype=torch.long, device=device)
    embeds = model.prompt_embeds(x, pixels) if pixels is not None else None  # image features: once, here
    out: list[int] = []
    sent = 0
    steps = stream_ids(model, x, cfg, inputs_embeds=embeds) if speculative is None else \
        stream_speculative(model, x, cfg, speculative, num_draft_tokens)
    for nxt in steps:
        tok = int(nxt[0])
        if tok in cfg.eos_ids:
            break
        out.append(tok)
        text = tokenizer.decode(out)
        if text.endswith("\ufffd"):  # an incomplete UTF-8 sequence: wait for the next byte
            continue
        cut = _stop_at(text, stop)
        if cut is not None:
            if cut > sent:
                yield text[sent:cut]
            return
        safe = len(text) - _held_back(text, stop)
        if safe > sent:
            yield text[sent:safe]
            sent = safe
    text = tokenizer.decode(out)
    cut = _stop_at(text, stop)  # pieces held back for an incomplete UTF-8 sequence may hold a stop string
    end = len(text) if cut is None else cut
    if end > sent:
        yield text[sent:end]


def check_vocab(model, tokenizer) -> None:
    """A tokenizer with more ids than the model has embedding rows is an error naming both sizes (a model paired
    with the wrong tokenizer would otherwise fail on an out-of-range id, or silently read the wrong rows)."""
    cfg = getattr(getattr(model, "llm", model), "config", None)  # image-chat models keep their LM in .llm
    rows = getattr(cfg, "vocab_size", None)
    if tokenizer is not None and isinstance(rows, int) and tokenizer.vocab_size > rows:
        raise ValueError(f"the tokenizer has {tokenizer.vocab_size} tokens but the model's embedding has only "
                         f"{rows} rows: load the tokenizer that belongs to this model")


def stop_ids(tokenizer) -> list[int]:
    """Ids that end a generation: every eos id of the tokenizer (generation_config.json may list several,
    e.g. Llama 3's <|eot_id|>), or its single eos id."""
    ids = getattr(tokenizer, "eos_ids", None)
    if ids is not None:
        return list(ids)
    return [tokenizer.eos_id] if tokenizer.eos_id is not None else []


def generate(model, tokenizer, prompt: str | Sequence[str], max_new_tokens: int = 64, temperature: float = 0.0,
             top_k: int | None = None, top_p: float | None = None, repetition_penalty: float = 1.0,
             stop: Sequence[str] | str = (), seed: int | None = None, stream: bool = False,
             overflow: str = "error", speculative=None, num_draft_tokens: int | None = None, images=None,
             compile: bool = False):
    """Continue `prompt`. Returns the continuation text (a list for a list of prompts), or with
    `stream=True` a generator of text pieces (single prompt only). A prompt plus `max_new_tokens` longer
    than the model's context raises ValueError naming both numbers, unless `overflow="slide"`, which keeps
    generating over a sliding window of the last 3/4 context (prompts must then be unpadded).
    `speculative`: "prompt-lookup" or a smaller draft model with the same tokenizer; `num_draft_tokens`
    proposals are checked per forward pass, prompts run one at a time, and the text is what plain decoding
    gives (greedy) or is distributed as it (sampling). It cannot slide past the context.
    `images` (image-chat models such as llava): PIL images filling the prompt's `<image>` placeholders in
    order (a list per prompt for a list of prompts); their count must match the placeholders.
    `compile=True`: decode steps through a `torch.compile`d static-cache step (GPT-family models; compiled
    once per model and cache size; lingvis/decode_step.py)."""
    check_vocab(model, tokenizer)
    stop = [stop] if isinstance(stop, str) else list(stop)
    eos = stop_ids(tokenizer)
    cfg = SamplingConfig(max_new_tokens=max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p,
                         repetition_penalty=repetition_penalty, eos_ids=eos, seed=seed, overflow=overflow,
                         compile=compile)
    model.eval()
    spec = dict(speculative=speculative, num_draft_tokens=num_draft_tokens)
    if stream:
        if not isinstance(prompt, str):
            raise ValueError("stream=True takes a single prompt string")
        return stream_text(model, tokenizer, prompt, cfg, stop, images=images, **spec)
    if isinstance(prompt, str):
        return "".join(stream_text(model, tokenizer, prompt, cfg, stop, images=images, **spec))
    if speculative is not None:
        return ["".join(stream_text(model, tokenizer, p, cfg, stop, **spec)) for p in prompt]
    return generate_batch(model, tokenizer, list(prompt), cfg, stop, images=images)


def generate_batch(model, tokenizer, prompts: list[str], cfg: SamplingConfig, stop: Sequence[str] = (),
                   images=None) -> list[str]:
    """Batched generation over prompts of different lengths (left padding). A row that reaches eos or one
    of the `stop` strings stops decoding; the others go on. `images`: a list of images per prompt."""
    if images is not None and len(images) != len(prompts):
        raise ValueError(f"{len(prompts)} prompts but {len(images)} image lists: give one list per prompt")
    seqs, pixels = prompt_inputs(model, tokenizer, prompts, [image_list(i) for i in images or [None] * len(prompts)])
    for i, s in enumerate(seqs):
        if not s:
            raise ValueError(f"prompt {i} encodes to zero tokens")
    pad = tokenizer.pad_id if tokenizer.pad_id is not None else (tokenizer.eos_id or 0)
    ids, mask = pad_left(seqs, pad)
    device = next(model.parameters()).device
    new: list[list[int]] = [[] for _ in prompts]
    stopped = [False] * len(prompts)

    def hit_stop(_: torch.Tensor) -> torch.Tensor:
        """(B,) rows whose text now holds a stop string: they leave the batch, no more compute for them."""
        for i, row in enumerate(new):
            stopped[i] = stopped[i] or _stop_at(tokenizer.decode(row), stop) is not None
        return torch.tensor(stopped)

    ids, mask = ids.to(device), mask.to(device)
    embeds = model.prompt_embeds(ids, pixels) if pixels is not None else None
    for step in stream_ids(model, ids, cfg, mask, finished=hit_stop if stop else None, inputs_embeds=embeds):
        for i, t in enumerate(step.tolist()):
            if not stopped[i]:
                new[i].append(t)
    texts = []
    for row in new:
        if cfg.eos_ids and any(t in cfg.eos_ids for t in row):
            row = row[:min(row.index(t) for t in cfg.eos_ids if t in row)]
        text = tokenizer.decode(row)
        cut = _stop_at(text, stop)
        texts.append(text if cut is None else text[:cut])
    return texts
