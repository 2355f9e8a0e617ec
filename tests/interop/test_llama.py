"""Llama-family parity against transformers on tiny random configs with odd shapes: GQA (6 heads / 2 kv
heads), head_dim != width / heads, every rope_scaling type, q/k/v bias (Qwen2), q/k norm (Qwen3), a sliding
window shorter than the sequence (Mistral); logits, cached greedy decoding with left padding, export."""
import json

import pytest
import torch

import lingvis
from lingvis.io import CheckpointError
from lingvis.models.gpt import GPT

transformers = pytest.importorskip("transformers")

BASE = dict(vocab_size=97, hidden_size=48, intermediate_size=80, num_hidden_layers=2, num_attention_heads=6,
            num_key_value_heads=2, head_dim=12, max_position_embeddings=64, rms_norm_eps=1e-5,
            tie_word_embeddings=False, bos_token_id=1, eos_token_id=2, pad_token_id=0)
ROPE = {
    "default": {"rope_type": "default", "rope_theta": 500.0},
    "linear": {"rope_type": "linear", "factor": 2.5, "rope_theta": 500.0},
    "dynamic": {"rope_type": "dynamic", "factor": 3.0, "rope_theta": 500.0},
    "yarn": {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 16, "rope_theta": 500.0},
    "llama3": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
               "original_max_position_embeddings": 16, "rope_theta": 500.0},
}


def hf_model(kind: str, **kw):
    cfg_cls = {"llama": transformers.LlamaConfig, "mistral": transformers.MistralConfig,
               "qwen2": transformers.Qwen2Config, "qwen3": transformers.Qwen3Config}[kind]
    model_cls = {"llama": transformers.LlamaForCausalLM, "mistral": transformers.MistralForCausalLM,
                 "qwen2": transformers.Qwen2ForCausalLM, "qwen3": transformers.Qwen3ForCausalLM}[kind]
    torch.manual_seed(0)
    cfg = cfg_cls(**{**BASE, **kw})
    model = model_cls(cfg).eval()
    with torch.no_grad():  # random norms and biases, so that every weight matters
        for name, p in model.named_parameters():
            if name.endswith("norm.weight") or name.endswith(".bias"):
                p.copy_(torch.randn_like(p) * 0.3 + (1.0 if name.endswith("norm.weight") else 0.0))
    return model


def convert(hf, tmp_path):
    hf.save_pretrained(tmp_path / "hf", safe_serialization=True)
    return lingvis.load(tmp_path / "hf")


def batch(T=40, B=3, pad=(0, 5, 11)):
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(3, 97, (B, T), generator=g)
    mask = torch.ones(B, T, dtype=torch.long)
    for i, p in enumerate(pad[:B]):
        ids[i, :p], mask[i, :p] = 0, 0
    return ids, mask


def hf_logits(hf, ids, mask):
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        return hf(input_ids=ids, attention_mask=mask, position_ids=pos).logits


CASES = [("llama", {"rope_parameters": ROPE[k]}) for k in ROPE] + [
    ("llama", {"attention_bias": True, "mlp_bias": True, "num_key_value_heads": 1}),  # MQA, biases everywhere
    ("mistral", {"sliding_window": 7}),
    ("qwen2", {"tie_word_embeddings": True}),
    ("qwen2", {"use_sliding_window": True, "sliding_window": 6, "max_window_layers": 1}),
    ("qwen3", {}),
    ("qwen3", {"attention_bias": True, "head_dim": 16}),
]


@pytest.mark.parametrize("kind,kw", CASES, ids=[f"{k}-{'-'.join(map(str, v))}" for k, v in CASES])
def test_logits_match_transformers(kind, kw, tmp_path):
    hf = hf_model(kind, **kw)
    ours = convert(hf, tmp_path)
    assert isinstance(ours, GPT)
    ids, mask = batch()
    want = hf_logits(hf, ids, mask)
    got = ours(ids, attention_mask=mask, position_ids=(mask.cumsum(-1) - 1).clamp(min=0))
    real = mask.bool()
    assert (got - want)[real].abs().max() <= 1e-4
    full = ours(ids[:1])  # an unpadded row without a mask takes SDPA's causal path
    assert (full - want[:1]).abs().max() <= 1e-4


GEN_CASES = [("llama", {"rope_parameters": ROPE["dynamic"]}), ("llama", {"rope_parameters": ROPE["yarn"]}),
             ("mistral", {"sliding_window": 5}), ("qwen2", {}), ("qwen3", {})]


@pytest.mark.parametrize("kind,kw", GEN_CASES, ids=[k + "-" + "-".join(map(str, v.values())) for k, v in GEN_CASES])
def test_cached_greedy_generation_matches_transformers(kind, kw, tmp_path):
    hf = hf_model(kind, **kw)
    ours = convert(hf, tmp_path)
    ids, mask = batch(T=12, pad=(0, 3, 7))
    with torch.no_grad():
        want = hf.generate(input_ids=ids, attention_mask=mask, max_new_tokens=32, do_sample=False,
                           eos_token_id=None, pad_token_id=0, min_new_tokens=32)
    got = ours.generate(ids, max_new_tokens=32, attention_mask=mask)
    assert torch.equal(got, want)


def test_sliding_window_cache_never_grows_past_the_window(tmp_path):
    ours = convert(hf_model("mistral", sliding_window=5), tmp_path)
    cache = ours.new_cache(1, 40)
    ids = torch.randint(3, 97, (1, 30))
    full = ours(ids)
    steps = [ours(ids[:, :9], cache=cache)]  # a prefill longer than the window, then token by token
    for t in range(9, 30):
        steps.append(ours(ids[:, t:t + 1], cache=cache))
    assert all(k.shape[2] == 5 for k in cache.k)
    assert (torch.cat(steps, 1) - full).abs().max() <= 1e-4


def test_export_round_trips_through_transformers(tmp_path):
    for kind, kw in [("llama", {"rope_parameters": ROPE["llama3"]}), ("mistral", {"sliding_window": 7}),
                     ("qwen2", {}), ("qwen3", {})]:
        hf = hf_model(kind, **kw)
        ours = convert(hf, tmp_path / kind)
        lingvis.save(ours, tmp_path / kind / "export")
        cfg = json.loads((tmp_path / kind / "export" / "config.json").read_text())
        assert cfg["model_type"] == kind
        back = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / kind / "export").eval()
        ids, mask = batch()
        assert (hf_logits(back, ids, mask) - hf_logits(hf, ids, mask))[mask.bool()].abs().max() <= 1e-5


def test_sharded_bf16_checkpoint_loads_and_a_missing_shard_is_named(tmp_path):
    hf = hf_model("qwen2").to(torch.bfloat16)
    hf.save_pretrained(tmp_path / "hf", safe_serialization=True, max_shard_size="20KB")
    index = json.loads((tmp_path / "hf" / "model.safetensors.index.json").read_text())
    shards = sorted(set(index["weight_map"].values()))
    assert len(shards) > 2
    ours = lingvis.load(tmp_path / "hf")
    assert ours.wte.weight.dtype == torch.float32
    assert torch.equal(ours.wte.weight, hf.model.embed_tokens.weight.float())
    (tmp_path / "hf" / shards[1]).unlink()
    with pytest.raises(CheckpointError, match=shards[1]):
        lingvis.load(tmp_path / "hf")


def test_unsupported_config_values_are_named(tmp_path):
    hf = hf_model("llama")
    hf.save_pretrained(tmp_path / "hf", safe_serialization=True)
    cfg_path = tmp_path / "hf" / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["rope_parameters"] = {"rope_type": "fancy", "rope_theta": 10000.0, "factor": 2.0}
    cfg_path.write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="rope_type 'fancy'"):
        lingvis.load(tmp_path / "hf")
    cfg["rope_parameters"] = {"rope_type": "default", "rope_theta": 10000.0}
    cfg["pretraining_tp"] = 2
    cfg_path.write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="pretraining_tp"):
        lingvis.load(tmp_path / "hf")


def test_fp16_checkpoint_loads_as_fp32(tmp_path):
    hf = hf_model("llama").to(torch.float16)
    hf.save_pretrained(tmp_path / "hf", safe_serialization=True)
    ours = lingvis.load(tmp_path / "hf")
    assert all(p.dtype == torch.float32 for p in ours.parameters())
    assert torch.equal(ours.wte.weight, hf.model.embed_tokens.weight.float())
    assert torch.equal(ours.lm_head.weight, hf.lm_head.weight.float())
    ids, mask = batch()
    want = hf_logits(hf.float(), ids, mask)  # the fp16 weights, computed in fp32 on both sides
    got = ours(ids, attention_mask=mask, position_ids=(mask.cumsum(-1) - 1).clamp(min=0))
    assert (got - want)[mask.bool()].abs().max() <= 1e-4
