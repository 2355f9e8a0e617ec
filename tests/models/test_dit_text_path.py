"""The DiT's text-path options (docs/text_to_image.md, "the conditioning path"), all off by default: PixArt-style
ungated cross-attention (`cross_modulated=False`), the pooled adaLN text from the end-of-text state or a learned
attention pooling (`pooling`), text tokens joined to the image tokens in self-attention (`in_context`); and the
`word_bag_text` tower (fixed random word vectors, the exact-conditioning diagnostic)."""
import pytest
import torch

from lingvis.models import registry
from lingvis.models.dit import DiT, DiTConfig
from lingvis.models.word_bag_text import WordBagText, WordBagTextConfig
from lingvis.nn.builders import BlockConfig, transformer_block, transformer_block_plain_cross


def nano(**kw) -> DiT:
    torch.manual_seed(0)
    return DiT(DiTConfig(sample_size=16, patch_size=4, dim=48, depth=2, heads=4, text_dim=32, **kw))


def scramble(model: DiT) -> DiT:
    """Random weights everywhere (the zero-initialised gates and heads too), so every path is live."""
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.1)
    return model.eval()


def test_defaults_keep_the_block_and_state_dict_keys():
    model = nano()
    assert (model.config.cross_modulated, model.config.pooling, model.config.in_context) == (True, "mean", False)
    keys = set(model.state_dict())
    assert {k for k in keys if k.startswith("blocks.0.")} == {f"blocks.0.{k}" for k in transformer_block(
        model.config.block_config()).state_dict()}
    assert "blocks.0.cross_attn_mod.linear.weight" in keys
    assert not any(k.startswith(("pool_attn", "text_ctx")) for k in keys)
    with pytest.raises(ValueError, match="pooling must be one of"):
        DiTConfig(pooling="max")


def test_plain_cross_attention_block_is_ungated_and_starts_as_identity():
    cfg = BlockConfig(dim=48, n_heads=4, mlp_hidden=96, cross_attention=True, cross_dim=48, cond_dim=48)
    block = transformer_block_plain_cross(cfg)
    assert [(b[1], b[2]) for b in block.branches] == [("attn", "attn_mod"), ("cross_attn", None), ("mlp", "mlp_mod")]
    assert set(block.state_dict()) == set(transformer_block(cfg).state_dict()) - {
        "cross_attn_mod.linear.weight", "cross_attn_mod.linear.bias"}
    with pytest.raises(ValueError, match="cross_attention=True"):
        transformer_block_plain_cross(BlockConfig(dim=48, n_heads=4, mlp_hidden=96, cond_dim=48))
    model = nano(cross_modulated=False)
    assert all(torch.equal(b.cross_attn.proj.weight, torch.zeros_like(b.cross_attn.proj.weight))
               for b in model.blocks)  # PixArt: the out-projection starts at zero
    out = model(torch.randn(2, 3, 16, 16), torch.tensor([1, 500]), torch.randn(2, 4, 32))
    assert torch.equal(out, torch.zeros_like(out))  # still the adaLN-zero start
    # ungated: with the conditioning vector's modulations at zero the text still moves the tokens
    model = scramble(nano(cross_modulated=False))
    for b in model.blocks:
        torch.nn.init.zeros_(b.attn_mod.linear.weight), torch.nn.init.zeros_(b.attn_mod.linear.bias)
    x, t = torch.randn(1, 3, 16, 16), torch.tensor([300])
    with torch.no_grad():
        assert not torch.allclose(model(x, t, torch.randn(1, 4, 32)), model(x, t, torch.randn(1, 4, 32)), atol=1e-5)


def test_eot_pooling_reads_the_last_real_token_and_needs_the_mask():
    model = scramble(nano(pooling="eot"))
    states, mask = torch.randn(2, 5, 32), torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    pooled = model.pool_text(states, mask)
    assert torch.equal(pooled, torch.stack([states[0, 2], states[1, 4]]))
    other = states.clone()
    other[0, :2] = torch.randn(2, 32)  # only the end-of-text state is read
    assert torch.equal(model.pool_text(other, mask), pooled)
    with pytest.raises(ValueError, match="text mask"):
        model.pool_text(states, None)


def test_attention_pooling_starts_as_the_masked_mean_of_values_and_learns_to_pick():
    model = nano(pooling="attention")
    pool = model.pool_attn
    states, mask = torch.randn(2, 5, 32), torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    v = pool.value(states)  # (B, L, D)
    expect = torch.stack([v[0, :3].mean(0), v[1].mean(0)])
    assert torch.allclose(pool(states, mask), expect, atol=1e-6)  # zero query: uniform over the real tokens
    assert "pool_attn.query" in model.state_dict()
    # a trained query picks out one position: train it to return the value at position 1
    target = v[:, 1].detach()
    opt = torch.optim.Adam(pool.parameters(), lr=0.05)
    first = None
    for _ in range(100):
        loss = (pool(states, mask) - target).square().mean()
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.2 * first


def test_in_context_text_reaches_the_image_and_padding_is_masked():
    model = scramble(nano(in_context=True, cross_modulated=False))
    x, t = torch.randn(2, 3, 16, 16), torch.tensor([100, 800])
    states, mask = torch.randn(2, 6, 32), torch.tensor([[1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 0]])
    with torch.no_grad():
        out = model(x, t, states, mask)
        assert out.shape == x.shape
        padded = states.clone()
        padded[0, 3:] = torch.randn(3, 32)  # padding states change nothing (masked in cross- and self-attention)
        assert torch.allclose(model(x, t, padded, mask), out, atol=1e-6)
        # the in-context path alone carries the text: cut the cross-attention and the pooled text
        for b in model.blocks:
            torch.nn.init.zeros_(b.cross_attn.proj.weight), torch.nn.init.zeros_(b.cross_attn.proj.bias)
        torch.nn.init.zeros_(model.text_pool.weight)
        real = states.clone()
        real[0, :3] = torch.randn(3, 32)
        assert not torch.allclose(model(x, t, real, mask)[0], model(x, t, states, mask)[0], atol=1e-5)
        torch.nn.init.zeros_(model.text_ctx.weight)
        assert torch.allclose(model(x, t, real, mask)[0], model(x, t, states, mask)[0], atol=1e-6)


def test_word_bag_tower_is_fixed_exact_and_registered():
    fam = registry.family("word_bag_text")
    tower = fam.model_cls(registry.make_config("word_bag_text", dict(vocab_size=20, context_length=8, dim=16)))
    again = WordBagText(WordBagTextConfig(vocab_size=20, context_length=8, dim=16))
    assert torch.equal(tower.tok_emb.weight, again.tok_emb.weight)  # seeded: the same vectors every build
    assert not any(p.requires_grad for p in tower.parameters()) and tower.out_dim == 16
    ids = torch.tensor([[1, 5, 7, 2], [1, 7, 5, 2]])
    states = tower.encode(ids)
    assert torch.equal(states[0, 1], states[1, 2])  # no positions, no mixing: a word is the same vector anywhere
    assert torch.allclose(states.mean(1)[0], states.mean(1)[1], atol=1e-6)  # the mean is a bag of words
    with pytest.raises(ValueError, match="context length"):
        tower.encode(torch.zeros(1, 9, dtype=torch.long))
    with pytest.raises(ValueError):
        WordBagTextConfig(dim=0)


def test_recipe_swaps_the_text_family_keeping_vocab_and_width(tmp_path):
    from lingvis.recipes.clip_data import train_word_tokenizer
    from lingvis.recipes.diffusion import make_model, shapes_recipe

    args, _ = shapes_recipe(str(tmp_path / "run"))
    tok = train_word_tokenizer(["a large red circle", "a small blue star to the left of a green square"])
    args.overrides.update(text_family="word_bag_text", lock_text=True,
                          denoiser={"cross_modulated": False, "pooling": "attention", "in_context": True})
    model = make_model(args, tok)
    assert isinstance(model.text_encoder, WordBagText) and model.config.lock_text
    assert (model.text_encoder.config.vocab_size, model.text_encoder.out_dim) == (tok.vocab_size, 128)
    assert model.denoiser.config.text_dim == 128 and model.denoiser.pool_attn is not None
    assert "cross_attn_mod" not in dict(model.denoiser.blocks[0].named_children())
