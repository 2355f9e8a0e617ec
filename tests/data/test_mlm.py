"""Pretraining data: sentence pairs for NSP and the MLM masking rules."""
import pytest
import torch

from lingvis.data.mlm import (MaskingConfig, MLMCollator, PairInstance, SentencePairDataset, split_sentences,
                              tokenize_documents)

CLS, SEP, PAD, MASK = 1, 2, 0, 3
SPECIAL = [PAD, CLS, SEP, MASK]
V = 200


def docs(n_docs=6, n_sent=30):
    """Document d, sentence s = token ids unique to (d, s): lets a test tell where each token came from."""
    return [[[BASE + 1000 * d + 10 * s + k for k in range(5)] for s in range(n_sent)] for d in range(n_docs)]


BASE = 100_000


def origin(tok):
    return (tok - BASE) // 1000, ((tok - BASE) % 1000) // 10


def test_split_sentences():
    text = "To be, or not to be: that is the question. Whether 'tis nobler!\n\nNew speech here"
    assert split_sentences(text) == ["To be, or not to be:", "that is the question.", "Whether 'tis nobler!",
                                     "New speech here"]


def test_pairs_are_half_true_next_and_well_formed():
    ds = SentencePairDataset(docs(), CLS, SEP, max_len=40, dupe_factor=4, seed=0)
    labels = [x.is_next for x in ds]
    assert 0.4 < sum(labels) / len(labels) < 0.6
    for x in ds:
        assert len(x.ids) <= 40 and len(x.ids) == len(x.token_type_ids)
        assert x.ids[0] == CLS and x.ids[-1] == SEP and x.ids.count(SEP) == 2
        cut = x.ids.index(SEP)
        assert x.token_type_ids == [0] * (cut + 1) + [1] * (len(x.ids) - cut - 1)
        a, b = x.ids[1:cut], x.ids[cut + 1:-1]
        assert a and b
        doc_a, doc_b = {origin(t)[0] for t in a}, {origin(t)[0] for t in b}
        assert len(doc_a) == 1
        if x.is_next:  # B continues A in the same document
            assert doc_b == doc_a and origin(b[0])[1] >= origin(a[-1])[1]
        else:  # B comes from another document
            assert doc_a.isdisjoint(doc_b)


def test_single_document_is_split_for_random_segments():
    class Tok:
        def encode_batch(self, texts):
            return [[len(t)] * 3 for t in texts]
    text = " ".join(f"Sentence number {i}." for i in range(40))
    assert len(tokenize_documents(Tok(), [text])) == 10
    with pytest.raises(ValueError, match="empty"):
        tokenize_documents(Tok(), ["   "])


def test_mlm_only_instances():
    ds = SentencePairDataset(docs(2), CLS, SEP, max_len=32, nsp=False)
    assert all(x.is_next == -100 and x.ids.count(SEP) == 1 and len(x.ids) <= 32 for x in ds)


def instance(n=100):
    ids = [CLS] + list(range(10, 10 + n)) + [SEP]
    return PairInstance(ids, [0] * len(ids), 1)


def test_masking_rate_80_10_10_and_specials_untouched():
    torch.manual_seed(0)
    col = MLMCollator(V, PAD, MASK, SPECIAL)
    batch = col([instance() for _ in range(200)])
    labels, ids = batch["mlm_labels"], batch["input_ids"]
    chosen = labels != -100
    assert (chosen.sum(1) == 15).all()  # 15% of 100 candidate tokens per row
    assert not chosen[:, 0].any() and not chosen[:, -1].any()  # [CLS] and [SEP] never chosen
    orig = torch.tensor(instance().ids).expand_as(ids)
    assert torch.equal(labels[chosen], orig[chosen])
    n = chosen.sum().item()
    masked = (ids[chosen] == MASK).sum().item() / n
    kept = (ids[chosen] == orig[chosen]).sum().item() / n
    assert 0.76 < masked < 0.84 and 0.07 < kept < 0.13
    assert torch.equal(ids[~chosen], orig[~chosen])
    assert not set(ids[chosen].tolist()) & {PAD, CLS, SEP} - {MASK}


def test_whole_word_masking_takes_all_pieces():
    torch.manual_seed(1)
    continuation = [False] * V
    for t in range(10, 110):
        continuation[t] = t % 3 != 1  # words of three pieces: 10|11 12, 13|14 15 ... (start at t % 3 == 1)
    col = MLMCollator(V, PAD, MASK, SPECIAL, continuation, MaskingConfig(whole_word=True, mask_frac=1.0,
                                                                         random_frac=0.0))
    batch = col([instance(99) for _ in range(50)])
    for row in batch["mlm_labels"]:
        pos = set((row != -100).nonzero().flatten().tolist())
        starts = {p for p in pos if (p + 9) % 3 == 1}  # token id at position p is p + 9
        assert pos == {s + k for s in starts for k in range(3)}
        assert 12 <= len(pos) <= 15


def test_collator_pads_and_labels():
    torch.manual_seed(0)
    col = MLMCollator(V, PAD, MASK, SPECIAL)
    a, b = instance(20), PairInstance([CLS, 11, 12, SEP, 13, SEP], [0, 0, 0, 0, 1, 1], 0)
    batch = col([a, b])
    assert batch["input_ids"].shape == (2, 22)
    assert batch["attention_mask"][1].tolist() == [1] * 6 + [0] * 16
    assert batch["token_type_ids"][1, :6].tolist() == [0, 0, 0, 0, 1, 1]
    assert batch["nsp_labels"].tolist() == [1, 0]
    assert (batch["mlm_labels"][1] != -100).sum() == 1  # at least one prediction even in short rows


def test_bad_configs():
    with pytest.raises(ValueError, match="mlm_prob"):
        MaskingConfig(mlm_prob=0.0)
    with pytest.raises(ValueError, match="whole-word"):
        MLMCollator(V, PAD, MASK, SPECIAL, None, MaskingConfig(whole_word=True))
    with pytest.raises(ValueError, match="at least 2 documents"):
        SentencePairDataset(docs(1), CLS, SEP)
