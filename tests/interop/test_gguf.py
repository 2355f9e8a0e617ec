"""GGUF export/import (llama.cpp): every tensor checked against the weights through an independent name map
and llama.cpp's own q/k permutation, metadata keys, transformers' GGUF reader as the parity reference,
round trips through `lingvis.load(file.gguf)`, tokenizer metadata, and errors."""
import json

import numpy as np
import pytest
import torch

import lingvis
from lingvis.interop.gguf_export import export_gguf
from lingvis.io import CheckpointError
from lingvis.models.gpt import GPT, GPTConfig

gguf = pytest.importorskip("gguf")

LLAMA = dict(norm="rmsnorm", activation="swiglu", position="rotary", bias=False)
CONFIGS = {  # odd shapes: GQA, head_dim != width / heads, widths that are not multiples of 32
    "gpt2": dict(n_layer=2, n_head=4, n_embd=64, vocab_size=101, block_size=48),
    "gpt2-untied": dict(n_layer=2, n_head=3, n_embd=48, vocab_size=101, block_size=48, tie_embeddings=False),
    "llama": dict(LLAMA, n_layer=2, n_head=6, n_kv_head=2, head_dim=12, n_embd=64, mlp_hidden=96, vocab_size=97,
                  block_size=48, tie_embeddings=False),
    "llama3-rope": dict(LLAMA, n_layer=2, n_head=4, n_kv_head=1, n_embd=64, mlp_hidden=96, vocab_size=97,
                        block_size=48, rope_theta=500.0,
                        rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                      "high_freq_factor": 4.0, "original_max_position_embeddings": 16}),
    "mistral": dict(LLAMA, n_layer=2, n_head=4, n_kv_head=2, n_embd=64, mlp_hidden=96, vocab_size=97,
                    block_size=48, sliding_window=7, tie_embeddings=False),
    "qwen2": dict(LLAMA, n_layer=2, n_head=4, n_kv_head=2, n_embd=64, mlp_hidden=96, vocab_size=97, block_size=48,
                  qkv_bias=True, rope_scaling={"rope_type": "linear", "factor": 2.0}),
    "qwen3": dict(LLAMA, n_layer=2, n_head=4, n_kv_head=2, head_dim=24, n_embd=64, mlp_hidden=96, vocab_size=97,
                  block_size=48, qk_norm=True),
}
ARCH = {"gpt2": "gpt2", "gpt2-untied": "gpt2", "llama": "llama", "llama3-rope": "llama", "mistral": "llama",
        "qwen2": "qwen2", "qwen3": "qwen3"}


def model_of(name: str, seed: int = 0) -> GPT:
    torch.manual_seed(seed)
    m = GPT(GPTConfig(**CONFIGS[name])).eval()
    with torch.no_grad():  # random norms and biases so that every tensor matters
        for n, p in m.named_parameters():
            if p.dim() == 1:
                p.copy_(torch.randn_like(p) * 0.3 + (1.0 if "ln" in n or "norm" in n else 0.0))
    return m


def export(model, tmp_path, dtype="f32", tokenizer=None, name="m"):
    with pytest.warns(UserWarning, match="sliding window") if model.config.sliding_window else _nullctx():
        return export_gguf(model, tmp_path / f"{name}.{dtype}.gguf", tokenizer=tokenizer, dtype=dtype)


class _nullctx:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


def read(path):
    r = gguf.GGUFReader(str(path))
    fields = {k: f.contents() for k, f in r.fields.items()}
    return fields, {t.name: t for t in r.tensors}


# --- the expected GGUF tensors, from the Hugging Face export and llama.cpp's converter rules -------------
def llama_cpp_permute(w, n_head, n_head_kv=None):  # convert_hf_to_gguf.py LlamaModel.permute
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


HF_TO_GGUF_LLAMA = {"input_layernorm": "attn_norm", "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k",
                    "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output",
                    "post_attention_layernorm": "ffn_norm", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
                    "mlp.down_proj": "ffn_down", "self_attn.q_norm": "attn_q_norm", "self_attn.k_norm": "attn_k_norm"}
HF_TO_GGUF_GPT2 = {"ln_1": "attn_norm", "attn.c_attn": "attn_qkv", "attn.c_proj": "attn_output", "ln_2": "ffn_norm",
                   "mlp.c_fc": "ffn_up", "mlp.c_proj": "ffn_down"}


def expected_tensors(model, tmp_path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    lingvis.save(model, tmp_path / "hf", format="hf")
    hf = load_file(str(tmp_path / "hf" / "model.safetensors"))
    cfg = json.loads((tmp_path / "hf" / "config.json").read_text())
    out = {}
    if cfg["model_type"] == "gpt2":
        for k, v in hf.items():
            k = k.removeprefix("transformer.")
            top = {"wte.weight": "token_embd.weight", "wpe.weight": "position_embd.weight",
                   "ln_f.weight": "output_norm.weight", "ln_f.bias": "output_norm.bias",
                   "lm_head.weight": "output.weight"}
            if k in top:
                out[top[k]] = v
                continue
            _, i, rest = k.split(".", 2)
            mod, kind = rest.rsplit(".", 1)
            out[f"blk.{i}.{HF_TO_GGUF_GPT2[mod]}.{kind}"] = v.T if kind == "weight" and mod != "ln_1" \
                and mod != "ln_2" else v
        return out
    permuted = cfg["model_type"] in ("llama", "mistral")
    for k, v in hf.items():
        top = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
               "lm_head.weight": "output.weight"}
        if k in top:
            out[top[k]] = v
            continue
        _, _, i, rest = k.split(".", 3)
        mod, kind = rest.rsplit(".", 1)
        if permuted and mod == "self_attn.q_proj":
            v = llama_cpp_permute(v, cfg["num_attention_heads"], cfg["num_attention_heads"])
        if permuted and mod == "self_attn.k_proj":
            v = llama_cpp_permute(v, cfg["num_attention_heads"], cfg["num_key_value_heads"])
        out[f"blk.{i}.{HF_TO_GGUF_LLAMA[mod]}.{kind}"] = v
    return out


def check_q8_0(raw: np.ndarray, w: np.ndarray, name: str) -> None:
    """Each block of 32 holds round(w / d) * fp16(d) with d = absmax / 127: within half a step of w."""
    deq = gguf.quants.dequantize(raw, gguf.GGMLQuantizationType.Q8_0)
    blocks, got = w.reshape(-1, 32).astype(np.float64), deq.reshape(-1, 32).astype(np.float64)
    d32 = np.abs(blocks).max(axis=1, keepdims=True) / 127
    d16 = d32.astype(np.float16).astype(np.float64)
    bound = d32 / 2 + 127 * np.abs(d32 - d16) + 1e-7
    assert (np.abs(got - blocks) <= bound).all(), name
    assert np.abs(got - blocks).max() > 0, f"{name}: q8_0 data identical to fp32 (not quantised?)"


@pytest.mark.parametrize("dtype", ["f32", "f16", "q8_0"])
@pytest.mark.parametrize("name", list(CONFIGS))
def test_every_tensor_matches_the_weights(tmp_path, name, dtype):
    model = model_of(name)
    fields, tensors = read(export(model, tmp_path, dtype))
    want = expected_tensors(model, tmp_path)
    assert fields["general.architecture"] == ARCH[name]
    assert set(tensors) - {"rope_freqs.weight"} == set(want)
    T = gguf.GGMLQuantizationType
    for tname, w in want.items():
        t = tensors[tname]
        w = w.float().numpy()
        assert tuple(reversed(t.shape.tolist())) == w.shape, tname
        one_d_or_norm = w.ndim == 1 or tname.endswith("_norm.weight") or tname == "position_embd.weight"
        kind = "f32" if one_d_or_norm else ("f16" if dtype == "q8_0" and w.shape[-1] % 32 else dtype)
        assert t.tensor_type == {"f32": T.F32, "f16": T.F16, "q8_0": T.Q8_0}[kind], tname
        if kind == "f32":
            np.testing.assert_array_equal(np.asarray(t.data), w, err_msg=tname)
        elif kind == "f16":
            np.testing.assert_array_equal(np.asarray(t.data), w.astype(np.float16), err_msg=tname)
        else:
            check_q8_0(np.asarray(t.data), w, tname)
    if dtype == "q8_0":
        assert any(t.tensor_type == T.Q8_0 for t in tensors.values())


def test_llama3_rope_factors(tmp_path):
    """rope_freqs holds llama.cpp's per-frequency divisors (its converter's formula, computed here)."""
    import math

    model = model_of("llama3-rope")
    _, tensors = read(export(model, tmp_path))
    s, D = CONFIGS["llama3-rope"]["rope_scaling"], 64 // 4
    freqs = 1.0 / (500.0 ** (torch.arange(0, D, 2, dtype=torch.float32) / D))
    lo, hi = s["original_max_position_embeddings"] / s["low_freq_factor"], \
        s["original_max_position_embeddings"] / s["high_freq_factor"]
    want = []
    for f in freqs.tolist():
        wl = 2 * math.pi / f
        if wl < hi:
            want.append(1.0)
        elif wl > lo:
            want.append(s["factor"])
        else:
            sm = (s["original_max_position_embeddings"] / wl - s["low_freq_factor"]) / \
                (s["high_freq_factor"] - s["low_freq_factor"])
            want.append(1 / ((1 - sm) / s["factor"] + sm))
    np.testing.assert_allclose(np.asarray(tensors["rope_freqs.weight"].data), want, rtol=1e-5)


def interleaved_rope(x, pos, theta):  # llama.cpp's rope for the llama architecture: adjacent pairs
    D = x.shape[-1]
    inv = 1.0 / (theta ** (torch.arange(0, D, 2, dtype=torch.float64) / D))
    ang = pos[:, None] * inv[None]  # (T, D/2)
    a, b = x[..., 0::2], x[..., 1::2]
    out = torch.empty_like(x)
    out[..., 0::2] = a * ang.cos() - b * ang.sin()
    out[..., 1::2] = a * ang.sin() + b * ang.cos()
    return out


def test_permuted_queries_and_keys_give_the_same_attention_scores_under_llama_cpp_rope(tmp_path):
    """With the exported q/k weights and llama.cpp's interleaved rope, every query-key score equals the one
    our model computes with rotate-half rope on its own weights."""
    from lingvis.nn.position import Rotary, apply_rotary

    model = model_of("llama")
    _, tensors = read(export(model, tmp_path))
    c = model.config
    H, KV, D = c.n_head, c.n_kv_head, c.head_size
    x = torch.randn(9, c.n_embd, dtype=torch.float64)
    pos = torch.arange(9, dtype=torch.float64)
    wq = torch.from_numpy(np.array(tensors["blk.0.attn_q.weight"].data)).double()
    wk = torch.from_numpy(np.array(tensors["blk.0.attn_k.weight"].data)).double()
    q_cpp = interleaved_rope((x @ wq.T).view(9, H, D).transpose(0, 1), pos, c.rope_theta)  # (H, T, D)
    k_cpp = interleaved_rope((x @ wk.T).view(9, KV, D).transpose(0, 1), pos, c.rope_theta)
    qkv = x @ model.blocks[0].attn.qkv.weight.double().T
    q, k = qkv[:, :H * D].view(9, H, D).transpose(0, 1), qkv[:, H * D:(H + KV) * D].view(9, KV, D).transpose(0, 1)
    cos, sin = Rotary(D, 48, c.rope_theta)(torch.arange(9)[None])
    q, k = apply_rotary(q[None], cos.double(), sin.double())[0], apply_rotary(k[None], cos.double(), sin.double())[0]
    g = H // KV
    ours = q @ k.repeat_interleave(g, 0).transpose(1, 2)
    theirs = q_cpp @ k_cpp.repeat_interleave(g, 0).transpose(1, 2)
    torch.testing.assert_close(theirs, ours, atol=1e-5, rtol=1e-5)


def test_metadata(tmp_path):
    from lingvis.tokenizers.train import train_bpe

    tok = train_bpe("the cat sat on the mat. " * 40 + "hello world " * 20, vocab_size=300)
    tok.chat_template = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    cfg = dict(CONFIGS["llama"], vocab_size=tok.vocab_size + 5)
    model = GPT(GPTConfig(**cfg)).eval()
    fields, _ = read(export_gguf(model, tmp_path / "m.gguf", tokenizer=tok, dtype="q8_0"))
    a = "llama"
    assert fields[f"{a}.block_count"] == 2 and fields[f"{a}.context_length"] == 48
    assert fields[f"{a}.embedding_length"] == 64 and fields[f"{a}.feed_forward_length"] == 96
    assert fields[f"{a}.attention.head_count"] == 6 and fields[f"{a}.attention.head_count_kv"] == 2
    assert fields[f"{a}.attention.key_length"] == 12 and fields[f"{a}.rope.dimension_count"] == 12
    assert fields[f"{a}.rope.freq_base"] == pytest.approx(10000.0)
    assert fields[f"{a}.attention.layer_norm_rms_epsilon"] == pytest.approx(1e-5)
    assert fields["general.file_type"] == 7
    assert fields["tokenizer.ggml.model"] == "gpt2" and fields["tokenizer.ggml.pre"] == "gpt-2"
    tokens = fields["tokenizer.ggml.tokens"]
    assert len(tokens) == cfg["vocab_size"]
    vocab = tok.get_vocab()
    assert all(tokens[i] == t for t, i in vocab.items())
    assert tokens[-1] == f"[PAD{cfg['vocab_size'] - 1}]" and fields["tokenizer.ggml.token_type"][-1] == 5
    merges = json.loads(tok.backend.to_str())["model"]["merges"]
    assert fields["tokenizer.ggml.merges"] == [" ".join(m) if isinstance(m, list) else m for m in merges]
    assert fields["tokenizer.ggml.eos_token_id"] == tok.eos_id
    types = fields["tokenizer.ggml.token_type"]
    assert types[tok.eos_id] == 3 and types[vocab["the"] if "the" in vocab else vocab["Ġthe"]] == 1
    assert fields["tokenizer.chat_template"] == tok.chat_template
    assert json.loads(fields["lingvis.config"])["n_kv_head"] == 2


def test_gpt2_and_rope_scaling_keys(tmp_path):
    fields, _ = read(export(model_of("gpt2"), tmp_path))
    assert fields["gpt2.attention.layer_norm_epsilon"] == pytest.approx(1e-5)
    assert fields["gpt2.feed_forward_length"] == 256 and fields["tokenizer.ggml.model"] == "none"
    assert fields["gpt2.vocab_size"] == 101
    fields, _ = read(export(model_of("qwen2"), tmp_path))
    assert fields["qwen2.rope.scaling.type"] == "linear" and fields["qwen2.rope.scaling.factor"] == 2.0
    fields, _ = read(export(model_of("mistral"), tmp_path))
    assert fields["llama.attention.sliding_window"] == 7


@pytest.mark.parametrize("name", ["gpt2", "llama", "qwen2", "qwen3", "mistral", "llama3-rope", "gpt2-untied"])
def test_lingvis_load_round_trip(tmp_path, name):
    model = model_of(name)
    x = torch.randint(0, 97, (2, 20))
    for dtype, tol in (("f32", 0.0), ("q8_0", 0.05)):
        back = lingvis.load(export(model, tmp_path, dtype))
        assert back.config == model.config
        with torch.no_grad():
            diff = (back(x) - model(x)).abs().max().item()
        assert diff <= tol, (dtype, diff)


def test_load_from_llama_cpp_keys_alone(tmp_path):
    """A GGUF without lingvis.config (as llama.cpp's converter writes it) rebuilds the same model."""
    model = model_of("qwen3")
    path = export(model, tmp_path)
    fields, tensors = read(path)
    stripped = tmp_path / "stripped.gguf"
    w = gguf.GGUFWriter(str(stripped), "qwen3")
    for k, f in gguf.GGUFReader(str(path)).fields.items():
        if k.startswith("GGUF.") or k in ("general.architecture", "lingvis.config"):
            continue
        v = f.contents()
        kind = f.types[0]
        if kind == gguf.GGUFValueType.ARRAY:
            w.add_array(k, v)
        else:
            w.add_key_value(k, v, kind)
    for t in tensors.values():
        w.add_tensor(t.name, np.array(t.data), raw_dtype=t.tensor_type)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    assert "lingvis.config" not in read(stripped)[0]
    back = lingvis.load(stripped)
    x = torch.randint(0, 97, (1, 16))
    with torch.no_grad():
        assert torch.equal(back(x), model(x))


@pytest.mark.parametrize("kind", ["llama", "qwen2", "qwen3", "gpt2"])
def test_transformers_gguf_reader_gives_the_same_logits(tmp_path, kind):
    """transformers' own GGUF loader (llama.cpp tensor names, its inverse permutation) is the reference.
    Its GGUF config maps ignore key_length for Qwen3 (head_dim 128 assumed) and need heads to divide the
    width for Llama, and its GPT-2 reads the vocabulary size from the tokenizer: the shapes respect that."""
    transformers = pytest.importorskip("transformers")
    tok = None
    cfg = {"llama": dict(LLAMA, n_layer=2, n_head=4, n_kv_head=2, head_dim=16, n_embd=64, mlp_hidden=96,
                         vocab_size=97, block_size=48, tie_embeddings=False),
           "qwen2": CONFIGS["qwen2"] | {"rope_scaling": None},
           "qwen3": dict(LLAMA, n_layer=2, n_head=2, n_kv_head=1, head_dim=128, n_embd=64, mlp_hidden=96,
                         vocab_size=97, block_size=48, qk_norm=True),
           "gpt2": dict(CONFIGS["gpt2"], block_size=1024)}[kind]
    if kind == "gpt2":
        from lingvis.tokenizers.train import train_bpe

        tok = train_bpe("the cat sat on the mat. " * 40, vocab_size=290)
        cfg["vocab_size"] = tok.vocab_size
    torch.manual_seed(0)
    model = GPT(GPTConfig(**cfg)).eval()
    x = torch.randint(0, cfg["vocab_size"], (2, 17))
    for dtype in ("f32", "q8_0"):
        path = export_gguf(model, tmp_path / f"m.{dtype}.gguf", tokenizer=tok, dtype=dtype)
        hf = transformers.AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file=path.name).eval()
        with torch.no_grad():
            ref = hf(x).logits
            ours = lingvis.load(path)(x)
            assert (ours - ref).abs().max().item() <= 1e-4  # same dequantised weights
            if dtype == "f32":
                assert (model(x) - ref).abs().max().item() <= 1e-4


# --- tokenizers --------------------------------------------------------------------------------------
def _tokenizer(backend, roles):
    from lingvis.tokenizers import Tokenizer

    return Tokenizer(backend, roles)


def test_llama3_style_split_pre_tokenizer(tmp_path):
    import tokenizers as hf_tok
    from tokenizers import Regex, decoders, models, pre_tokenizers, trainers

    from lingvis.interop.gguf_vocab import SPLIT_REGEXES, vocab_from_tokenizer

    regex = next(r for r, n in SPLIT_REGEXES.items() if n == "llama-bpe")
    b = hf_tok.Tokenizer(models.BPE())
    b.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(regex), behavior="isolated"),
                                               pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    b.decoder = decoders.ByteLevel()
    b.train_from_iterator(["hello there 123 world"] * 20, trainers.BpeTrainer(
        vocab_size=280, special_tokens=["<|end|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    v = vocab_from_tokenizer(_tokenizer(b, {"eos": "<|end|>"}), 300)
    assert v.model == "gpt2" and v.pre == "llama-bpe" and v.special_ids == {"eos": 0}


def test_byte_fallback_bpe_is_a_llama_spm_vocab():
    import tokenizers as hf_tok
    from tokenizers import decoders, models, normalizers, processors

    from lingvis.interop.gguf_vocab import BYTE, CONTROL, NORMAL, UNKNOWN, vocab_from_tokenizer

    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2, **{f"<0x{i:02X}>": 3 + i for i in range(256)}}
    for t in ["▁", "a", "b", "c", "▁a", "bc", "▁abc", "ab"]:
        vocab[t] = len(vocab)
    merges = [("▁", "a"), ("b", "c"), ("▁a", "bc"), ("a", "b")]
    b = hf_tok.Tokenizer(models.BPE(vocab, merges, unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    b.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    b.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()])
    b.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    tok = _tokenizer(b, {"unk": "<unk>", "bos": "<s>", "eos": "</s>"})
    v = vocab_from_tokenizer(tok, len(vocab))
    assert v.model == "llama" and v.pre is None and not v.merges
    assert v.token_types[0] == UNKNOWN and v.token_types[1] == CONTROL and v.token_types[3 + 65] == BYTE
    assert v.token_types[vocab["▁abc"]] == NORMAL
    # llama.cpp merges the highest score first: minus the merge rank
    assert [v.scores[vocab[t]] for t in ("▁a", "bc", "▁abc", "ab")] == [0.0, -1.0, -2.0, -3.0]
    assert v.add_bos and not v.add_eos and v.add_space_prefix
    assert v.special_ids == {"unk": 0, "bos": 1, "eos": 2}


def test_unsupported_tokenizers_and_sizes_are_refused(tmp_path):
    from lingvis.tokenizers.train import train_bpe, train_char

    model = model_of("llama")
    with pytest.raises(CheckpointError, match="WordLevel tokenizer has no llama.cpp counterpart"):
        export_gguf(model, tmp_path / "c.gguf", tokenizer=train_char("abc"))
    tok = train_bpe("the cat sat on the mat. " * 40, vocab_size=300)
    with pytest.raises(CheckpointError, match=f"{tok.vocab_size} tokens but the model's embedding has only 97"):
        export_gguf(model, tmp_path / "c.gguf", tokenizer=tok)
    assert not list(tmp_path.glob("*.gguf")) and not list(tmp_path.glob(".*tmp"))


@pytest.mark.parametrize("change, match", [
    (dict(activation="geglu"), "SwiGLU; activation 'geglu'"),
    (dict(rope_scaling={"rope_type": "dynamic", "factor": 2.0}), "'dynamic'"),
    (dict(cross_attention=True), "cross-attention"),
])
def test_configs_without_a_llama_cpp_counterpart_are_refused(tmp_path, change, match):
    model = GPT(GPTConfig(**{**CONFIGS["llama"], **change})).eval()
    with pytest.raises(CheckpointError, match=match):
        export_gguf(model, tmp_path / "x.gguf")
    with pytest.raises(ValueError, match="dtype must be one of f32, f16, q8_0"):
        export_gguf(model_of("gpt2"), tmp_path / "x.gguf", dtype="q4_0")


def test_load_errors_name_the_problem(tmp_path):
    path = export(model_of("gpt2"), tmp_path)
    bad = tmp_path / "bad.gguf"
    w = gguf.GGUFWriter(str(bad), "gpt2")
    for k, f in gguf.GGUFReader(str(path)).fields.items():
        if k.startswith("GGUF.") or k == "general.architecture":
            continue
        kind = f.types[0]
        w.add_array(k, f.contents()) if kind == gguf.GGUFValueType.ARRAY else w.add_key_value(k, f.contents(), kind)
    for t in gguf.GGUFReader(str(path)).tensors:
        if t.name != "blk.1.ffn_up.bias":
            w.add_tensor(t.name, np.array(t.data), raw_dtype=t.tensor_type)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    with pytest.raises(CheckpointError, match="'blk.1.ffn_up.bias' is missing"):
        lingvis.load(bad)
    (tmp_path / "junk.gguf").write_bytes(b"not a gguf file at all")
    with pytest.raises(CheckpointError, match="not a readable GGUF file"):
        lingvis.load(tmp_path / "junk.gguf")


def test_cli_convert_to_gguf(tmp_path, capsys):
    from lingvis.cli import main

    model = model_of("llama")
    lingvis.save(model, tmp_path / "run", format="lingvis")
    assert main(["convert", str(tmp_path / "run"), str(tmp_path / "out.gguf"), "--dtype", "q8_0"]) == 0
    assert "wrote" in capsys.readouterr().out
    fields, tensors = read(tmp_path / "out.gguf")
    assert fields["general.file_type"] == 7 and "blk.1.ffn_down.weight" in tensors
    assert main(["convert", str(tmp_path / "out.gguf"), str(tmp_path / "back"), "--to", "lingvis"]) == 0
    assert main(["convert", str(tmp_path / "run"), str(tmp_path / "named.bin"), "--to", "gguf", "--dtype", "f16"]) == 0
    assert read(tmp_path / "named.bin")[0]["general.file_type"] == 1  # --to gguf whatever the file is called
    assert main(["convert", str(tmp_path / "run"), str(tmp_path / "hf"), "--dtype", "q8_0"]) == 2
    assert "--dtype applies to --to gguf only" in capsys.readouterr().err
    x = torch.randint(0, 97, (1, 9))
    with torch.no_grad():
        assert (lingvis.load(tmp_path / "back")(x) - model(x)).abs().max() < 0.05


def test_cli_char_tokenizer_needs_no_tokenizer_flag(tmp_path, capsys):
    from lingvis.cli import main
    from lingvis.tokenizers.train import train_char

    lingvis.save(model_of("gpt2"), tmp_path / "run", tokenizer=train_char("abcdefgh ij"), format="lingvis")
    assert main(["convert", str(tmp_path / "run"), str(tmp_path / "c.gguf")]) != 0
    assert "WordLevel tokenizer has no llama.cpp counterpart" in capsys.readouterr().err
    assert main(["convert", str(tmp_path / "run"), str(tmp_path / "c.gguf"), "--no-tokenizer"]) == 0
    assert read(tmp_path / "c.gguf")[0]["tokenizer.ggml.model"] == "none"


def test_tokenizer_round_trip_through_gguf(tmp_path):
    """lingvis.load_tokenizer(file.gguf) rebuilds the exported byte-level BPE: same ids, same text."""
    import lingvis
    from lingvis.tokenizers.train import train_bpe

    tok = train_bpe("the cat sat on the mat. 1234 héllo wörld <|user|> " * 40, vocab_size=300)
    tok.chat_template = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    model = GPT(GPTConfig(**dict(CONFIGS["gpt2"], vocab_size=tok.vocab_size + 3))).eval()
    back = lingvis.load_tokenizer(export_gguf(model, tmp_path / "t.gguf", tokenizer=tok))
    for text in ("the cat sat 1234 on héllo <|user|> zebra!", "  spaces\n\nand 77 digits", "日本語"):
        assert back.encode(text) == tok.encode(text)
        assert back.decode(tok.encode(text)) == tok.decode(tok.encode(text))
    assert back.special_tokens == tok.special_tokens and back.chat_template == tok.chat_template
    assert back.vocab_size == tok.vocab_size
    with pytest.raises(CheckpointError, match="holds no vocabulary"):
        lingvis.load_tokenizer(export_gguf(model, tmp_path / "none.gguf"))
