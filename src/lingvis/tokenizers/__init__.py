"""Tokenizers: a wrapper over HF ``tokenizers`` plus char-level and byte-level BPE trainers."""

from lingvis.tokenizers.base import Tokenizer
from lingvis.tokenizers.chat import DEFAULT_CHAT_TEMPLATE
from lingvis.tokenizers.specials import CHAT_MARKERS, ENDOFTEXT, GPT_SPECIAL_TOKENS, ROLES
from lingvis.tokenizers.train import train_bpe, train_char
from lingvis.tokenizers.wordpiece import BERT_SPECIAL_TOKENS, train_wordpiece

__all__ = [
    "CHAT_MARKERS",
    "DEFAULT_CHAT_TEMPLATE",
    "ENDOFTEXT",
    "GPT_SPECIAL_TOKENS",
    "ROLES",
    "Tokenizer",
    "train_bpe",
    "train_char",
    "train_wordpiece",
    "BERT_SPECIAL_TOKENS",
]
