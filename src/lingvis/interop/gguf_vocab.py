"""A lingvis `Tokenizer` as GGUF tokenizer metadata (`tokenizer.ggml.*`), the way llama.cpp reads it.

Two tokenizer kinds have a llama.cpp counterpart:
- byte-level BPE (GPT-2, Llama 3, Qwen2, SmolLM): model `gpt2`, the byte-level token strings, the merges and
  a pre-tokenizer name (`tokenizer.ggml.pre`) chosen from the tokenizer's own pre-tokenizer: the GPT-2 regex
  (`gpt-2`), digits then GPT-2 (`smollm`), or the Llama 3 / Qwen2 split regex (`llama-bpe` / `qwen2`);
- BPE with byte fallback (SentencePiece-converted Llama 2, TinyLlama, Mistral): model `llama` with a score
  per token; llama.cpp's SentencePiece tokenizer merges the highest-scoring pair first, so a token's score
  is minus the rank of the merge that makes it (its BPE priority).
Anything else (character or WordPiece vocabularies) has no llama.cpp tokenizer and is refused by name.
Vocabulary ids past the tokenizer's size (an embedding padded to a round size) are written as unused
`[PAD<id>]` tokens, as llama.cpp's converter writes them.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..io import CheckpointError

if TYPE_CHECKING:
    from ..tokenizers import Tokenizer

# GGUF token types (gguf.TokenType), spelled out so that this module does not need the gguf package
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6

GPT2_REGEX = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)"
SPLIT_REGEXES = {  # the Split pattern of tokenizer.json -> llama.cpp pre-tokenizer
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+":
        "llama-bpe",
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+":
        "qwen2",
}
ROLE_KEYS = {"bos": "bos_token_id", "eos": "eos_token_id", "unk": "unknown_token_id", "pad": "padding_token_id",
             "sep": "seperator_token_id", "mask": "mask_token_id"}  # (sic: llama.cpp's key spells it so)


@dataclass
class GGUFVocab:
    """Everything `tokenizer.ggml.*` holds for one tokenizer."""
    model: str                        # "gpt2" | "llama"
    tokens: list[str]
    token_types: list[int]
    pre: str | None = None            # llama.cpp pre-tokenizer name (gpt2 model)
    merges: list[str] = field(default_factory=list)
    scores: list[float] | None = None  # llama model
    special_ids: dict[str, int] = field(default_factory=dict)  # role -> id
    add_bos: bool = False
    add_eos: bool = False
    add_space_prefix: bool | None = None
    chat_template: str | list | None = None


def _pre_name(pre: dict | None) -> str:
    """The llama.cpp pre-tokenizer matching a tokenizer.json `pre_tokenizer` (byte-level BPE)."""
    parts = [] if pre is None else (pre.get("pretokenizers", []) if pre.get("type") == "Sequence" else [pre])
    kinds = [p.get("type") for p in parts]
    if kinds == ["ByteLevel"] and parts[0].get("use_regex", True) and not parts[0].get("add_prefix_space"):
        return "gpt-2"
    if kinds == ["Digits", "ByteLevel"] and parts[0].get("individual_digits") and parts[1].get("use_regex", True) \
            and not parts[1].get("add_prefix_space"):
        return "smollm"
    if kinds == ["Split", "ByteLevel"] and not parts[1].get("use_regex", True):
        name = SPLIT_REGEXES.get((parts[0].get("pattern") or {}).get("Regex"))
        if name is not None:
            return name
    raise CheckpointError(f"the tokenizer's pre-tokenizer {json.dumps(pre)[:200]} has no llama.cpp counterpart "
                          "(known: GPT-2 byte-level, SmolLM digits + byte-level, Llama 3 and Qwen2 split regexes)")


def _merge_strings(merges: list) -> list[str]:
    """tokenizer.json merges (either "a b" strings or [a, b] pairs) as llama.cpp's "a b" strings; a space
    inside a part is written as U+0120 + ... (chr(ord(' ') + 256)), as llama.cpp's converter does."""
    if not merges or isinstance(merges[0], str):
        return list(merges)
    return [" ".join("".join(chr(ord(c) + 256) if c == " " else c for c in part) for part in pair)
            for pair in merges]


def _adds(tokenizer, role_id: int | None, first: bool) -> bool:
    """Whether encoding with special tokens puts the role's token first (bos) or last (eos)."""
    if role_id is None:
        return False
    ids = tokenizer.encode("a", add_special_tokens=True)
    return bool(ids) and ids[0 if first else -1] == role_id


def _space_prefix(spec: dict) -> bool:
    """SentencePiece-style tokenizers prepend '▁' to the text: a Prepend normalizer or a Metaspace
    pre-tokenizer whose prepend_scheme is not 'never'."""
    def walk(node, key):
        if not node:
            return []
        return [n for n in node.get(key, [])] if node.get("type") == "Sequence" else [node]

    if any(n.get("type") == "Prepend" for n in walk(spec.get("normalizer"), "normalizers")):
        return True
    return any(n.get("type") == "Metaspace" and n.get("prepend_scheme", "always") != "never"
               for n in walk(spec.get("pre_tokenizer"), "pretokenizers"))


def vocab_from_tokenizer(tokenizer, vocab_size: int) -> GGUFVocab:
    """The GGUF vocabulary of a lingvis `Tokenizer` for a model with `vocab_size` embedding rows."""
    spec = json.loads(tokenizer.backend.to_str())
    model = spec.get("model", {})
    if model.get("type") != "BPE":
        raise CheckpointError(f"a {model.get('type')} tokenizer has no llama.cpp counterpart; GGUF export supports "
                              "byte-level BPE (GPT-2, Llama 3, Qwen2) and byte-fallback BPE (Llama 2, Mistral); "
                              "export without it (lingvis convert --no-tokenizer) to run llama.cpp on token ids")
    n = tokenizer.vocab_size
    if n > vocab_size:
        raise CheckpointError(f"the tokenizer has {n} tokens but the model's embedding has only {vocab_size} rows")
    by_id = {i: t for t, i in tokenizer.get_vocab().items()}
    added = {a["id"]: a for a in spec.get("added_tokens", [])}
    byte_fallback = bool(model.get("byte_fallback"))
    kind = "llama" if byte_fallback else "gpt2"
    merges = _merge_strings(model.get("merges") or [])
    rank = {}
    if kind == "llama":  # a merged token's score: minus the rank of the merge that makes it
        for r, m in enumerate(merges):
            a, b = m.split(" ", 1)
            rank.setdefault(a.replace(chr(ord(" ") + 256), " ") + b.replace(chr(ord(" ") + 256), " "), r)
    tokens, types, scores = [], [], []
    unk = tokenizer.unk_id
    for i in range(vocab_size):
        tok = by_id.get(i)
        if tok is None:
            tokens.append(f"[PAD{i}]")
            types.append(UNUSED)
            scores.append(-1e9)
            continue
        tokens.append(tok)
        if i == unk:
            types.append(UNKNOWN)
        elif i in added:
            types.append(CONTROL if added[i].get("special") else USER_DEFINED)
        elif kind == "llama" and len(tok) == 6 and tok.startswith("<0x") and tok.endswith(">"):
            types.append(BYTE)
        else:
            types.append(NORMAL)
        scores.append(-float(rank[tok]) if tok in rank else (0.0 if types[-1] == NORMAL and len(tok) == 1 else -1e9))
    roles = {role: tokenizer.token_to_id(t) for role, t in tokenizer.special_tokens.items() if role in ROLE_KEYS}
    return GGUFVocab(
        model=kind, tokens=tokens, token_types=types,
        pre=None if kind == "llama" else _pre_name(spec.get("pre_tokenizer")),
        merges=merges if kind == "gpt2" else [], scores=scores if kind == "llama" else None,
        special_ids={r: i for r, i in roles.items() if i is not None},
        add_bos=_adds(tokenizer, tokenizer.bos_id, True), add_eos=_adds(tokenizer, tokenizer.eos_id, False),
        add_space_prefix=_space_prefix(spec) if kind == "llama" else None, chat_template=tokenizer.chat_template)


def write_vocab(writer, vocab: GGUFVocab) -> None:
    """Add the vocabulary's `tokenizer.ggml.*` (and `tokenizer.chat_template`) keys to a GGUFWriter."""
    writer.add_tokenizer_model(vocab.model)
    if vocab.pre is not None:
        writer.add_tokenizer_pre(vocab.pre)
    writer.add_token_list(vocab.tokens)
    writer.add_token_types(vocab.token_types)
    if vocab.scores is not None:
        writer.add_token_scores(vocab.scores)
    if vocab.merges:
        writer.add_token_merges(vocab.merges)
    for role, tid in vocab.special_ids.items():
        writer.add_uint32(f"tokenizer.ggml.{ROLE_KEYS[role]}", tid)
    writer.add_bool("tokenizer.ggml.add_bos_token", vocab.add_bos)
    writer.add_bool("tokenizer.ggml.add_eos_token", vocab.add_eos)
    if vocab.add_space_prefix is not None:
        writer.add_bool("tokenizer.ggml.add_space_prefix", vocab.add_space_prefix)
    if vocab.chat_template:
        writer.add_chat_template(vocab.chat_template)


PRE_SPLITS = {name: regex for regex, name in SPLIT_REGEXES.items()}


def tokenizer_from_gguf(fields: dict, path) -> "Tokenizer":
    """A lingvis `Tokenizer` from the `tokenizer.ggml.*` fields (name -> value) of a GGUF file with a byte-level
    BPE vocabulary (`gpt2` model and a pre-tokenizer this module knows)."""
    import tokenizers as hf_tok
    from tokenizers import Regex, decoders, models, pre_tokenizers, processors

    from ..tokenizers import Tokenizer

    kind = fields.get("tokenizer.ggml.model")
    if kind != "gpt2":
        raise CheckpointError(f"{path}: GGUF tokenizer model {kind!r} cannot be read back; lingvis reads byte-level "
                              "BPE ('gpt2') vocabularies")
    pre = fields.get("tokenizer.ggml.pre", "gpt-2")
    tokens, types = fields["tokenizer.ggml.tokens"], fields.get("tokenizer.ggml.token_type") or []
    merges = [tuple(m.split(" ", 1)) for m in fields.get("tokenizer.ggml.merges") or []]
    real = {t: i for i, t in enumerate(tokens) if not (i < len(types) and types[i] == UNUSED)}
    backend = hf_tok.Tokenizer(models.BPE(real, merges, ignore_merges=pre == "llama-bpe"))
    if pre == "gpt-2":
        backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    elif pre == "smollm":
        backend.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                                         pre_tokenizers.ByteLevel(add_prefix_space=False)])
    elif pre in PRE_SPLITS:
        backend.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(PRE_SPLITS[pre]), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    else:
        raise CheckpointError(f"{path}: GGUF pre-tokenizer {pre!r} is not one lingvis reads "
                              f"(gpt-2, smollm, {', '.join(PRE_SPLITS)})")
    backend.decoder = decoders.ByteLevel()
    backend.post_processor = processors.ByteLevel(trim_offsets=False)
    added = [hf_tok.AddedToken(tokens[i], special=types[i] == CONTROL, normalized=False)
             for i in range(len(tokens)) if i < len(types) and types[i] in (CONTROL, USER_DEFINED)]
    backend.add_special_tokens([t for t in added if t.special])  # already in the vocabulary: ids kept
    backend.add_tokens([t for t in added if not t.special])
    roles = {}
    for role, key in ROLE_KEYS.items():
        tid = fields.get(f"tokenizer.ggml.{key}")
        if tid is not None and 0 <= tid < len(tokens) and not tokens[tid].startswith("[PAD"):
            roles[role] = tokens[tid]
    tok = Tokenizer(backend, roles, chat_template=fields.get("tokenizer.chat_template"))
    for i in range(len(tokens)):
        if i < len(types) and types[i] == UNUSED:
            continue
        if tok.token_to_id(tokens[i]) != i:
            raise CheckpointError(f"{path}: token {tokens[i]!r} would get id {tok.token_to_id(tokens[i])}, not {i}")
    return tok
