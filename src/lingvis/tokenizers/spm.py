"""Read a SentencePiece model file (``.spm`` / ``.model``) without protobuf or sentencepiece.

The file is a serialized ``ModelProto``; only the fields tokenization needs are decoded: the pieces
(string, score, type), the trainer's model type / unk id / byte fallback, and the normalizer spec
(precompiled NFKC-style charsmap and whitespace handling).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

# ModelProto.SentencePiece.Type
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6
UNIGRAM = 1  # TrainerSpec.ModelType


@dataclass(frozen=True)
class SpmModel:
    """The tokenization-relevant content of a SentencePiece model."""

    pieces: list[tuple[str, float, int]]  # (piece, score, type) in SentencePiece id order
    model_type: int = UNIGRAM
    unk_id: int = 0
    byte_fallback: bool = False
    treat_whitespace_as_suffix: bool = False
    precompiled_charsmap: bytes = b""
    add_dummy_prefix: bool = True
    remove_extra_whitespaces: bool = True
    escape_whitespaces: bool = True


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return (value - (1 << 64) if value >= 1 << 63 else value), pos
        shift += 7
        if shift >= 70:
            raise ValueError("varint longer than 10 bytes")


def _fields(buf: bytes) -> dict[int, list]:
    """Field number -> raw values (int for varints, bytes otherwise) of one protobuf message."""
    out: dict[int, list] = {}
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if number <= 0:
            raise ValueError(f"invalid field number {number}")
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            value, pos = buf[pos:pos + size], pos + size
        elif wire == 2:
            size, pos = _varint(buf, pos)
            if size < 0:
                raise ValueError("negative length")
            value, pos = buf[pos:pos + size], pos + size
        else:
            raise ValueError(f"unsupported wire type {wire}")
        if pos > len(buf):
            raise ValueError("truncated message")
        out.setdefault(number, []).append(value)
    return out


def _last(fields: dict[int, list], number: int, default):
    """The field's last value (proto2 semantics), checked to be of the default's kind (int or bytes)."""
    value = fields[number][-1] if number in fields else default
    if type(value) is not type(default):
        raise ValueError(f"field {number} has the wrong wire type")
    return value


def _piece(raw: bytes) -> tuple[str, float, int]:
    f = _fields(raw)
    text = _last(f, 1, b"").decode("utf-8")
    score = _last(f, 2, b"\0\0\0\0")
    kind = _last(f, 3, NORMAL)
    if not text or len(score) != 4 or kind not in (NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE):
        raise ValueError(f"bad piece {text!r} of type {kind}")
    return text, struct.unpack("<f", score)[0], kind


def parse_spm(data: bytes) -> SpmModel:
    """Decode a serialized SentencePiece ``ModelProto``; ``ValueError`` when it is not one."""
    model = _fields(data)
    pieces = [_piece(raw) for raw in model.get(1, [])]
    if not pieces:
        raise ValueError("no pieces")
    trainer = _fields(_last(model, 2, b""))
    normalizer = _fields(_last(model, 3, b""))
    unk_id = _last(trainer, 40, 0)
    if not 0 <= unk_id < len(pieces) or pieces[unk_id][2] != UNKNOWN:
        raise ValueError(f"unk_id {unk_id} is not an unknown piece")
    return SpmModel(
        pieces=pieces, model_type=_last(trainer, 3, UNIGRAM), unk_id=unk_id,
        byte_fallback=bool(_last(trainer, 35, 0)), treat_whitespace_as_suffix=bool(_last(trainer, 24, 0)),
        precompiled_charsmap=_last(normalizer, 2, b""), add_dummy_prefix=bool(_last(normalizer, 3, 1)),
        remove_extra_whitespaces=bool(_last(normalizer, 4, 1)), escape_whitespaces=bool(_last(normalizer, 5, 1)),
    )


def read_spm(path: Path) -> SpmModel:
    """Read a SentencePiece model file; errors name the file."""
    try:
        return parse_spm(Path(path).read_bytes())
    except ValueError as err:  # UnicodeDecodeError included
        raise ValueError(f"{path}: not a readable SentencePiece model ({err})") from None
