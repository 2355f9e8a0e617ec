"""LoRA adapters in the PEFT format, against `peft` itself: lingvis adapters (from a model, a training
checkpoint, `lingvis convert --adapter-only`) load with `PeftModel.from_pretrained` on the Hugging Face
export of the base with the same logits; adapters made by peft merge into lingvis models with the same
logits. Tiny random GPT-2 and BERT configs with odd sizes."""
from __future__ import annotations

import json

import pytest
import torch

import lingvis
from lingvis.cli import main
from lingvis.interop.adapters import ADAPTER_CONFIG, ADAPTER_WEIGHTS, AdapterError, apply_adapter, save_adapter
from lingvis.lora import LoRAConfig, apply_lora, lora_parameters

transformers = pytest.importorskip("transformers")
peft = pytest.importorskip("peft")
ATOL = 1e-5


def _randomise(model, names=("lora_",)) -> None:
    """lora_B starts at zero (a no-op); random values so a wrong mapping cannot pass."""
    torch.manual_seed(1)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if any(k in n for k in names):
                p.normal_(std=0.2)


def _gpt():
    torch.manual_seed(0)
    return lingvis.build("gpt-nano", vocab_size=37, block_size=16, n_embd=24, n_head=3, dropout=0.0).eval()


def _ids(vocab=37):
    return torch.randint(0, vocab, (2, 11), generator=torch.Generator().manual_seed(2))


def test_gpt2_adapter_loads_in_peft_with_the_same_logits(tmp_path):
    model = _gpt()
    lingvis.save(model, tmp_path / "base", format="hf")
    apply_lora(model, LoRAConfig(rank=3, alpha=5.0, train=("ln_f",)))
    _randomise(model, ("lora_", "ln_f"))
    save_adapter(model, tmp_path / "adapter")
    cfg = json.loads((tmp_path / "adapter" / ADAPTER_CONFIG).read_text())
    assert cfg["peft_type"] == "LORA" and cfg["task_type"] == "CAUSAL_LM" and cfg["fan_in_fan_out"] is True
    assert cfg["modules_to_save"] == ["transformer.ln_f"]

    hf = transformers.GPT2LMHeadModel.from_pretrained(tmp_path / "base").eval()
    peft_model = peft.PeftModel.from_pretrained(hf, tmp_path / "adapter").eval()
    x = _ids()
    with torch.no_grad():
        ours, theirs = model(x), peft_model(input_ids=x).logits
        plain = transformers.GPT2LMHeadModel.from_pretrained(tmp_path / "base").eval()(input_ids=x).logits
    assert (ours - plain).abs().max() > 1e-2  # the adapter changes the outputs
    torch.testing.assert_close(theirs, ours, atol=ATOL, rtol=0)


def _bert_base(tmp_path, head_cls="BertForSequenceClassification", **kw):
    torch.manual_seed(0)
    cfg = transformers.BertConfig(vocab_size=41, hidden_size=30, num_hidden_layers=2, num_attention_heads=3,
                                  intermediate_size=22, max_position_embeddings=24, hidden_dropout_prob=0.0,
                                  attention_probs_dropout_prob=0.0, num_labels=3, **kw)
    getattr(transformers, head_cls)(cfg).eval().save_pretrained(tmp_path / "base")
    return tmp_path / "base"


def test_bert_fused_qkv_adapter_and_trained_head_load_in_peft(tmp_path):
    base = _bert_base(tmp_path)
    model = lingvis.load(base)
    apply_lora(model, LoRAConfig(rank=2, alpha=7.0, targets=("qkv", "proj", "fc"), train=("classifier",)))
    _randomise(model, ("lora_", "classifier"))
    save_adapter(model, tmp_path / "adapter")
    cfg = json.loads((tmp_path / "adapter" / ADAPTER_CONFIG).read_text())
    assert cfg["task_type"] == "SEQ_CLS" and cfg["modules_to_save"] == ["classifier"]
    assert "bert.encoder.layer.1.attention.self.value" in cfg["target_modules"]

    hf = transformers.BertForSequenceClassification.from_pretrained(base).eval()
    peft_model = peft.PeftModel.from_pretrained(hf, tmp_path / "adapter").eval()
    x = _ids(41)
    mask = torch.ones_like(x)
    mask[1, 7:] = 0
    with torch.no_grad():
        ours = model.eval()(x, attention_mask=mask).logits
        theirs = peft_model(input_ids=x, attention_mask=mask).logits
    torch.testing.assert_close(theirs, ours, atol=ATOL, rtol=0)


@pytest.mark.parametrize("family", ["gpt2", "bert"])
def test_peft_adapters_merge_into_lingvis_models(tmp_path, family):
    """An adapter trained with peft (separate q/k/v for BERT, rsLoRA and a per-module alpha) opens in lingvis."""
    if family == "gpt2":
        _gpt_base = _gpt()
        lingvis.save(_gpt_base, tmp_path / "base", format="hf")
        hf = transformers.GPT2LMHeadModel.from_pretrained(tmp_path / "base")
        lcfg = peft.LoraConfig(task_type="CAUSAL_LM", r=4, lora_alpha=6, target_modules=["c_attn", "c_proj", "c_fc"],
                               fan_in_fan_out=True, init_lora_weights=False, use_rslora=True,
                               alpha_pattern={"mlp.c_fc": 3})
        x = _ids()
    else:
        base = _bert_base(tmp_path, "BertModel")
        hf = transformers.BertModel.from_pretrained(base)
        lcfg = peft.LoraConfig(task_type="FEATURE_EXTRACTION", r=3, lora_alpha=5, init_lora_weights=False,
                               target_modules=["query", "key", "value", "dense"])
        x = _ids(41)
    peft_model = peft.get_peft_model(hf, lcfg).eval()
    peft_model.save_pretrained(tmp_path / "adapter")
    ours = apply_adapter(lingvis.load(tmp_path / "base"), tmp_path / "adapter")
    with torch.no_grad():
        if family == "gpt2":
            got, want = ours(x), peft_model(input_ids=x).logits
            assert (got - lingvis.load(tmp_path / "base")(x)).abs().max() > 1e-2  # the adapter matters
        else:  # BertModel carries a pooler: "dense" adapts it too
            out, ref = ours(x), peft_model(input_ids=x)
            got, want = torch.cat([out.hidden.flatten(), out.pooled.flatten()]), \
                torch.cat([ref.last_hidden_state.flatten(), ref.pooler_output.flatten()])
    torch.testing.assert_close(got, want, atol=ATOL, rtol=0)


def test_lora_run_checkpoint_and_cli_export_load_in_peft_and_lingvis(tmp_path):
    """A LoRA training run's checkpoint holds PEFT files; `lingvis save --adapter-only --base-out` writes an
    adapter + HF base that peft and `lingvis.load(adapter)` open with the run's logits."""
    from lingvis.data.packing import PackedLMDataset
    from lingvis.tasks.lm import CausalLMTask
    from lingvis.train.config import TrainConfig
    from lingvis.train.trainer import Trainer

    ids = (torch.arange(16 * 40 + 1) * 3) % 37
    cfg = TrainConfig(max_steps=2, batch_size=4, lr=5e-2, warmup_steps=1, eval_every=2, eval_batches=1,
                      device="cpu", progress=False, seed=0, lora_rank=4)
    Trainer(_gpt().train(), CausalLMTask(), PackedLMDataset(ids, 16), PackedLMDataset(ids[:200], 16), cfg,
            tmp_path / "run").fit()
    ckpt = tmp_path / "run" / "checkpoints" / "step-0000002"
    assert (ckpt / ADAPTER_CONFIG).is_file() and (ckpt / ADAPTER_WEIGHTS).is_file()

    assert main(["save", str(tmp_path / "run"), str(tmp_path / "adapter"), "--adapter-only",
                 "--base-out", str(tmp_path / "base")]) == 0
    run_model = lingvis.load(tmp_path / "run")  # base + adapters, merged
    hf = transformers.GPT2LMHeadModel.from_pretrained(tmp_path / "base").eval()
    x = _ids()
    with torch.no_grad():
        want = run_model(x)
        from_ckpt = peft.PeftModel.from_pretrained(hf, ckpt).eval()(input_ids=x).logits
        hf2 = transformers.GPT2LMHeadModel.from_pretrained(tmp_path / "base").eval()
        from_cli = peft.PeftModel.from_pretrained(hf2, tmp_path / "adapter").eval()(input_ids=x).logits
        via_lingvis = lingvis.load(tmp_path / "adapter")(x)  # base_model_name_or_path + merge
    plain = transformers.GPT2LMHeadModel.from_pretrained(tmp_path / "base").eval()(input_ids=x).logits.detach()
    assert (want - plain).abs().max() > 1e-3  # training moved the adapters
    for got in (from_ckpt, from_cli, via_lingvis):
        torch.testing.assert_close(got, want, atol=ATOL, rtol=0)


def test_unsupported_adapters_are_named(tmp_path):
    model = _gpt()
    apply_lora(model, LoRAConfig(rank=2, train=("wte",)))
    with pytest.raises(AdapterError, match=r"trained module\(s\) \['wte'\]"):
        save_adapter(model, tmp_path / "a")
    with pytest.raises(AdapterError, match="no LoRA adapters"):
        save_adapter(_gpt(), tmp_path / "b")
    (tmp_path / "dora").mkdir()
    (tmp_path / "dora" / ADAPTER_CONFIG).write_text(json.dumps({"peft_type": "LORA", "use_dora": True}))
    with pytest.raises(AdapterError, match="DoRA"):
        apply_adapter(_gpt(), tmp_path / "dora")
    assert not lora_parameters(_gpt())
    assert main(["convert", str(tmp_path), str(tmp_path / "x"), "--base-out", "y"]) == 2  # needs --adapter-only
