"""BERT (`model_type: bert`) <-> lingvis Bert, for BertModel and the BertFor* task classes.

HF keeps separate query/key/value projections; lingvis fuses them into `attn.qkv` (rows q, k, v).
Old TF-converted checkpoints name LayerNorm parameters `gamma`/`beta`: both spellings load.
A sentence-transformers folder (modules.json, 1_Pooling/config.json) sets the embedding pooling."""
from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file

from ..io import CheckpointError, load_state
from ..models.bert import Bert, BertConfig
from .registry import register_exporter, register_loader
from .adapters import AdapterLayout, register_layout
from .sentence_transformers import read_st_pooling, write_st_files

ARCH_TO_HEAD = {"BertModel": "none", "BertForMaskedLM": "mlm", "BertForPreTraining": "pretraining",
                "BertForSequenceClassification": "classify", "BertForTokenClassification": "tag",
                "BertForQuestionAnswering": "qa"}
HEAD_TO_ARCH = {v: k for k, v in ARCH_TO_HEAD.items()}
HF_POOLER = ("none", "pretraining", "classify")  # classes built with a pooler
ACT_FROM_HF = {"gelu": "gelu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "relu": "relu",
               "silu": "silu", "swish": "silu", "quick_gelu": "quick_gelu"}
ACT_TO_HF = {"gelu": "gelu", "gelu_tanh": "gelu_new", "relu": "relu", "silu": "silu", "quick_gelu": "quick_gelu"}
EMB_MAP = {"tok_emb.weight": "embeddings.word_embeddings.weight",
           "pos_emb.weight": "embeddings.position_embeddings.weight",
           "seg_emb.weight": "embeddings.token_type_embeddings.weight",
           "emb_ln.weight": "embeddings.LayerNorm.weight", "emb_ln.bias": "embeddings.LayerNorm.bias"}
LAYER_MAP = {"attn.proj": "attention.output.dense", "ln_1": "attention.output.LayerNorm",
             "mlp.fc": "intermediate.dense", "mlp.proj": "output.dense", "ln_2": "output.LayerNorm"}
QKV = ("query", "key", "value")
HEAD_MAP = {"mlm.dense": "cls.predictions.transform.dense", "mlm.ln": "cls.predictions.transform.LayerNorm",
            "nsp": "cls.seq_relationship", "classifier": "classifier", "qa.proj": "qa_outputs"}


def canonical_keys(hf_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop the `bert.` prefix and buffers; rename old LayerNorm `gamma`/`beta` to `weight`/`bias`."""
    out = {}
    for k, v in hf_state.items():
        k = k[len("bert."):] if k.startswith("bert.") else k
        if k.endswith("position_ids"):
            continue
        if ".LayerNorm." in k or k.startswith("LayerNorm."):
            k = k.replace("LayerNorm.gamma", "LayerNorm.weight").replace("LayerNorm.beta", "LayerNorm.bias")
        out[k] = v
    return out


def head_from(hf: dict, state: dict, path: Path) -> str:
    archs = hf.get("architectures") or []
    if archs:
        if archs[0] not in ARCH_TO_HEAD:
            raise CheckpointError(f"{path / 'config.json'}: architecture {archs[0]!r} is not supported; "
                                  f"lingvis loads {sorted(ARCH_TO_HEAD)}")
        return ARCH_TO_HEAD[archs[0]]
    if "cls.seq_relationship.weight" in state:
        return "pretraining"
    if "cls.predictions.bias" in state:
        return "mlm"
    if "qa_outputs.weight" in state:
        return "qa"
    if "classifier.weight" in state:
        raise CheckpointError(f"{path / 'config.json'}: a classifier head without `architectures`; cannot tell "
                              "sequence from token classification")
    return "none"


def labels_from(hf: dict, head: str) -> tuple[int, list[str] | None]:
    if head not in ("classify", "tag"):
        return 2, None
    id2label = hf.get("id2label")
    if id2label:
        return len(id2label), [str(id2label[str(i)] if str(i) in id2label else id2label[i])
                               for i in range(len(id2label))]
    return int(hf.get("num_labels", 2)), None


def config_from_hf(hf: dict, state: dict, path: Path) -> BertConfig:
    pet = hf.get("position_embedding_type", "absolute")
    if pet != "absolute":
        raise CheckpointError(f"{path / 'config.json'}: position_embedding_type {pet!r} is not supported "
                              "(absolute only)")
    if hf.get("is_decoder") or hf.get("add_cross_attention"):
        raise CheckpointError(f"{path / 'config.json'}: BERT as a decoder (is_decoder/add_cross_attention) "
                              "is not supported")
    act = hf.get("hidden_act", "gelu")
    if act not in ACT_FROM_HF:
        raise CheckpointError(f"{path / 'config.json'}: hidden_act {act!r} is not supported; "
                              f"known: {sorted(ACT_FROM_HF)}")
    head = head_from(hf, state, path)
    num_labels, labels = labels_from(hf, head)
    try:
        cfg = BertConfig(
            vocab_size=hf["vocab_size"], max_positions=hf.get("max_position_embeddings", 512),
            type_vocab_size=hf.get("type_vocab_size", 2), n_layer=hf["num_hidden_layers"],
            n_head=hf["num_attention_heads"], n_embd=hf["hidden_size"], mlp_hidden=hf["intermediate_size"],
            activation=ACT_FROM_HF[act], norm_eps=hf.get("layer_norm_eps", 1e-12),
            dropout=hf.get("hidden_dropout_prob", 0.1), pad_id=hf.get("pad_token_id") or 0,
            pooler="pooler.dense.weight" in state, head=head, num_labels=num_labels, labels=labels,
            classifier_dropout=hf.get("classifier_dropout"), tie_embeddings=hf.get("tie_word_embeddings", True),
            no_answer=bool(hf.get("lingvis_no_answer", False)), **read_st_pooling(path))
    except KeyError as e:
        raise CheckpointError(f"{path / 'config.json'}: missing BERT config key {e.args[0]!r}") from e
    except ValueError as e:
        raise CheckpointError(f"{path / 'config.json'}: {e}") from e
    return cfg


def state_from_hf(s: dict[str, torch.Tensor], cfg: BertConfig) -> dict[str, torch.Tensor]:
    """Map canonical HF names to lingvis names; raises KeyError naming a missing HF weight."""
    s = dict(s)
    out = {ours: s.pop(theirs) for ours, theirs in EMB_MAP.items()}
    for i in range(cfg.n_layer):
        p = f"encoder.layer.{i}."
        for kind in ("weight", "bias"):
            out[f"blocks.{i}.attn.qkv.{kind}"] = torch.cat([s.pop(f"{p}attention.self.{n}.{kind}") for n in QKV])
            for ours, theirs in LAYER_MAP.items():
                out[f"blocks.{i}.{ours}.{kind}"] = s.pop(f"{p}{theirs}.{kind}")
    if cfg.pooler:
        out["pooler.weight"], out["pooler.bias"] = s.pop("pooler.dense.weight"), s.pop("pooler.dense.bias")
    s.pop("pooler.dense.weight", None), s.pop("pooler.dense.bias", None)
    for ours, theirs in HEAD_MAP.items():
        if f"{theirs}.weight" in s:
            out[f"{ours}.weight"], out[f"{ours}.bias"] = s.pop(f"{theirs}.weight"), s.pop(f"{theirs}.bias")
    if cfg.head in ("mlm", "pretraining"):
        bias = s.pop("cls.predictions.bias", None)
        dec_bias = s.pop("cls.predictions.decoder.bias", None)
        out["mlm.bias"] = bias if bias is not None else dec_bias
        if out["mlm.bias"] is None:
            raise KeyError("cls.predictions.bias")
        dec = s.pop("cls.predictions.decoder.weight", None)
        if not cfg.tie_embeddings:
            if dec is None:
                raise KeyError("cls.predictions.decoder.weight")
            out["mlm.decoder.weight"] = dec
    if s:
        raise CheckpointError(f"unexpected BERT weight(s) for head {cfg.head!r}: {sorted(s)[:5]}")
    return out


@register_loader("bert")
def load_bert(hf_config: dict, hf_state: dict[str, torch.Tensor], path: Path) -> Bert:
    state = canonical_keys(hf_state)
    cfg = config_from_hf(hf_config, state, path)
    model = Bert(cfg)
    try:
        ours = state_from_hf(state, cfg)
    except KeyError as e:
        raise CheckpointError(f"{path}: BERT weight {e.args[0]!r} is missing") from e
    load_state(model, ours, source=str(path))
    return model


def hf_layout_problem(cfg: BertConfig) -> str | None:
    """The config field that keeps this BERT out of Hugging Face's BertModel layout, or None."""
    if cfg.position != "learned":
        return (f"a BERT with position={cfg.position!r} has no Hugging Face BertModel layout (BertModel has "
                "a learned position table only)")
    if cfg.token_shift:
        return "a BERT with token_shift=True has no Hugging Face BertModel layout"
    if cfg.prenorm:
        return "a pre-norm BERT (prenorm=True) has no Hugging Face BertModel layout"
    if cfg.activation not in ACT_TO_HF:
        return f"activation={cfg.activation!r} has no Hugging Face hidden_act"
    if cfg.classifier_pooling != "cls":
        return f"classifier_pooling={cfg.classifier_pooling!r}: BertForSequenceClassification pools [CLS]"
    return None


def hf_config(cfg: BertConfig) -> dict:
    problem = hf_layout_problem(cfg)
    if problem is not None:
        raise ValueError(f"{problem}; it cannot be exported")
    hf = {"model_type": "bert", "architectures": [HEAD_TO_ARCH[cfg.head]], "vocab_size": cfg.vocab_size,
          "hidden_size": cfg.n_embd, "num_hidden_layers": cfg.n_layer, "num_attention_heads": cfg.n_head,
          "intermediate_size": cfg.mlp_hidden, "hidden_act": ACT_TO_HF[cfg.activation],
          "hidden_dropout_prob": cfg.dropout, "attention_probs_dropout_prob": cfg.dropout,
          "max_position_embeddings": cfg.max_positions, "type_vocab_size": cfg.type_vocab_size,
          "layer_norm_eps": cfg.norm_eps, "pad_token_id": cfg.pad_id, "initializer_range": cfg.init_std,
          "position_embedding_type": "absolute", "classifier_dropout": cfg.classifier_dropout,
          "tie_word_embeddings": cfg.tie_embeddings}
    if cfg.head in ("classify", "tag"):
        names = cfg.label_names
        hf["id2label"] = {str(i): n for i, n in enumerate(names)}
        hf["label2id"] = {n: i for i, n in enumerate(names)}
    if cfg.no_answer:
        hf["lingvis_no_answer"] = True
    return hf


def state_to_hf(model: Bert) -> dict[str, torch.Tensor]:
    cfg, own = model.config, model.state_dict()
    pre = "" if cfg.head == "none" else "bert."
    state = {pre + theirs: own[ours] for ours, theirs in EMB_MAP.items()}
    for i in range(cfg.n_layer):
        p = f"{pre}encoder.layer.{i}."
        for kind in ("weight", "bias"):
            for name, t in zip(QKV, own[f"blocks.{i}.attn.qkv.{kind}"].chunk(3, dim=0)):
                state[f"{p}attention.self.{name}.{kind}"] = t
            for ours, theirs in LAYER_MAP.items():
                state[f"{p}{theirs}.{kind}"] = own[f"blocks.{i}.{ours}.{kind}"]
    if cfg.pooler and cfg.head in HF_POOLER:
        state[pre + "pooler.dense.weight"], state[pre + "pooler.dense.bias"] = own["pooler.weight"], own["pooler.bias"]
    for ours, theirs in HEAD_MAP.items():
        if f"{ours}.weight" in own:
            state[f"{theirs}.weight"], state[f"{theirs}.bias"] = own[f"{ours}.weight"], own[f"{ours}.bias"]
    if cfg.head in ("mlm", "pretraining"):
        state["cls.predictions.bias"] = own["mlm.bias"]
        if not cfg.tie_embeddings:
            state["cls.predictions.decoder.weight"] = own["mlm.decoder.weight"]
    return state


def hf_layout(cfg: BertConfig) -> bool:
    """Whether Hugging Face BERT classes hold this model (else it is saved in the lingvis format)."""
    return hf_layout_problem(cfg) is None


@register_exporter("bert")
def save_bert(model: Bert, folder: Path) -> bool:
    cfg = model.config
    if not hf_layout(cfg):
        return False
    state = state_to_hf(model)
    save_file({k: v.detach().contiguous().cpu() for k, v in state.items()}, str(folder / "model.safetensors"),
              metadata={"format": "pt"})
    (folder / "config.json").write_text(json.dumps(hf_config(cfg), indent=2))
    write_st_files(cfg, folder)
    return True


save_bert.why_not = lambda model: hf_layout_problem(model.config)


PEFT_TASKS = {"none": "FEATURE_EXTRACTION", "classify": "SEQ_CLS", "tag": "TOKEN_CLS", "qa": "QUESTION_ANS"}


@register_layout("bert")
def adapter_layout(cfg: BertConfig) -> AdapterLayout | None:
    """PEFT names of the Linears that take LoRA adapters (the fused q/k/v rows go to query, key and value;
    lingvis adapts the block projections, peft adapters may also sit on the pooler and heads) and of the
    heads, pooler and norms PEFT may save whole (`modules_to_save`)."""
    if not hf_layout(cfg):
        return None
    pre = "" if cfg.head == "none" else "bert."
    modules, saved = {}, {"emb_ln": f"{pre}embeddings.LayerNorm"}
    for i in range(cfg.n_layer):
        layer = f"{pre}encoder.layer.{i}."
        modules[f"blocks.{i}.attn.qkv"] = tuple(f"{layer}attention.self.{n}" for n in QKV)
        for ours, theirs in LAYER_MAP.items():
            if ours.startswith("ln_"):
                saved[f"blocks.{i}.{ours}"] = layer + theirs
            else:
                modules[f"blocks.{i}.{ours}"] = (layer + theirs,)
    if cfg.pooler and cfg.head in HF_POOLER:
        saved["pooler"] = f"{pre}pooler.dense"
        modules["pooler"] = (f"{pre}pooler.dense",)  # peft's target "dense" adapts it too
    saved.update(HEAD_MAP)
    modules.update({ours: (theirs,) for ours, theirs in HEAD_MAP.items() if ours != "mlm.ln"})  # the Linears
    return AdapterLayout(modules, saved, task_type=PEFT_TASKS.get(cfg.head))
