import pytest
import torch

import lingvis
from lingvis.beam import BeamConfig, beam_search
from lingvis.generate import generate_ids
from lingvis.models import registry
from lingvis.models.causal_shift import CausalTokenShift


def _model(k: int = 2, **kw):
    torch.manual_seed(0)
    fields = {"vocab_size": 37, "n_embd": 48, "n_head": 4, "n_layer": 2, "block_size": 64, **kw}
    fam, cfg = registry.preset_config("llama-micro", token_shift=k, **fields)
    m = registry.family(fam).model_cls(cfg).eval()
    for p in m.shift.parameters():  # large enough that the neighbours change the greedy tokens
        torch.nn.init.normal_(p, std=0.5)
    return m


def test_shift_adds_exactly_the_gated_projection_of_the_previous_tokens():
    torch.manual_seed(1)
    s = CausalTokenShift(6, k=2)
    x = torch.randn(2, 5, 6)
    pos = torch.tensor([[0, 1, 2, 3, 4], [0, 1, 0, 1, 2]])  # row 1: two packed documents
    got = s(x, pos)
    g = torch.sigmoid(s.gate(x))  # (B, T, 2)
    W1, W2 = s.proj.weight[:, :6], s.proj.weight[:, 6:]
    want = x.clone()
    for b in range(2):
        for t in range(5):
            if pos[b, t] >= 1:
                want[b, t] += g[b, t, 0] * (W1 @ x[b, t - 1])
            if pos[b, t] >= 2:
                want[b, t] += g[b, t, 1] * (W2 @ x[b, t - 2])
    torch.testing.assert_close(got, want)


def test_shift_needs_at_least_one_previous_token():
    with pytest.raises(ValueError, match="k >= 1"):
        CausalTokenShift(8, k=0)


def test_incremental_forward_with_cache_matches_full_forward():
    m = _model()
    x = torch.randint(0, 37, (2, 15))
    full = m(x)  # (B, T, V)
    cache = m.new_cache(2, 64)
    parts = [m(x[:, :6], cache=cache), m(x[:, 6:7], cache=cache), m(x[:, 7:], cache=cache)]
    torch.testing.assert_close(torch.cat(parts, 1), full, atol=1e-5, rtol=1e-5)


def test_previous_tokens_change_the_logits_and_a_document_start_cuts_them():
    m = _model(k=1, n_layer=1)
    m.blocks[0].attn.proj.weight.data.zero_()  # no attention path: only the shift sees other tokens
    a = torch.tensor([[3, 4, 5, 6]])
    b = torch.tensor([[3, 9, 5, 6]])
    la, lb = m(a), m(b)
    assert not torch.allclose(la[:, 2], lb[:, 2])  # position 2 sees token 1
    torch.testing.assert_close(la[:, 3], lb[:, 3])  # position 3 does not (k=1)
    pos = torch.tensor([[0, 1, 0, 1]])  # token 2 starts a new packed document
    torch.testing.assert_close(m(a, position_ids=pos)[:, 2], m(b, position_ids=pos)[:, 2])


def test_greedy_with_cache_equals_without_cache_on_a_left_padded_batch():
    m = _model()
    ids = torch.randint(0, 37, (3, 11))
    mask = torch.ones_like(ids)
    mask[0, :4] = 0
    mask[1, :2] = 0
    with_cache = generate_ids(m, ids, mask, max_new_tokens=20, use_cache=True)
    without = generate_ids(m, ids, mask, max_new_tokens=20, use_cache=False)
    assert torch.equal(with_cache, without)
    # a padded row continues as the same prompt alone would
    alone = generate_ids(m, ids[:1, 4:], max_new_tokens=20)
    assert torch.equal(with_cache[:1, 11:], alone[:, 7:])


def test_beam_search_reorders_the_shift_cache():
    m = _model()
    ids = torch.randint(0, 37, (2, 7))
    out = beam_search(m, ids, BeamConfig(num_beams=3, max_new_tokens=8, num_return_sequences=3, length_penalty=0.0))
    for b in range(2):
        for r in range(3):
            seq = out.sequences[b, r][None].clone()  # (1, 15): no eos, every hypothesis is full length
            with torch.no_grad():
                logp = m(seq).log_softmax(-1)[0, 6:-1].gather(-1, seq[0, 7:, None]).sum()  # without a cache
            torch.testing.assert_close(out.scores[b, r], logp, atol=1e-4, rtol=1e-4)


def test_save_and_load_keep_the_shift(tmp_path):
    m = _model()
    lingvis.save(m, tmp_path / "m")
    back = lingvis.load(tmp_path / "m")
    assert back.config.token_shift == 2
    x = torch.randint(0, 37, (2, 9))
    torch.testing.assert_close(back(x), m(x))


def test_hf_and_gguf_export_refuse_the_shift(tmp_path):
    from lingvis.interop.gguf_layout import arch_of
    from lingvis.io import CheckpointError

    m = _model()
    with pytest.raises(ValueError, match="no Hugging Face counterpart"):
        lingvis.save(m, tmp_path / "hf", format="hf")
    with pytest.raises(CheckpointError, match="token_shift"):
        arch_of(m.config)


def test_speculative_decoding_rolls_the_shift_cache_back():
    from lingvis.generate import SamplingConfig
    from lingvis.speculative import stream_speculative

    m = _model(k=3)
    with torch.no_grad():
        m.lm_head.weight.mul_(20.0)  # confident logits, so that drafts get accepted and rejected
    g = torch.Generator().manual_seed(3)
    accepted = 0
    for i in range(6):
        base = torch.randint(0, 37, (1, 3 + i), generator=g)
        p = torch.cat([base, base], dim=1)  # a repeated span: prompt lookup finds matches
        plain = m.generate(p, max_new_tokens=25)
        stats = {}
        got = [int(t) for t in stream_speculative(m, p, SamplingConfig(max_new_tokens=25), "prompt-lookup",
                                                  num_draft_tokens=2 + i % 4, stats=stats)]
        assert got == plain[0, p.shape[1]:].tolist(), i
        accepted += stats["accepted"]
    assert accepted > 0
