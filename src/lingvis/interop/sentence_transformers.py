"""sentence-transformers folder metadata: modules.json, <pooling>/config.json, sentence_bert_config.json.

Only the pooling, the Normalize module and max_seq_length matter for embeddings of a Transformer ->
Pooling [-> Normalize] pipeline; other modules (Dense, ...) are refused by name."""
from __future__ import annotations

import json
from pathlib import Path

from ..io import CheckpointError
from ..jsonfile import read_json

MODULE_TRANSFORMER = "sentence_transformers.models.Transformer"
MODULE_POOLING = "sentence_transformers.models.Pooling"
MODULE_NORMALIZE = "sentence_transformers.models.Normalize"
POOL_KEYS = {"cls": "pooling_mode_cls_token", "mean": "pooling_mode_mean_tokens", "max": "pooling_mode_max_tokens",
             "mean_sqrt_len": "pooling_mode_mean_sqrt_len_tokens"}
UNSUPPORTED_POOL = ("pooling_mode_weightedmean_tokens", "pooling_mode_lasttoken")


def _json(path: Path):
    return read_json(path, CheckpointError, "sentence-transformers file")


def _pooling_mode(path: Path) -> str:
    cfg = _json(path)
    on = [name for name, key in POOL_KEYS.items() if cfg.get(key)]
    bad = [k for k in UNSUPPORTED_POOL if cfg.get(k)]
    if bad or len(on) != 1:
        raise CheckpointError(f"{path}: lingvis supports exactly one of {sorted(POOL_KEYS.values())}; "
                              f"found {on + bad or 'none'}")
    return on[0]


def read_st_pooling(folder: Path) -> dict:
    """BertConfig fields (pooling, normalize, embed_max_length) from a sentence-transformers folder;
    {} when the folder has no modules.json."""
    modules_path = folder / "modules.json"
    if not modules_path.is_file():
        return {}
    out: dict = {"normalize": False}
    for i, m in enumerate(_json(modules_path)):
        kind = m.get("type", "")
        if kind == MODULE_POOLING:
            out["pooling"] = _pooling_mode(folder / m.get("path", "") / "config.json")
        elif kind == MODULE_NORMALIZE:
            out["normalize"] = True
        elif kind != MODULE_TRANSFORMER:
            raise CheckpointError(f"{modules_path}: module {i} of type {kind!r} is not supported "
                                  "(lingvis handles Transformer -> Pooling -> Normalize)")
    st_cfg = folder / "sentence_bert_config.json"
    if st_cfg.is_file() and _json(st_cfg).get("max_seq_length"):
        out["embed_max_length"] = int(_json(st_cfg)["max_seq_length"])
    return out


def write_st_files(cfg, folder: Path) -> None:
    """Write the sentence-transformers files when the config carries non-default embedding settings."""
    if cfg.pooling == "mean" and not cfg.normalize and cfg.embed_max_length is None:
        return
    modules = [{"idx": 0, "name": "0", "path": "", "type": MODULE_TRANSFORMER},
               {"idx": 1, "name": "1", "path": "1_Pooling", "type": MODULE_POOLING}]
    if cfg.normalize:
        modules.append({"idx": 2, "name": "2", "path": "2_Normalize", "type": MODULE_NORMALIZE})
        (folder / "2_Normalize").mkdir(exist_ok=True)
    (folder / "modules.json").write_text(json.dumps(modules, indent=2))
    (folder / "1_Pooling").mkdir(exist_ok=True)
    pool = {"word_embedding_dimension": cfg.n_embd, **{k: name == cfg.pooling for name, k in POOL_KEYS.items()}}
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(pool, indent=2))
    max_len = cfg.embed_max_length or cfg.max_positions
    (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": max_len,
                                                                  "do_lower_case": False}, indent=2))
