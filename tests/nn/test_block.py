import pytest
import torch

from lingvis.nn import BlockConfig, KVCache, padding_mask, transformer_block


def make(**kw):
    torch.manual_seed(0)
    return transformer_block(BlockConfig(dim=32, n_heads=4, mlp_hidden=64, **kw)).eval()


def test_prenorm_is_residual_of_normed_branches():
    b = make(prenorm=True)
    x = torch.randn(2, 5, 32)
    h = x + b.attn(b.ln_1(x), is_causal=True)
    want = h + b.mlp(b.ln_2(h))
    assert torch.allclose(b(x, is_causal=True), want, atol=1e-6)


def test_postnorm_normalises_after_each_residual():
    b = make(prenorm=False)
    x = torch.randn(2, 5, 32) * 3 + 1
    h = b.ln_1(x + b.attn(x))
    want = b.ln_2(h + b.mlp(h))
    y = b(x)
    assert torch.allclose(y, want, atol=1e-6)
    # fresh LayerNorm (weight 1, bias 0): every output row has mean 0 and unit variance
    assert torch.allclose(y.mean(-1), torch.zeros(2, 5), atol=1e-5)
    assert torch.allclose(y.var(-1, unbiased=False), torch.ones(2, 5), atol=1e-3)
    assert not torch.allclose(make(prenorm=True)(x), y)


def test_submodule_names_and_llama_options():
    b = make(norm="rmsnorm", activation="swiglu", bias=False)
    names = {n for n, _ in b.named_children()}
    assert names == {"ln_1", "attn", "ln_2", "mlp"}
    assert all(not n.endswith("bias") for n, _ in b.named_parameters())


def test_cross_attention_block_uses_memory_and_its_mask():
    b = make(cross_attention=True, cross_dim=48)
    assert b.cross_attn.kv.in_features == 48 and b.ln_cross is not None
    x, mem = torch.randn(2, 4, 32), torch.randn(2, 6, 48)
    keep = torch.tensor([[1, 1, 1, 1, 0, 0], [1] * 6])
    y = b(x, is_causal=True, memory=mem, memory_mask=padding_mask(keep))
    h = x + b.attn(b.ln_1(x), is_causal=True)
    h = h + b.cross_attn(b.ln_cross(h), memory_mask=padding_mask(keep), memory=mem)
    assert torch.allclose(y, h + b.mlp(b.ln_2(h)), atol=1e-6)
    mem2 = mem.clone()
    mem2[0, 4:] = 50.0  # masked memory positions do not matter
    y2 = b(x, is_causal=True, memory=mem2, memory_mask=padding_mask(keep))
    assert torch.allclose(y2[0], y[0], atol=1e-5)
    assert not torch.allclose(b(x, is_causal=True, memory=mem2)[0], y[0], atol=1e-3)


def test_block_stack_with_cache_equals_full_pass():
    blocks = [make(), make(cross_attention=True)]
    x, mem = torch.randn(1, 6, 32), torch.randn(1, 3, 32)

    def run(h, cache=None, causal=True):
        for i, b in enumerate(blocks):
            h = b(h, is_causal=causal, cache=cache, layer=i, memory=mem)
        return h

    full = run(x)
    cache = KVCache(2, 8)
    outs = []
    for t in range(6):
        outs.append(run(x[:, t:t + 1], cache, causal=False))
        cache.advance(1)
    assert torch.allclose(torch.cat(outs, 1), full, atol=1e-5)


def test_kv_cache_overflow_and_reorder():
    cache = KVCache(1, 4)
    k = torch.arange(2 * 1 * 3 * 2, dtype=torch.float).view(2, 1, 3, 2)
    ks, vs, index = cache.update(0, k, k + 1)
    assert index is None
    assert ks.shape == (2, 1, 3, 2) and torch.equal(ks, k)
    cache.advance(3)
    with pytest.raises(ValueError, match=r"3 cached \+ 2 new positions > max_len 4"):
        cache.update(0, k[:, :, :2], k[:, :, :2])
    cache.cross[0] = (k, k)
    cache.reorder(torch.tensor([1, 1, 0]))
    assert torch.equal(cache.k[0][:, :, :3], k[[1, 1, 0]])
    assert torch.equal(cache.cross[0][0], k[[1, 1, 0]])


@pytest.mark.parametrize("kw", [dict(), dict(norm="rmsnorm", activation="swiglu", bias=False)])
def test_inference_fuses_the_residual_add_with_the_next_norm_without_changing_values(kw, monkeypatch):
    import lingvis.nn.block as block_module
    from lingvis.native import available
    if not available():
        pytest.skip("native kernels did not build")
    torch.manual_seed(0)
    b = transformer_block(BlockConfig(dim=36, n_heads=4, mlp_hidden=50, **kw)).eval()
    for p in b.parameters():
        torch.nn.init.normal_(p, std=0.3)
    x = torch.randn(2, 7, 36)
    fused = []
    real = block_module.add_then_norm
    monkeypatch.setattr(block_module, "add_then_norm", lambda *a: fused.append(1) or real(*a))
    with torch.no_grad():
        y = b(x, is_causal=True)
        h = x + b.attn(b.ln_1(x), is_causal=True)
        want = h + b.mlp(b.ln_2(h))
    assert len(fused) == 1  # attn's residual with ln_2; the block's last add has no next norm here
    torch.testing.assert_close(y, want, rtol=1e-5, atol=1e-5)
    monkeypatch.setattr(block_module, "add_then_norm", lambda *a: None)  # unfused path: the same values
    with torch.no_grad():
        torch.testing.assert_close(b(x, is_causal=True), y, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kw", [dict(), dict(norm="rmsnorm", activation="swiglu", bias=False)])
def test_run_blocks_fuses_each_last_residual_add_with_the_next_blocks_norm(kw, monkeypatch):
    import lingvis.nn.block as block_module
    from lingvis.native import available
    from lingvis.nn import BlockInputs, run_blocks
    if not available():
        pytest.skip("native kernels did not build")
    torch.manual_seed(0)
    blocks = torch.nn.ModuleList(transformer_block(BlockConfig(dim=20, n_heads=2, mlp_hidden=30, **kw))
                                 for _ in range(3)).eval()
    for p in blocks.parameters():
        torch.nn.init.normal_(p, std=0.3)
    x = torch.randn(2, 9, 20)
    norms = []
    real = block_module.add_then_norm
    monkeypatch.setattr(block_module, "add_then_norm", lambda x, y, n: norms.append(n) or real(x, y, n))
    hidden = []
    with torch.no_grad():
        y = run_blocks(blocks, x, BlockInputs(is_causal=True), hidden)
        want, h = [x], x
        for b in blocks:
            h = h + b.attn(b.ln_1(h), is_causal=True)
            h = h + b.mlp(b.ln_2(h))
            want.append(h)
    # inside each block: attn's add with ln_2; across blocks: the last add with the next block's ln_1
    assert norms == [blocks[0].ln_2, blocks[1].ln_1, blocks[1].ln_2, blocks[2].ln_1, blocks[2].ln_2]
    torch.testing.assert_close(y, want[-1], rtol=1e-5, atol=1e-5)
    assert len(hidden) == 4
    for got, ref in zip(hidden, want):
        torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)
    ctx = BlockInputs(is_causal=True)
    with torch.no_grad():
        run_blocks(blocks, x, ctx)
    assert ctx.next_norm is None and ctx.normed is None  # nothing left behind for a later call
    norms.clear()
    run_blocks(blocks, x.requires_grad_(), BlockInputs(is_causal=True))  # training: no fusion across blocks
    assert all(n is not blocks[1].ln_1 and n is not blocks[2].ln_1 for n in norms)
