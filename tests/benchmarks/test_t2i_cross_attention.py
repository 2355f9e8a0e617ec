"""benchmarks/t2i_cross_attention: the swapped words are found by position, the cross-attention masses of each
block sum to one, and a denoiser whose text path is cut does not change when the shape word does."""
import pytest
import torch

from benchmarks.t2i_cross_attention import text_reading
from lingvis.data.shapes import make_split_scenes
from lingvis.models import registry
from lingvis.recipes.clip_data import train_word_tokenizer


def tiny_dit(tok):
    model = registry.build("t2i-nano", denoiser_family="dit", text=dict(
        vocab_size=tok.vocab_size, context_length=24, dim=32, depth=1, heads=4, mlp_hidden=64),
        denoiser=dict(in_channels=3, sample_size=32, patch_size=8, dim=32, depth=2, heads=2, text_dim=32))
    model.ema = None
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.denoiser.parameters():  # live gates and heads
            p.normal_(0, 0.2)
    return model.eval()


def test_masses_sum_to_one_and_a_cut_text_path_ignores_the_shape_word():
    scenes = [s for s in make_split_scenes("test", 60, 0) if len(s.objects) == 1][:4]
    words = "a small large red green blue yellow purple orange circle square triangle star cross"
    tok = train_word_tokenizer([words])
    model = tiny_dit(tok)
    rows = text_reading(model, tok, scenes, [0.5, 0.9])
    assert [r["sigma"] for r in rows] == [0.5, 0.9]
    for r in rows:
        assert r["d_shape"] > 0 and r["d_colour"] > 0
        for b in r["blocks"]:
            assert sum(b["mass"].values()) == pytest.approx(1.0, abs=1e-5)
            assert b["mass"]["shape"] > 0 and set(b["rms"]) == {"attn", "cross_attn", "mlp"}
    for block in model.denoiser.blocks:  # cut every text path: cross-attention output and the pooled text
        torch.nn.init.zeros_(block.cross_attn.proj.weight), torch.nn.init.zeros_(block.cross_attn.proj.bias)
    torch.nn.init.zeros_(model.denoiser.text_pool.weight)
    rows = text_reading(model, tok, scenes, [0.7])
    assert rows[0]["d_shape"] == 0 and rows[0]["d_colour"] == 0
    assert all(b["rms"]["cross_attn"] == 0 for b in rows[0]["blocks"])
