import pytest

from lingvis.models import registry


@pytest.fixture
def tiny_t2i():
    """A factory: the smallest text-to-image UNet model for a word tokenizer (eval mode, no EMA)."""
    def build(tok):
        model = registry.build("t2i-nano", text=dict(vocab_size=tok.vocab_size, context_length=24, dim=32, depth=1,
                                                      heads=4, mlp_hidden=64),
                               denoiser=dict(in_channels=3, out_channels=3, sample_size=32,
                                             block_out_channels=[16, 32], down_attention=[False, True],
                                             layers_per_block=1, attention_heads=2, cross_attention_dim=32,
                                             norm_num_groups=8))
        model.ema = None
        return model.eval()
    return build
