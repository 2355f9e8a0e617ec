"""LoRA: only adapters train; merged export opens with plain `lingvis.load` and matches the adapter model."""
from __future__ import annotations

import pytest
import torch

import lingvis
from lingvis.data.packing import PackedLMDataset
from lingvis.api import export_merged
from lingvis.lora import LoRAConfig, LoRALinear, apply_lora, lora_parameters
from lingvis.models import FAMILIES
from lingvis.tasks.lm import CausalLMTask
from lingvis.train.config import TrainConfig
from lingvis.train.trainer import Trainer


def _gpt():
    torch.manual_seed(0)
    return lingvis.build("gpt-nano", vocab_size=32, block_size=16)


def _randomise_adapters(model: torch.nn.Module) -> None:
    """lora_B starts at zero (a no-op); give it values so a wrong merge cannot pass."""
    torch.manual_seed(1)
    with torch.no_grad():
        for p in lora_parameters(model).values():
            p.normal_(std=0.05)


def test_trainer_updates_only_adapters_and_run_folder_loads_merged(tmp_path):
    model = _gpt()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    ids = (torch.arange(16 * 40 + 1) * 3) % 32
    cfg = TrainConfig(max_steps=3, batch_size=4, lr=5e-2, warmup_steps=1, eval_every=3, eval_batches=1,
                      device="cpu", progress=False, seed=0, lora_rank=4, weight_decay=0.1)
    trainer = Trainer(model, CausalLMTask(), PackedLMDataset(ids, 16), PackedLMDataset(ids[:200], 16), cfg,
                      tmp_path / "run")
    trainable = {n for n, p in trainer.model.named_parameters() if p.requires_grad}
    assert trainable == set(lora_parameters(trainer.model)) and trainable
    assert all(".lora_A" in n or ".lora_B" in n for n in trainable)
    trainer.fit()
    after = trainer.model.state_dict()
    for k, v in before.items():  # every pretrained tensor is bit-for-bit unchanged (weight decay included)
        assert torch.equal(after[k], v), k
    assert any(not torch.equal(p, torch.zeros_like(p)) for n, p in lora_parameters(trainer.model).items()
               if n.endswith("lora_B"))

    x = torch.randint(0, 32, (2, 16))
    trainer.model.eval()
    loaded = lingvis.load(tmp_path / "run")  # checkpoint = base + adapters, opened merged
    assert not any(isinstance(m, LoRALinear) for m in loaded.modules())
    torch.testing.assert_close(loaded(x), trainer.model(x), rtol=1e-5, atol=1e-5)


def test_gpt_merged_export_matches_adapter_model(tmp_path):
    model = _gpt()
    names = apply_lora(model, LoRAConfig(rank=4, alpha=8))
    assert "blocks.0.attn.qkv" in names and "blocks.1.mlp.fc" in names and len(names) == 8
    _randomise_adapters(model)
    model.eval()
    x = torch.randint(0, 32, (2, 16))
    export_merged(model, tmp_path / "merged")
    assert (tmp_path / "merged" / "config.json").is_file()  # GPT-2 family: written in Hugging Face format
    merged = lingvis.load(tmp_path / "merged")
    assert any(isinstance(m, LoRALinear) for m in model.modules())  # the adapter model is left as it was
    base = _gpt().eval()
    assert (merged(x) - base(x)).abs().max() > 1e-3  # the adapters do change the outputs
    torch.testing.assert_close(merged(x), model(x), rtol=1e-5, atol=1e-5)


@pytest.mark.skipif("bert" not in FAMILIES, reason="BERT family not built yet")
def test_bert_classifier_adapters_keep_the_new_head_trainable(tmp_path):
    torch.manual_seed(0)
    model = lingvis.build("bert-tiny", vocab_size=50, head="classify", num_labels=3, dropout=0.0)
    apply_lora(model, LoRAConfig(rank=2, train=("classifier",)))
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert {n for n in trainable if "lora_" not in n} == {"classifier.weight", "classifier.bias"}
    _randomise_adapters(model)
    model.eval()
    export_merged(model, tmp_path / "bert")
    merged = lingvis.load(tmp_path / "bert")
    x = torch.randint(1, 50, (2, 12))
    torch.testing.assert_close(merged(x).logits, model(x).logits, rtol=1e-5, atol=1e-5)


@pytest.mark.skipif("seq2seq" not in FAMILIES, reason="encoder-decoder family not built yet")
def test_seq2seq_adapters_cover_cross_attention(tmp_path):
    torch.manual_seed(0)
    model = lingvis.build("transformer-nano", vocab_size=40)
    names = apply_lora(model, LoRAConfig(rank=2))
    assert any(n.endswith("cross_attn.q") for n in names) and any(n.endswith("cross_attn.kv") for n in names)
    _randomise_adapters(model)
    model.eval()
    export_merged(model, tmp_path / "mt")
    merged = lingvis.load(tmp_path / "mt")
    src, tgt = torch.randint(4, 40, (2, 7)), torch.randint(4, 40, (2, 5))
    torch.testing.assert_close(merged(src, tgt), model(src, tgt), rtol=1e-5, atol=1e-5)


def test_bad_lora_settings_are_named():
    with pytest.raises(ValueError, match="rank must be >= 1"):
        LoRAConfig(rank=0)
    with pytest.raises(ValueError, match="unknown LoRA target"):
        LoRAConfig(targets=("c_attn",))
    model = _gpt()
    apply_lora(model, LoRAConfig(rank=2))
    with pytest.raises(ValueError, match="already has LoRA"):
        apply_lora(model, LoRAConfig(rank=2))
    with pytest.raises(ValueError, match="no .* projections"):
        apply_lora(torch.nn.Sequential(torch.nn.Linear(4, 4)), LoRAConfig(rank=2))
