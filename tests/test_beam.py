"""Beam search: same tokens as transformers' generate(num_beams=4) on Marian and GPT-2 weights; n-best,
length penalty, early stopping, cache reordering, errors."""
import pytest
import torch

import lingvis
from lingvis.beam import BeamConfig, beam_search

transformers = pytest.importorskip("transformers")
V = 60




@pytest.fixture(scope="module")
def marian(tmp_path_factory):
    out = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        cfg = transformers.MarianConfig(
            vocab_size=V, d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
            decoder_attention_heads=4, encoder_ffn_dim=64, decoder_ffn_dim=64, max_position_embeddings=64,
            pad_token_id=V - 1, decoder_start_token_id=V - 1, eos_token_id=0, init_std=0.3, scale_embedding=True)
        hf = transformers.MarianMTModel(cfg).eval()
        with torch.no_grad():
            hf.final_logits_bias.normal_()
            hf.final_logits_bias[0, 0] += 3.0  # eos likely: hypotheses end at different steps
        d = tmp_path_factory.mktemp(f"marian{seed}")
        hf.save_pretrained(d)
        out.append((hf, lingvis.load(d)))
    return out


def source():
    g = torch.Generator().manual_seed(1)
    src = torch.randint(1, V - 1, (3, 9), generator=g)
    mask = torch.ones_like(src)
    mask[1, 6:] = 0
    src[1, 6:] = V - 1
    return src, mask


@pytest.mark.parametrize("opts", [dict(), dict(length_penalty=0.6, early_stopping=True, num_return_sequences=2),
                                  dict(length_penalty=2.0, early_stopping="never", num_return_sequences=4),
                                  dict(length_penalty=-0.5, num_return_sequences=3)])
def test_marian_beam_search_matches_transformers(marian, opts):
    """20 new tokens, 4 beams, 3 sources (one padded) on two random models."""
    src, mask = source()
    lengths = set()
    for hf, ours in marian:
        a = ours.generate(src, mask, num_beams=4, max_new_tokens=20, **opts)
        b = hf.generate(input_ids=src, attention_mask=mask, num_beams=4, max_new_tokens=20, **opts)
        assert torch.equal(a, b)
        lengths |= {int(r.tolist().index(0)) if 0 in r.tolist() else 21 for r in a}
    if opts.get("length_penalty", 1.0) < 1.0:
        assert len(lengths) > 1  # the case exercises hypotheses that finished early


def test_gpt2_beam_search_with_left_padding_matches_transformers(tmp_path):
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(vocab_size=50, n_positions=64, n_embd=32, n_layer=2, n_head=4,
                                  initializer_range=0.3, eos_token_id=0, bos_token_id=0)
    hf = transformers.GPT2LMHeadModel(cfg).eval()
    hf.save_pretrained(tmp_path)
    ours = lingvis.load(tmp_path)
    ids = torch.randint(1, 50, (2, 6))
    mask = torch.ones_like(ids)
    mask[1, :2] = 0
    out = beam_search(ours, ids, BeamConfig(num_beams=4, max_new_tokens=20, eos_ids=[0], num_return_sequences=2),
                      mask)
    ref = hf.generate(input_ids=ids, attention_mask=mask, num_beams=4, max_new_tokens=20, num_return_sequences=2,
                      pad_token_id=0)
    assert torch.equal(out.sequences.flatten(0, 1), ref)


def test_n_best_is_sorted_and_scores_are_length_penalised_log_probs(marian):
    _, ours = marian[0]
    src, mask = source()
    view = ours.decoder_view(ours.encode(src, mask), mask)
    cfg = BeamConfig(num_beams=4, max_new_tokens=12, eos_ids=[0], pad_id=V - 1, num_return_sequences=4,
                     length_penalty=0.7)
    out = beam_search(view, ours.start_ids(3), cfg)
    assert out.sequences.shape[:2] == (3, 4)
    assert bool((out.scores[:, :-1] >= out.scores[:, 1:]).all())
    with torch.no_grad():  # recompute one hypothesis' score with a full teacher-forced pass
        seq, n = out.sequences[0, 0], int(out.lengths[0, 0])
        logp = ours(src[:1], seq[None, :n], mask[:1]).log_softmax(-1)[0]
        total = logp.gather(1, seq[1:n + 1, None]).sum()
    assert torch.allclose(total / n ** 0.7, out.scores[0, 0], atol=1e-4)


def test_bad_beam_settings_are_rejected(marian):
    _, ours = marian[0]
    src, _ = source()
    with pytest.raises(ValueError, match="num_return_sequences"):
        ours.generate(src, num_beams=2, num_return_sequences=3)
    with pytest.raises(ValueError, match="early_stopping"):
        ours.generate(src, num_beams=2, early_stopping="sometimes")
    with pytest.raises(ValueError, match=r"\['temperature'\] do not apply to beam search"):
        ours.generate(src, num_beams=2, temperature=0.7)
    with pytest.raises(ValueError, match=r"\['length_penalty'\] do not apply to greedy"):
        ours.generate(src, length_penalty=0.7)
    with pytest.raises(ValueError, match="exceeds the model's context length 64"):
        ours.generate(src, num_beams=2, max_new_tokens=100)
