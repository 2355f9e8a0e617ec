"""Encoder-decoder model: shapes, presets, masks, cache consistency, gradients, save/load."""
import pytest
import torch

import lingvis
from lingvis.models import registry
from lingvis.models.seq2seq import Seq2Seq, Seq2SeqConfig




def nano(**kw):
    torch.manual_seed(0)
    return lingvis.build("transformer-nano", vocab_size=41, pad_id=0, eos_id=1, decoder_start_id=2, **kw).eval()


def test_transformer_base_preset_matches_the_paper():
    fam, cfg = registry.preset_config("transformer-base", vocab_size=37000)
    assert fam == "seq2seq"
    assert (cfg.encoder_layers, cfg.decoder_layers, cfg.dim, cfg.n_head, cfg.ffn_dim) == (6, 6, 512, 8, 2048)
    assert cfg.position == "sinusoidal" and cfg.share_embeddings and not cfg.prenorm
    model = Seq2Seq(cfg)
    n = sum(p.numel() for p in model.parameters())
    assert 60e6 < n < 66e6  # ~63M with a 37k shared vocabulary (the paper's 65M)
    assert model.lm_head.weight is model.embed.weight
    assert all(hasattr(b, "cross_attn") for b in model.decoder) and not any(hasattr(b, "cross_attn") for b in model.encoder)


def test_forward_shapes_and_every_parameter_gets_a_gradient():
    model = nano(tie_embeddings=False, share_embeddings=False, tgt_vocab_size=29, final_logits_bias=True).train()
    src, tgt = torch.randint(3, 41, (2, 7)), torch.randint(3, 29, (2, 5))
    logits = model(src, tgt)
    assert logits.shape == (2, 5, 29)
    logits.sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_padding_in_the_source_does_not_change_the_result():
    model = nano()
    src = torch.randint(3, 41, (1, 6))
    tgt = torch.randint(3, 41, (1, 4))
    padded = torch.cat([src, torch.zeros(1, 3, dtype=torch.long)], 1)
    mask = torch.tensor([[1] * 6 + [0] * 3])
    with torch.no_grad():
        assert torch.allclose(model(src, tgt), model(padded, tgt, mask), atol=1e-5)


def test_decoder_is_causal_and_cached_steps_match_full_pass():
    model = nano()
    src, tgt = torch.randint(3, 41, (2, 6)), torch.randint(3, 41, (2, 8))
    with torch.no_grad():
        full = model(src, tgt)
        changed = tgt.clone()
        changed[:, 5:] = 7
        assert torch.allclose(model(src, changed)[:, :5], full[:, :5], atol=1e-6)
        view = model.decoder_view(model.encode(src))
        cache = view.new_cache(2, 8)
        steps = [view(tgt[:, :3], cache=cache)] + [view(tgt[:, t:t + 1], cache=cache) for t in range(3, 8)]
    assert torch.allclose(torch.cat(steps, 1), full, atol=1e-5)
    assert cache.cross[0] is not None  # encoder keys/values computed once


def test_greedy_generate_matches_argmax_decoding():
    model = nano()
    src = torch.randint(3, 41, (2, 5))
    out = model.generate(src, max_new_tokens=6, eos_ids=[])
    assert out.shape == (2, 7) and bool((out[:, 0] == 2).all())
    seq = out[:, :1]
    with torch.no_grad():
        for _ in range(6):
            seq = torch.cat([seq, model(src, seq)[:, -1].argmax(-1, keepdim=True)], 1)
    assert torch.equal(seq, out)


def test_save_and_load_native_roundtrip(tmp_path):
    model = nano(prenorm=True, final_norm=True, position="learned")  # no Marian twin -> native format
    lingvis.save(model, tmp_path / "m")
    assert (tmp_path / "m" / "lingvis.json").is_file()
    back = lingvis.load(tmp_path / "m")
    src, tgt = torch.randint(3, 41, (2, 5)), torch.randint(3, 41, (2, 4))
    with torch.no_grad():
        assert torch.equal(model(src, tgt), back(src, tgt))


def test_bad_configs_and_inputs_have_clear_errors():
    with pytest.raises(ValueError, match="share_embeddings=False"):
        Seq2SeqConfig(vocab_size=10, tgt_vocab_size=12)
    with pytest.raises(ValueError, match="unknown position"):
        Seq2SeqConfig(position="rotary")
    model = nano()
    with pytest.raises(ValueError, match="exceeds max_len 64"):
        model.encode(torch.ones(1, 65, dtype=torch.long))
