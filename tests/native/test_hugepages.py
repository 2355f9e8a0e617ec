"""Linear weights moved into hugepage-advised memory (lingvis/native/hugepages.py): same values, same
parameter objects, tied weights still tied, the same greedy tokens; the fused step applies it unless told not to."""
import mmap

import pytest
import torch

from lingvis import native
from lingvis.models.gpt import GPT, GPTConfig
from lingvis.quant import quantize_int8

pytestmark = pytest.mark.skipif(not hasattr(mmap, "MADV_HUGEPAGE"), reason="no MADV_HUGEPAGE on this platform")


def _model(**kw):
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=67, block_size=32, n_layer=2, n_head=2, n_embd=26, **kw)).eval()


@pytest.mark.parametrize("int8", [False, True])
def test_weights_move_and_keep_their_values(int8, monkeypatch):
    monkeypatch.setenv("LINGVIS_HUGEPAGES", "0")  # generate leaves them: the explicit call below moves them
    model = _model()
    if int8:
        model = quantize_int8(model, activations="float")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    params = dict(model.named_parameters())
    ids = torch.randint(0, 67, (1, 5), generator=torch.Generator().manual_seed(1))
    want = model.generate(ids, max_new_tokens=8)
    moved = native.hugepage_weights(model)
    assert moved >= sum(t.numel() * t.element_size() for n, t in model.state_dict().items()
                        if n.endswith(("qkv.weight", "qkv.weight_int8")))
    assert native.hugepage_weights(model) == 0  # once per model
    after = model.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert all(p is params[n] for n, p in model.named_parameters())
    key = "blocks.0.attn.qkv." + ("weight_int8" if int8 else "weight")
    assert after[key].data_ptr() % 64 == 0
    if not int8:
        assert model.lm_head.weight is model.wte.weight  # tied: moved once, still shared
    assert torch.equal(model.generate(ids, max_new_tokens=8), want)


def test_fused_step_applies_it_by_default(monkeypatch):
    model = _model()
    ptr = model.blocks[0].attn.qkv.weight.data_ptr()
    monkeypatch.setenv("LINGVIS_HUGEPAGES", "0")
    model.generate(torch.zeros(1, 3, dtype=torch.long), max_new_tokens=2)
    assert model.blocks[0].attn.qkv.weight.data_ptr() == ptr  # turned off
    monkeypatch.delenv("LINGVIS_HUGEPAGES")
    out = model.generate(torch.zeros(1, 3, dtype=torch.long), max_new_tokens=2)
    assert model.blocks[0].attn.qkv.weight.data_ptr() != ptr or not native.available()
    assert out.shape == (1, 5)


def test_moved_under_inference_mode_the_int8_kernels_still_work(monkeypatch):
    """Weights moved inside `torch.inference_mode()` stay ordinary tensors (the kernel caches read their version
    counters, which inference tensors lack)."""
    monkeypatch.setenv("LINGVIS_HUGEPAGES", "1")
    model = quantize_int8(_model(), activations="int8")
    ids = torch.zeros(1, 3, dtype=torch.long)
    with torch.inference_mode():
        first = model.generate(ids, max_new_tokens=4)
    assert not model.blocks[0].attn.qkv.weight_int8.is_inference()
    assert torch.equal(model.generate(ids, max_new_tokens=4), first)


def test_huge_page_share_reads_the_mapping_back():
    """The share is read from /proc/self/smaps for the moved weights' own mapping: zero for a model never moved, at
    most the bytes moved, whole 2 MB pages; a 4 MB weight set, 2 MB-aligned and populated, gets at least one huge
    page where THP runs in `always` or `madvise` mode (skipped if the kernel finds no free 2 MB block), while a
    plain 16 MB tensor (not advised) has none in `madvise` mode."""
    from lingvis.native.hugepages import anon_huge_bytes

    model = _model()
    assert native.huge_page_share(model) == (0, 0)
    model.blocks[0].mlp.extra = torch.nn.Linear(1024, 1024, bias=False)  # 4 MB more for the mover to take
    moved = native.hugepage_weights(model)
    huge, total = native.huge_page_share(model)
    assert total == moved >= 4 << 20 and 0 <= huge <= total and (huge % (2 << 20) == 0 or huge == total)  # capped
    try:
        mode = open("/sys/kernel/mm/transparent_hugepage/enabled").read()
    except OSError:
        pytest.skip("no /sys/kernel/mm/transparent_hugepage")
    if "[never]" in mode:
        assert huge == 0
        return
    if huge == 0:
        pytest.skip(f"THP ({mode.strip()}) gave no huge page here (no free 2 MB block?)")
    assert huge >= 2 << 20
    if "[madvise]" in mode:
        plain = torch.ones(4 << 20)
        assert anon_huge_bytes(plain.data_ptr(), plain.numel() * 4) == 0


def test_hugepage_empty_is_aligned_private_and_writable():
    from lingvis.native.hugepages import ALIGN, hugepage_empty

    t = hugepage_empty(3 << 20)
    assert t.dtype == torch.uint8 and t.numel() == 3 << 20 and t.data_ptr() % ALIGN == 0
    t.fill_(7)
    assert int(t.sum()) == 7 * (3 << 20)
    assert hugepage_empty(0).numel() == 0
