"""Packing a token stream into causal-LM blocks, and joining documents with EOS."""

import pytest
import torch
from torch.utils.data import DataLoader

from lingvis.data.packing import PackedLMDataset, encode_documents
from lingvis.tokenizers import Tokenizer, train_char


def test_blocks_shapes_and_label_shift():
    ids = torch.arange(23)
    ds = PackedLMDataset(ids, block_size=5)
    assert len(ds) == 4  # (23 - 1) // 5; the tail is dropped
    for i in range(len(ds)):
        item = ds[i]
        assert item["input_ids"].shape == (5,) and item["labels"].shape == (5,)
        assert item["input_ids"].dtype == torch.long
        assert torch.equal(item["input_ids"], torch.arange(5 * i, 5 * i + 5))
        assert torch.equal(item["labels"], item["input_ids"] + 1)
    assert torch.equal(ds[-1]["input_ids"], ds[3]["input_ids"])
    with pytest.raises(IndexError, match="block index 4 out of range for 4 blocks"):
        ds[4]


def test_exact_fit_and_list_input():
    ds = PackedLMDataset([7, 8, 9, 10, 11], block_size=4)
    assert len(ds) == 1
    assert ds[0]["labels"].tolist() == [8, 9, 10, 11]


def test_dataloader_batches():
    ds = PackedLMDataset(torch.randint(0, 50, (1000,), generator=torch.Generator().manual_seed(0)), 16)
    batch = next(iter(DataLoader(ds, batch_size=8)))
    assert batch["input_ids"].shape == (8, 16) and batch["labels"].shape == (8, 16)
    assert torch.equal(batch["input_ids"][:, 1:], batch["labels"][:, :-1])


def test_errors():
    with pytest.raises(ValueError, match=r"token stream has 8 tokens but block_size=8 needs at least 9"):
        PackedLMDataset(torch.arange(8), block_size=8)
    with pytest.raises(ValueError, match=r"1-D token stream, got shape \(2, 5\)"):
        PackedLMDataset(torch.zeros(2, 5, dtype=torch.long), block_size=2)
    with pytest.raises(TypeError, match="integer token ids, got dtype torch.float32"):
        PackedLMDataset(torch.zeros(10), block_size=2)
    with pytest.raises(ValueError, match="block_size must be >= 1, got 0"):
        PackedLMDataset(torch.arange(10), block_size=0)


def test_encode_documents_appends_eos():
    tok = train_char("abc")
    stream = encode_documents(tok, ["ab", "c", "ba"])
    eos = tok.eos_id
    assert stream.dtype == torch.long
    expected = tok.encode("ab") + [eos] + tok.encode("c") + [eos] + tok.encode("ba") + [eos]
    assert stream.tolist() == expected
    assert encode_documents(tok, ["ab", "c"], append_eos=False).tolist() == tok.encode("abc")


def test_encode_documents_requires_eos():
    tok = train_char("abc")
    no_eos = Tokenizer(tok.backend, {"unk": "<|unk|>"})
    with pytest.raises(ValueError, match="tokenizer has no eos token"):
        encode_documents(no_eos, ["ab"])
