"""Parity with transformers' BERT classes through the production converter (lingvis.load / lingvis.save)."""
import json

import pytest
import torch
from safetensors.torch import load_file, save_file

import lingvis
from lingvis.io import CheckpointError

transformers = pytest.importorskip("transformers")

V = 101
CLASSES = {"BertModel": "none", "BertForMaskedLM": "mlm", "BertForPreTraining": "pretraining",
           "BertForSequenceClassification": "classify", "BertForTokenClassification": "tag",
           "BertForQuestionAnswering": "qa"}


def tiny_config(**kw):
    base = dict(vocab_size=V, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=48,
                max_position_embeddings=40, type_vocab_size=2, hidden_dropout_prob=0.0,
                attention_probs_dropout_prob=0.0)
    return transformers.BertConfig(**{**base, **kw})


def tiny_hf(tmp_path, cls_name, **kw):
    torch.manual_seed(0)
    hf = getattr(transformers, cls_name)(tiny_config(**kw)).eval()
    with torch.no_grad():  # random LayerNorm affine too, so a swapped weight/bias cannot hide
        for name, p in hf.named_parameters():
            if "LayerNorm" in name:
                p.add_(torch.randn_like(p) * 0.1)
    hf.save_pretrained(tmp_path / cls_name)
    return hf


def batch():
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(1, V, (3, 13), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 9:] = 0
    mask[2, 4:] = 0
    types = torch.zeros_like(ids)
    types[:, 6:] = 1
    return ids, mask, types


OURS = {"none": ("hidden", "pooled"), "mlm": ("logits",), "pretraining": ("logits", "nsp_logits"),
        "classify": ("logits",), "tag": ("logits",), "qa": ("start_logits", "end_logits")}
HF = {"none": ("last_hidden_state", "pooler_output"), "mlm": ("logits",),
      "pretraining": ("prediction_logits", "seq_relationship_logits"), "classify": ("logits",), "tag": ("logits",),
      "qa": ("start_logits", "end_logits")}


def outputs_ours(out, head):
    return [getattr(out, k) for k in OURS[head]]


def outputs_hf(out, head):
    return [getattr(out, k) for k in HF[head]]


def max_diff(ours, hf, head, mask):
    diffs = []
    for a, b in zip(outputs_ours(ours, head), outputs_hf(hf, head)):
        assert a.shape == b.shape
        if a.dim() >= 2 and a.shape[:2] == mask.shape:  # per-token outputs: compare real tokens only
            a, b = a[mask.bool()], b[mask.bool()]
        diffs.append((a - b).abs().max().item())
    return max(diffs)


@pytest.mark.parametrize("cls_name", list(CLASSES))
def test_load_matches_transformers(tmp_path, cls_name):
    kw = {"num_labels": 5} if cls_name == "BertForTokenClassification" else {}
    hf = tiny_hf(tmp_path, cls_name, **kw)
    ours = lingvis.load(tmp_path / cls_name)
    assert ours.config.head == CLASSES[cls_name]
    ids, mask, types = batch()
    with torch.no_grad():
        a = ours(ids, attention_mask=mask, token_type_ids=types)
        b = hf(input_ids=ids, attention_mask=mask, token_type_ids=types)
    assert max_diff(a, b, ours.config.head, mask) <= 1e-4
    n_ours = sum(p.numel() for p in ours.parameters())
    assert n_ours == sum(p.numel() for p in hf.parameters())


@pytest.mark.parametrize("cls_name", list(CLASSES))
def test_export_round_trips_through_transformers(tmp_path, cls_name):
    head = CLASSES[cls_name]
    labels = ["B-PER", "I-PER", "O"] if head == "tag" else (["neg", "pos"] if head == "classify" else None)
    ours = lingvis.build("bert-tiny", vocab_size=V, head=head, labels=labels, pooler=head in
                         ("none", "pretraining", "classify"), dropout=0.0).eval()
    with torch.no_grad():
        for p in ours.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    lingvis.save(ours, tmp_path / "out")
    cfg = json.loads((tmp_path / "out" / "config.json").read_text())
    assert cfg["architectures"] == [cls_name]
    hf = getattr(transformers, cls_name).from_pretrained(tmp_path / "out").eval()
    if labels:
        assert [hf.config.id2label[i] for i in range(len(labels))] == labels
    back = lingvis.load(tmp_path / "out")
    assert back.config.labels == labels and back.config.head == head
    ids, mask, types = batch()
    with torch.no_grad():
        a = ours(ids, attention_mask=mask, token_type_ids=types)
        b = hf(input_ids=ids, attention_mask=mask, token_type_ids=types)
        c = back(ids, attention_mask=mask, token_type_ids=types)
    assert max_diff(a, b, head, mask) <= 1e-4
    for x, y in zip(outputs_ours(a, head), outputs_ours(c, head)):
        assert torch.equal(x, y)


def test_old_gamma_beta_names_and_untied_decoder(tmp_path):
    hf = tiny_hf(tmp_path, "BertForMaskedLM", tie_word_embeddings=False)
    path = tmp_path / "BertForMaskedLM"
    state = load_file(str(path / "model.safetensors"))
    renamed = {k.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta"): v
               for k, v in state.items()}
    assert any(k.endswith("gamma") for k in renamed)
    save_file(renamed, str(path / "model.safetensors"))
    ours = lingvis.load(path)
    assert not ours.config.tie_embeddings
    ids, mask, types = batch()
    with torch.no_grad():
        diff = (ours(ids, mask, types).logits - hf(input_ids=ids, attention_mask=mask, token_type_ids=types).logits)
    assert diff[mask.bool()].abs().max() <= 1e-4


def test_bert_base_preset_matches_transformers_parameter_count():
    model = lingvis.build("bert-base")
    assert sum(p.numel() for p in model.parameters()) == 109_482_240
    with torch.device("meta"):
        hf = transformers.BertModel(transformers.BertConfig())
    assert sum(p.numel() for p in hf.parameters()) == 109_482_240


def test_bad_bert_checkpoints_name_the_problem(tmp_path):
    tiny_hf(tmp_path, "BertModel")
    d = tmp_path / "BertModel"
    cfg = json.loads((d / "config.json").read_text())
    (d / "config.json").write_text(json.dumps({**cfg, "position_embedding_type": "relative_key"}))
    with pytest.raises(CheckpointError, match="relative_key"):
        lingvis.load(d)
    (d / "config.json").write_text(json.dumps({**cfg, "architectures": ["BertLMHeadModel"]}))
    with pytest.raises(CheckpointError, match="BertLMHeadModel"):
        lingvis.load(d)
    state = load_file(str(d / "model.safetensors"))
    del state["encoder.layer.1.intermediate.dense.weight"]
    save_file(state, str(d / "model.safetensors"))
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match=r"encoder\.layer\.1\.intermediate\.dense\.weight"):
        lingvis.load(d)
