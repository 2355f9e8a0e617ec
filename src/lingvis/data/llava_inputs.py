"""Inputs of LLaVA-style models: image preprocessing, `<image>` placeholders in prompts and chats, and
conversations as (input ids, labels) with the loss on the assistant's tokens only.

A prompt holds one placeholder token (`<image>`, the model's `image_token_id`) per image; `expand_images`
repeats each one `tokens_per_image` times, the slots the projected image features fill. Chat messages may
carry images as OpenAI-style content parts ({"type": "image_url"} / {"type": "image"}) or as `<image>` in
their text; either way the rendered prompt gets one placeholder per image, in order.

Assistant masks come from the chat template itself: the text of turn k is what rendering the first k + 1
messages adds to rendering the first k with the generation prompt, and a token is the assistant's when its
character span starts inside such a piece (token offsets from the `tokenizers` backend).
"""
from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
from PIL import Image

from .images import ImageTransform, to_rgb

IGNORE = -100
IMAGE_TOKEN = "<image>"
ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}


# ----- images ---------------------------------------------------------------------------------------
def pad_square(img: Image.Image, mean: Sequence[float]) -> Image.Image:
    """Pad to a square with the mean colour, image centred (HF LlavaImageProcessor `do_pad`)."""
    w, h = img.size
    if w == h:
        return img
    side = max(w, h)
    out = Image.new("RGB", (side, side), tuple(int(m * 255) for m in mean))
    out.paste(img, ((side - w) // 2, (side - h) // 2))
    return out


def image_transform(model) -> Callable[[Image.Image], torch.Tensor]:
    """PIL -> (3, S, S) tensor as the model's vision tower was trained (its folder's preprocessing)."""
    c = model.image_config
    tf = ImageTransform(size=getattr(c, "resize_size", None) or c.image_size, crop=c.image_size,
                        mean=c.image_mean, std=c.image_std)
    if not getattr(model.config, "pad_to_square", False):
        return tf
    return lambda img: tf(pad_square(to_rgb(img), c.image_mean))


def pixel_values(model, images: Sequence[Image.Image]) -> torch.Tensor | None:
    """(N, 3, S, S) on the model's device, or None for no images."""
    if not images:
        return None
    tf = image_transform(model)
    return torch.stack([tf(im) for im in images]).to(next(model.parameters()).device)


# ----- placeholders ---------------------------------------------------------------------------------
def image_token(tokenizer, model) -> str:
    """The placeholder string of the model's image token in this tokenizer (normally `<image>`)."""
    tok = tokenizer.id_to_token(model.config.image_token_id)
    if tok is None:
        raise ValueError(f"the tokenizer has no token with the model's image_token_id {model.config.image_token_id}")
    return tok


def expand_images(ids: Sequence[int], image_id: int, n: int, labels: Sequence[int] | None = None):
    """Repeat each placeholder `image_id` n times (labels of image slots become IGNORE). Returns the new ids
    (and labels when given)."""
    out, lab = [], []
    for k, t in enumerate(ids):
        reps = n if t == image_id else 1
        out += [t] * reps
        if labels is not None:
            lab += [IGNORE] * n if t == image_id else [labels[k]]
    return (out, lab) if labels is not None else out


def count_mismatch(n_placeholders: int, n_images: int, where: str = "the prompt") -> ValueError:
    return ValueError(f"{where} has {n_placeholders} image placeholder(s) ({IMAGE_TOKEN}) but {n_images} image(s) "
                      "were given: put one placeholder where each image goes")


def encode_prompt(tokenizer, model, text: str, n_images: int) -> list[int]:
    """Token ids of a prompt with one placeholder per image, expanded to the image token slots."""
    ids = tokenizer.encode(text)
    image_id = model.config.image_token_id
    found = ids.count(image_id)
    placeholder = image_token(tokenizer, model)
    if found != text.count(placeholder):
        raise ValueError(f"the tokenizer does not encode {placeholder!r} as one token (id {image_id}); add it as a "
                         "special token")
    if found != n_images:
        raise count_mismatch(found, n_images)
    if not ids:
        raise ValueError("the prompt encodes to zero tokens")
    return expand_images(ids, image_id, model.tokens_per_image)


# ----- chat messages --------------------------------------------------------------------------------
def message_text(content, placeholder: str = IMAGE_TOKEN) -> tuple[str, int]:
    """A message's content (a string, or OpenAI-style parts) as text with a placeholder line per image part,
    and the number of images it holds."""
    if content is None:
        return "", 0
    if isinstance(content, str):
        return content, content.count(placeholder)
    text, n = "", 0
    for part in content:
        kind = part.get("type") if isinstance(part, Mapping) else getattr(part, "type", None)
        if kind in ("image", "image_url"):
            text += placeholder + "\n"
            n += 1
        elif kind == "text":
            piece = part["text"] if isinstance(part, Mapping) else part.text
            text += piece
            n += piece.count(placeholder)
        else:
            raise ValueError(f"unknown content part type {kind!r}; expected text, image_url or image")
    return text, n


def chat_messages(messages: Sequence[Mapping], placeholder: str = IMAGE_TOKEN) -> tuple[list[dict], int]:
    """Plain {"role", "content": str} messages for the chat template and the number of image placeholders."""
    plain, total = [], 0
    for m in messages:
        text, n = message_text(m.get("content"), placeholder)
        plain.append({"role": m["role"], "content": text})
        total += n
    return plain, total


def chat_prompt_ids(tokenizer, model, messages: Sequence[Mapping], n_images: int) -> list[int]:
    """The generation prompt of a chat with images (placeholders expanded)."""
    placeholder = image_token(tokenizer, model)
    plain, found = chat_messages(messages, placeholder)
    if found != n_images:
        raise count_mismatch(found, n_images, "the conversation")
    text = tokenizer.apply_chat_template(plain, add_generation_prompt=True)
    return encode_prompt(tokenizer, model, text, n_images)


# ----- training conversations -----------------------------------------------------------------------
def llava_messages(conversations: Sequence[Mapping], where: str = "conversation") -> list[dict]:
    """LLaVA JSON turns ({"from": human|gpt|system, "value": str}) -> chat messages."""
    out = []
    for i, turn in enumerate(conversations):
        if not isinstance(turn, Mapping) or "from" not in turn or "value" not in turn:
            raise ValueError(f"{where}: turn {i} must be an object with 'from' and 'value'")
        role = ROLES.get(turn["from"])
        if role is None:
            raise ValueError(f"{where}: turn {i} is from {turn['from']!r}; expected one of {sorted(ROLES)}")
        if not isinstance(turn["value"], str):
            raise ValueError(f"{where}: turn {i} 'value' must be a string")
        message = {"role": role, "content": turn["value"]}
        if "weight" in turn:  # a loss weight on the turn's `key` word (all its tokens without a key)
            weight, key = turn["weight"], turn.get("key")
            if role != "assistant" or isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight <= 0:
                raise ValueError(f"{where}: turn {i} 'weight' must be a positive number on a gpt turn")
            if key is not None and (not isinstance(key, str) or key.lower() not in turn["value"].lower()):
                raise ValueError(f"{where}: turn {i} 'key' {key!r} is not in its value {turn['value']!r}")
            message.update(weight=float(weight), key=key)
        out.append(message)
    if not any(m["role"] == "assistant" for m in out):
        raise ValueError(f"{where}: no assistant (gpt) turn to learn from")
    return out


def weighted_spans(text: str, spans: list[tuple[int, int]], messages: list[dict]) -> list[tuple[int, int, float]]:
    """(start, end, weight) character spans of the weighted assistant turns of `messages` in the rendered `text`
    (`spans`: the assistant turns' spans, `assistant_spans`): the turn's `key` word (its first whole-word occurrence
    in the turn's content, any case: "yes" weighs "Yes, ..."; the turn's whole span without a key)."""
    out = []
    for (s, e), m in zip(spans, [m for m in messages if m["role"] == "assistant"]):
        if m.get("weight", 1.0) == 1.0:
            continue
        if m.get("key") is None:
            out.append((s, e, m["weight"]))
            continue
        at = text.find(m["content"], s, e)
        hit = re.search(rf"\b{re.escape(m['key'])}\b", m["content"], re.IGNORECASE) if at >= 0 else None
        if hit is None:
            raise ValueError(f"the key {m['key']!r} of an assistant turn is not a word of its rendered text")
        out.append((at + hit.start(), at + hit.end(), m["weight"]))
    return out


def assistant_spans(tokenizer, messages: list[dict]) -> tuple[str, list[tuple[int, int]]]:
    """The rendered conversation and the character spans of the assistant turns in it (each turn's text as the
    template writes it, end-of-turn token included)."""
    full = tokenizer.apply_chat_template(messages, add_generation_prompt=False)
    spans = []
    for k, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        before = tokenizer.apply_chat_template(messages[:k], add_generation_prompt=True) if k else ""
        upto = tokenizer.apply_chat_template(messages[:k + 1], add_generation_prompt=False)
        if not upto.startswith(before) or not full.startswith(upto):
            raise ValueError("the chat template does not render conversations turn by turn (an earlier turn changes "
                             "when a later one is added), so assistant tokens cannot be told apart")
        spans.append((len(before), len(upto)))
    return full, spans


@dataclass
class Encoded:
    ids: list[int]       # model input (placeholders expanded)
    labels: list[int]    # next-token targets aligned with `ids` (IGNORE outside assistant turns)
    n_images: int        # images whose slots are in `ids`
    weights: list[float] | None = None  # loss weight per label (None: all 1), from weighted turns


def encode_conversation(tokenizer, messages: list[dict], image_id: int, tokens_per_image: int, max_len: int,
                        n_images: int, placeholder: str = IMAGE_TOKEN) -> Encoded | None:
    """Ids and shifted labels of a conversation (loss on assistant tokens only), cut to `max_len` tokens
    without splitting an image (images past the cut are dropped). None when no assistant token remains."""
    found = sum(m["content"].count(placeholder) for m in messages)
    if found != n_images:
        raise count_mismatch(found, n_images, "the conversation")
    text, spans = assistant_spans(tokenizer, messages)
    enc = tokenizer.backend.encode(text, add_special_tokens=False)
    ids = list(enc.ids)
    if ids.count(image_id) != n_images:
        raise ValueError(f"the tokenizer does not encode {placeholder!r} as one token (id {image_id})")
    mine = [any(s <= a < e for s, e in spans) for a, _ in enc.offsets]
    target = [t if m else IGNORE for t, m in zip(ids, mine)]
    heavy = weighted_spans(text, spans, messages)
    # a token's weight: the weight of a weighted span it overlaps (1 elsewhere)
    token_w = [next((w for s, e, w in heavy if a < e and b > s), 1.0) for a, b in enc.offsets] if heavy else None
    ids, target, token_w = _expanded(ids, image_id, tokens_per_image, target, token_w)
    inputs, labels = ids[:-1][:max_len], target[1:][:max_len]  # position t predicts token t + 1
    weights = token_w[1:][:max_len] if token_w is not None else None
    partial = inputs.count(image_id) % tokens_per_image
    if partial:  # the cut splits an image: cut before it
        cut = len(inputs) - partial
        inputs, labels = inputs[:cut], labels[:cut]
        weights = weights[:cut] if weights is not None else None
    if not inputs or all(x == IGNORE for x in labels):
        return None
    return Encoded(inputs, labels, inputs.count(image_id) // tokens_per_image, weights)


def _expanded(ids: list[int], image_id: int, n: int, target: list[int], weights: list[float] | None):
    """`expand_images` of ids and targets, and the per-token weights expanded alike (image slots weigh 1)."""
    if weights is None:
        return (*expand_images(ids, image_id, n, target), None)
    out_w = [w for t, w in zip(ids, weights) for w in ([1.0] * n if t == image_id else [w])]
    return (*expand_images(ids, image_id, n, target), out_w)


# ----- generation -----------------------------------------------------------------------------------
def reads_images(model) -> bool:
    """Whether `model` takes images among its prompt tokens (a llava model)."""
    return bool(getattr(model, "reads_images", False))


def image_list(images) -> list:
    """None, one PIL image or a sequence of them -> a list."""
    if images is None:
        return []
    return [images] if isinstance(images, Image.Image) else list(images)


def prompt_inputs(model, tokenizer, prompts: Sequence[str], images: Sequence[Sequence[Image.Image]]
                  ) -> tuple[list[list[int]], torch.Tensor | None]:
    """Token ids of each prompt (image placeholders expanded) and the pixels of every image in order (None
    without images). Models that do not read images refuse images by name."""
    if any(images) and not reads_images(model):
        raise ValueError(f"a {getattr(model, 'family', type(model).__name__)} model does not read images; "
                         "images need an image-chat (llava) model")
    if not reads_images(model):
        return [tokenizer.encode(p) for p in prompts], None
    seqs = [encode_prompt(tokenizer, model, p, len(imgs)) for p, imgs in zip(prompts, images)]
    return seqs, pixel_values(model, [im for imgs in images for im in imgs])
