"""BERT model: heads, masks, presets, re-heading."""
import pytest
import torch

import lingvis
from lingvis.models.bert import Bert, BertConfig, with_head

V = 60


def tiny(head="none", **kw):
    torch.manual_seed(0)
    return lingvis.build("bert-tiny", vocab_size=V, head=head, dropout=0.0, **kw).eval()


@pytest.mark.parametrize("head,field,shape", [
    ("none", "hidden", (2, 7, 128)), ("mlm", "logits", (2, 7, V)), ("pretraining", "nsp_logits", (2, 2)),
    ("classify", "logits", (2, 3)), ("tag", "logits", (2, 7, 3)), ("qa", "start_logits", (2, 7))])
def test_heads_output_shapes(head, field, shape):
    model = tiny(head, labels=["a", "b", "c"] if head in ("classify", "tag") else None,
                 pooler=head in ("none", "pretraining", "classify"))
    out = model(torch.randint(0, V, (2, 7)))
    assert tuple(getattr(out, field).shape) == shape


def test_padding_does_not_change_real_token_outputs():
    model = tiny("classify", labels=["x", "y"])
    ids = torch.randint(5, V, (1, 6))
    alone = model(ids)
    padded = torch.cat([ids, torch.zeros(1, 4, dtype=torch.long)], dim=1)
    mask = torch.tensor([[1] * 6 + [0] * 4])
    batched = model(padded, attention_mask=mask)
    assert torch.allclose(alone.hidden, batched.hidden[:, :6], atol=1e-5)
    assert torch.allclose(alone.logits, batched.logits, atol=1e-5)
    unmasked = model(padded)  # attending to padding changes the result: the mask is really applied
    assert not torch.allclose(alone.hidden, unmasked.hidden[:, :6], atol=1e-3)


def test_packed_encoding_equals_separate_sequences():
    model = tiny()
    seqs = [torch.randint(5, V, (n,)) for n in (3, 9, 5)]
    packed = model.encode_packed(torch.cat(seqs), [3, 9, 5])  # (17, C)
    alone = torch.cat([model.encode(s[None])[0] for s in seqs])
    assert torch.allclose(packed, alone, atol=1e-5)
    with pytest.raises(ValueError, match="lengths sum to 16"):
        model.encode_packed(torch.cat(seqs), [3, 9, 4])


def test_mean_pooled_classifier_ignores_padding_and_stays_native(tmp_path):
    model = tiny("classify", labels=["x", "y"], classifier_pooling="mean")
    ids = torch.randint(5, V, (1, 6))
    padded = torch.cat([ids, torch.zeros(1, 3, dtype=torch.long)], dim=1)
    out = model(padded, attention_mask=torch.tensor([[1] * 6 + [0] * 3])).logits
    assert torch.allclose(model(ids).logits, out, atol=1e-5)
    assert not torch.allclose(tiny("classify", labels=["x", "y"])(ids).logits, model(ids).logits)
    lingvis.save(model, tmp_path / "m")  # no HF class pools the mean: written in lingvis format
    assert (tmp_path / "m" / "lingvis.json").is_file() and not (tmp_path / "m" / "config.json").exists()
    assert lingvis.load(tmp_path / "m").config.classifier_pooling == "mean"


def test_segment_ids_matter_and_positions_are_checked():
    model = tiny()
    ids = torch.randint(5, V, (1, 8))
    a = model(ids).hidden
    b = model(ids, token_type_ids=torch.tensor([[0] * 4 + [1] * 4])).hidden
    assert not torch.allclose(a, b)
    with pytest.raises(ValueError, match="exceeds max_positions 128"):
        model(torch.zeros(1, 129, dtype=torch.long))


def test_mlm_positions_select_rows_and_decoder_is_tied():
    model = tiny("pretraining")
    assert model.mlm.decoder.weight is model.tok_emb.weight
    ids = torch.randint(5, V, (2, 9))
    chosen = torch.zeros(2, 9, dtype=torch.bool)
    chosen[0, 2], chosen[1, 5], chosen[1, 7] = True, True, True
    full = model(ids).logits
    part = model(ids, mlm_positions=chosen).logits
    assert part.shape == (3, V)
    assert torch.allclose(part, full[chosen], atol=1e-5)


def test_every_parameter_gets_a_gradient():
    model = tiny("pretraining").train()
    out = model(torch.randint(0, V, (2, 10)))
    (out.logits.logsumexp(-1).mean() + out.nsp_logits.sum()).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []


def test_with_head_keeps_the_encoder_and_adds_a_fresh_head():
    pre = tiny("pretraining")
    tagger = with_head(pre, "tag", labels=["O", "B-X", "I-X"]).eval()
    assert tagger.config.labels == ["O", "B-X", "I-X"] and tagger.config.num_labels == 3
    assert tagger.pooler is None and tagger.mlm is None
    ids = torch.randint(5, V, (1, 6))
    assert torch.allclose(pre(ids).hidden, tagger(ids).hidden, atol=1e-6)
    clf = with_head(pre, "classify", labels=["p", "q"]).eval()
    assert torch.allclose(pre(ids).pooled, clf(ids).pooled, atol=1e-6)


def test_config_validation_names_the_problem():
    with pytest.raises(ValueError, match="unknown BERT head 'ner'"):
        BertConfig(head="ner")
    with pytest.raises(ValueError, match="needs pooler=True"):
        BertConfig(head="classify", pooler=False)
    with pytest.raises(ValueError, match="duplicate label"):
        BertConfig(head="classify", labels=["a", "a"])
    with pytest.raises(ValueError, match="unknown pooling"):
        BertConfig(pooling="median")
    assert BertConfig(head="tag", labels=["O", "B-A"]).num_labels == 2


def test_presets_and_family_registration():
    assert {"bert-base", "bert-large", "bert-mini", "bert-tiny", "minilm-l6"} <= set(lingvis.list_presets("bert"))
    assert isinstance(lingvis.build("bert-tiny"), Bert)
    assert sum(p.numel() for p in lingvis.build("bert-base").parameters()) == 109_482_240


def test_native_checkpoint_round_trip_keeps_labels(tmp_path):
    model = tiny("tag", labels=["O", "B-PER", "I-PER"])
    lingvis.save(model, tmp_path / "m", format="lingvis")
    back = lingvis.load(tmp_path / "m")
    assert back.config.labels == ["O", "B-PER", "I-PER"]
    ids = torch.randint(0, V, (1, 5))
    assert torch.equal(model(ids).logits, back(ids).logits)


def test_prenorm_preset_has_final_norm_and_saves_in_lingvis_format(tmp_path):
    from lingvis.interop.bert import hf_config

    torch.manual_seed(0)
    model = lingvis.build("bert-tiny-preln", vocab_size=V, head="mlm").eval()
    assert model.config.prenorm and model.config.dropout == 0.0
    assert all(b.prenorm for b in model.blocks) and "ln_f.weight" in model.state_dict()
    assert "ln_f.weight" not in tiny().state_dict()  # the post-norm (HF) layout is unchanged
    ids = torch.randint(5, V, (2, 7))
    h = model.encode(ids)  # (B, T, C): ends in the final LayerNorm (weight 1, bias 0 at init)
    assert torch.allclose(h.mean(-1), torch.zeros(2, 7), atol=1e-5)
    with torch.no_grad():
        model.ln_f.bias.fill_(0.5)
    assert torch.allclose(model.encode(ids).mean(-1), torch.full((2, 7), 0.5), atol=1e-5)
    with pytest.raises(ValueError, match="pre-norm BERT"):
        hf_config(model.config)
    lingvis.save(model, tmp_path / "m")  # no HF class: written in lingvis format
    assert (tmp_path / "m" / "lingvis.json").is_file() and not (tmp_path / "m" / "config.json").exists()
    back = lingvis.load(tmp_path / "m")
    assert back.config.prenorm and torch.equal(back(ids).logits, model(ids).logits)
    reheaded = with_head(back, "classify", labels=["a", "b"]).eval()  # keeps the final norm's weights
    assert torch.equal(reheaded.encode(ids), model.encode(ids))


def rope(head="mlm", **kw):
    torch.manual_seed(0)
    return lingvis.build("bert-tiny-rope", vocab_size=V, head=head, **kw).eval()


def test_rotary_preset_has_no_position_table_and_shapes():
    model = rope("pretraining")
    assert model.config.position == "rotary" and model.pos_emb is None and model.rope is not None
    assert not any("pos_emb" in k or "rope" in k for k in model.state_dict())  # angles are not weights
    out = model(torch.randint(5, V, (2, 9)), mlm_positions=torch.rand(2, 9) < 0.5)
    assert out.hidden.shape == (2, 9, 128) and out.nsp_logits.shape == (2, 2) and out.logits.shape[1] == V
    with pytest.raises(ValueError, match="unknown BERT position 'alibi'"):
        BertConfig(position="alibi")


def test_rotary_positions_are_relative():
    # a pre-norm rotary encoder without a position table: shifting every position id by the same amount
    # leaves the outputs unchanged (attention sees only offsets); learned positions do change them
    model = rope("none")
    ids = torch.randint(5, V, (2, 7))
    pos = torch.arange(7)[None].expand(2, 7)
    assert torch.allclose(model.encode(ids, position_ids=pos), model.encode(ids, position_ids=pos + 11), atol=1e-4)
    learned = lingvis.build("bert-tiny-preln", vocab_size=V).eval()
    assert not torch.allclose(learned.encode(ids, position_ids=pos), learned.encode(ids, position_ids=pos + 11),
                              atol=1e-3)
    # ...but order matters: a permuted sequence is not the permuted output (it would be without positions)
    perm = torch.tensor([3, 0, 6, 1, 5, 2, 4])
    assert not torch.allclose(model.encode(ids[:, perm]), model.encode(ids)[:, perm], atol=1e-3)


def test_rotary_padding_mask_and_packing():
    model = rope("none")
    ids = torch.randint(5, V, (1, 6))
    padded = torch.cat([ids, torch.zeros(1, 4, dtype=torch.long)], dim=1)
    batched = model.encode(padded, attention_mask=torch.tensor([[1] * 6 + [0] * 4]))
    assert torch.allclose(model.encode(ids), batched[:, :6], atol=1e-5)
    assert not torch.allclose(model.encode(ids), model.encode(padded)[:, :6], atol=1e-3)
    seqs = [torch.randint(5, V, (n,)) for n in (3, 9, 5)]
    packed = model.encode_packed(torch.cat(seqs), [3, 9, 5])  # positions restart per sequence
    assert torch.allclose(packed, torch.cat([model.encode(s[None])[0] for s in seqs]), atol=1e-5)


def test_rotary_saves_natively_reheads_and_refuses_hf_export(tmp_path):
    from lingvis.interop.bert import hf_config

    model = rope("mlm")
    ids = torch.randint(5, V, (2, 7))
    with pytest.raises(ValueError, match="position='rotary'"):
        hf_config(model.config)
    with pytest.raises(ValueError, match="position='rotary'"):
        lingvis.save(model, tmp_path / "hf", format="hf")
    lingvis.save(model, tmp_path / "m")  # auto: lingvis format
    assert (tmp_path / "m" / "lingvis.json").is_file() and not (tmp_path / "m" / "config.json").exists()
    back = lingvis.load(tmp_path / "m")
    assert back.config.position == "rotary" and torch.equal(back(ids).logits, model(ids).logits)
    reheaded = with_head(back, "classify", labels=["a", "b"]).eval()
    assert reheaded.rope is not None and torch.equal(reheaded.encode(ids), model.encode(ids))
    reheaded(ids).logits.sum().backward()
    assert all(p.grad is not None for p in reheaded.parameters() if p.requires_grad)
