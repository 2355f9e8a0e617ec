"""Answer normalisation of the official VQA evaluation (VQAEval.processPunctuation and
VQAEval.processDigitArticle), reproduced rule for rule, quirks included."""
from __future__ import annotations

import re

# Punctuation handled by processPunctuation ('.' is handled by _PERIOD_STRIP; "'" and ':' are kept).
PUNCT = (";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`", ",", "?", "!")
_COMMA_STRIP = re.compile(r"(\d)(,)(\d)")
# The official pattern's "(?!<=\d)" is a (no-op) lookahead, not a lookbehind: a '.' is removed
# unless a digit follows it, so "2.5" keeps its period and "1. " loses it.
_PERIOD_STRIP = re.compile(r"(?!<=\d)(\.)(?!\d)")
# The official code passes re.UNICODE (== 32) positionally, i.e. as `count`: at most 32 periods go.
_PERIOD_MAX_REMOVALS = int(re.UNICODE)

NUMBER_WORDS = {
    "none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4",
    "five": "5", "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10",
}
ARTICLES = frozenset({"a", "an", "the"})

# Proper contractions; the official table maps each variant with exactly one apostrophe missing
# ("cant" -> "can't", "couldnt've" and "couldn'tve" -> "couldn't've") to the proper form.
_CONTRACTED = (
    "ain't aren't can't could've couldn't couldn't've didn't doesn't don't hadn't hadn't've hasn't "
    "haven't he'd he'd've he's how'd how'll how's I'd've I'm I've isn't it'd it'd've it'll ma'am "
    "mightn't mightn't've might've mustn't must've needn't not've o'clock oughtn't 'ow's'at shan't "
    "she'd've should've shouldn't shouldn't've somebody'd've somebody'll somebody's someone'd "
    "someone'd've someone'll someone's something'd something'd've something'll that's there'd "
    "there'd've there're there's they'd they'd've they'll they're they've 'twas wasn't we'd've we've "
    "weren't what'll what're what's what've when's where'd where's where've who'd who'd've who'll "
    "who's who've why'll why're why's won't would've wouldn't wouldn't've y'all y'all'll y'all'd've "
    "you'd you'd've you'll you're you've"
).split()
# Entries of the official table that do not follow that rule (kept for fidelity; the last one
# maps in the "wrong" direction in the official code too).
_IRREGULAR = {"let's": "let's", "she's": "she's", "somebody'd": "somebodyd"}


def _contraction_table() -> dict[str, str]:
    table: dict[str, str] = {}
    for proper in _CONTRACTED:
        for i, ch in enumerate(proper):
            if ch == "'":
                table[proper[:i] + proper[i + 1:]] = proper
    table.update(_IRREGULAR)
    return table


CONTRACTIONS = _contraction_table()


def process_punctuation(text: str) -> str:
    """Remove (if the answer has a spaced punctuation mark or a digit,digit comma) or else replace
    by a space each punctuation mark; then drop periods not followed by a digit."""
    out = text
    has_number_comma = _COMMA_STRIP.search(text) is not None
    for p in PUNCT:
        if (p + " " in text or " " + p in text) or has_number_comma:
            out = out.replace(p, "")
        else:
            out = out.replace(p, " ")
    return _PERIOD_STRIP.sub("", out, count=_PERIOD_MAX_REMOVALS)


def process_digit_article(text: str) -> str:
    """Lower-case, map number words to digits, drop articles, restore contractions."""
    words = [NUMBER_WORDS.get(w, w) for w in text.lower().split()]
    words = [CONTRACTIONS.get(w, w) for w in words if w not in ARTICLES]
    return " ".join(words)


def normalize_vqa_answer(text: str) -> str:
    """Full processing the official evaluation applies to a predicted answer."""
    text = text.replace("\n", " ").replace("\t", " ").strip()
    return process_digit_article(process_punctuation(text))
