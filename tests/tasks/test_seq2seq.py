"""Seq2seq task: teacher forcing, label smoothing, tokenised pairs, evaluation with BLEU/chrF."""
import math

import pytest
import torch

import lingvis
from lingvis.recipes.translate import SPECIALS
from lingvis.tasks.seq2seq import IGNORE, EncodedPairs, Seq2SeqTask, cut_at_eos, smoothed_loss, teacher_forcing
from lingvis.tokenizers import train_bpe

PAIRS = [("a red circle", "一个红色圆形"), ("a blue square", "一个蓝色正方形"), ("a small red star", "一个小的红色星形")]




@pytest.fixture(scope="module")
def tok():
    return train_bpe([t for p in PAIRS for t in p] * 5, 300, SPECIALS)


def test_teacher_forcing_shifts_and_masks_padding():
    tgt_in, labels = teacher_forcing([[5, 6, 7], [8]], start_id=2, eos_id=1, pad_id=0)
    assert tgt_in.tolist() == [[2, 5, 6, 7], [2, 8, 0, 0]]
    assert labels.tolist() == [[5, 6, 7, 1], [8, 1, IGNORE, IGNORE]]


def test_label_smoothing_matches_its_definition():
    torch.manual_seed(0)
    logits, labels = torch.randn(1, 3, 5), torch.tensor([[1, 4, IGNORE]])
    loss, acc = smoothed_loss(logits, labels, 0.1)
    logp = logits[0, :2].log_softmax(-1)
    nll = -logp[torch.arange(2), labels[0, :2]]
    expected = (0.9 * nll + 0.1 * -logp.mean(-1)).mean()
    assert math.isclose(float(loss), float(expected), rel_tol=1e-5)
    assert acc == float((logits[0, :2].argmax(-1) == labels[0, :2]).float().mean())


def test_encoded_pairs_reject_empty_sides(tok):
    with pytest.raises(ValueError, match="pair 1: empty source"):
        EncodedPairs(["a red circle", ""], ["x", "y"], tok, 32, 32)
    with pytest.raises(ValueError, match="2 sources but 1 targets"):
        EncodedPairs(["a", "b"], ["x"], tok, 32, 32)
    ds = EncodedPairs(["a red circle " * 20], ["一个红色圆形"], tok, 8, 4)
    assert len(ds[0].src) == 8 and len(ds[0].tgt) == 3  # room for eos


def test_task_loss_and_evaluation(tok):
    torch.manual_seed(0)
    model = lingvis.build("transformer-nano", vocab_size=tok.vocab_size, pad_id=tok.pad_id, eos_id=tok.eos_id,
                          decoder_start_id=tok.bos_id)
    task = Seq2SeqTask(tok, tok.bos_id, tok.eos_id, tok.pad_id, label_smoothing=0.1, target_lang="zh",
                       max_new_tokens=8)
    ds = EncodedPairs([p[0] for p in PAIRS], [p[1] for p in PAIRS], tok, 32, 32)
    batch = task.collate([ds[i] for i in range(3)])
    assert batch["src_ids"].shape[0] == 3 and batch["src_mask"].sum() == sum(len(ds[i].src) for i in range(3))
    loss, metrics = task.loss(model.train(), batch)
    loss.backward()
    assert 0 <= metrics["token_acc"] <= 1 and loss.item() > 0
    out = task.evaluate(model.eval(), [batch])
    assert {"loss", "token_acc", "bleu", "chrf"} <= set(out) and 0 <= out["bleu"] <= 100
    assert task.tokens_in(batch) > 0


def test_cut_at_eos_keeps_the_start_token():
    assert cut_at_eos(torch.tensor([[2, 5, 1, 7], [2, 6, 8, 9]]), eos_id=1) == [[2, 5], [2, 6, 8, 9]]
