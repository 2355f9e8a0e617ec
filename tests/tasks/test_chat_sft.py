"""Chat SFT: exactly which tokens carry loss, packing without cross-contamination, collation."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lingvis.data.chat import Conversation
from lingvis.data.chat_dataset import IGNORE, encode_conversations, pack_examples
from lingvis.models import registry
from lingvis.recipes.chat import chat_tokenizer
from lingvis.tasks.chat_sft import ChatSFTTask
from lingvis.tasks.packed_attention import document_mask

CONVERSATIONS = [
    Conversation([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "sort: 3 1 2"},
                  {"role": "assistant", "content": "1 2 3"}, {"role": "user", "content": "reverse: abc"},
                  {"role": "assistant", "content": "cba"}], "c0"),
    Conversation([{"role": "user", "content": "count a in aab"}, {"role": "assistant", "content": "2"}], "c1"),
    Conversation([{"role": "user", "content": "x=1 y=2; y?"}, {"role": "assistant", "content": "2"},
                  {"role": "user", "content": "reverse: xy"}, {"role": "assistant", "content": "yx"}], "c2"),
]


@pytest.fixture(scope="module")
def tok():
    return chat_tokenizer(CONVERSATIONS + [Conversation([{"role": "user", "content": "0123456789 abcxyz;=?"}])])


def _segments(tok, labels: torch.Tensor) -> list[str]:
    """Contiguous runs of loss-carrying label tokens, decoded with special tokens."""
    runs, cur = [], []
    for t in labels.tolist() + [IGNORE]:
        if t == IGNORE:
            if cur:
                runs.append(tok.decode(cur, skip_special_tokens=False))
            cur = []
        else:
            cur.append(t)
    return runs


def test_exactly_the_assistant_tokens_carry_loss(tok):
    ex = encode_conversations(tok, CONVERSATIONS[:1]).examples[0]
    text = tok.decode(ex["input_ids"], skip_special_tokens=False)
    assert text.startswith("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nsort: 3 1 2<|im_end|>")
    assert _segments(tok, ex["labels"]) == ["1 2 3<|im_end|>\n", "cba<|im_end|>\n"]
    # label t is the token after input t: the first loss position is the last token of "assistant\n"
    first = int((ex["labels"] != IGNORE).nonzero()[0])
    assert tok.decode(ex["input_ids"][first - 2:first + 1].tolist(), skip_special_tokens=False) == \
        "<|im_start|>assistant\n"  # the role name is one token
    assert int((ex["labels"] != IGNORE).sum()) == len("1 2 3") + 2 + len("cba") + 2


def test_task_loss_is_cross_entropy_on_assistant_tokens_only(tok):
    torch.manual_seed(0)
    model = registry.build("gpt-nano", vocab_size=tok.vocab_size, block_size=128)
    task = ChatSFTTask(tok)
    examples = encode_conversations(tok, CONVERSATIONS).examples
    batch = task.collate(examples)
    loss, _ = task.loss(model, batch)
    logits = model(batch["input_ids"])
    keep = batch["labels"] != IGNORE
    manual = F.cross_entropy(logits[keep], batch["labels"][keep])
    torch.testing.assert_close(loss, manual, atol=1e-5, rtol=1e-5)
    batch["labels"][0, :] = IGNORE  # labels of the first conversation dropped: the loss changes
    assert abs(float(task.loss(model, batch)[0].detach()) - float(loss.detach())) > 1e-4


@pytest.mark.parametrize("preset,shift", [("gpt-nano", 0), ("llama-micro", 0), ("llama-micro", 7)])
def test_packed_rows_do_not_contaminate(tok, preset, shift):
    """Each conversation in a packed row gets exactly the logits (and so the loss) it gets alone (a token shift
    must not reach over a document start either)."""
    torch.manual_seed(0)
    model = registry.build(preset, vocab_size=tok.vocab_size, block_size=256, n_layer=2, n_embd=32, n_head=4,
                           token_shift=shift).eval()
    examples = encode_conversations(tok, CONVERSATIONS).examples
    rows = pack_examples(examples, 256)
    assert len(rows) == 1 and rows[0]["doc_ids"].max() == 2
    row = rows[0]
    with torch.no_grad():
        packed = model(row["input_ids"][None], position_ids=row["position_ids"][None],
                       attn_mask=document_mask(row["doc_ids"][None]))[0]  # (T, V)
    with torch.no_grad():
        unmasked = model(row["input_ids"][None], position_ids=row["position_ids"][None])[0]
    start = 0
    for doc in range(3):
        n = int((row["doc_ids"] == doc).sum())
        ids = row["input_ids"][start:start + n]
        with torch.no_grad():
            alone = model(ids[None])[0]
        torch.testing.assert_close(packed[start:start + n], alone, atol=2e-5, rtol=1e-5)
        if doc:  # without the mask, later conversations would see the earlier ones
            assert (unmasked[start:start + n] - alone).abs().max() > 1e-3
        start += n
    task = ChatSFTTask(tok)
    torch.testing.assert_close(task.loss(model, task.collate(rows))[0], task.loss(model, task.collate(examples))[0],
                               atol=1e-5, rtol=1e-5)


def test_pack_examples_best_fit(tok):
    examples = encode_conversations(tok, CONVERSATIONS * 7).examples
    lengths = sorted(len(e["input_ids"]) for e in examples)
    rows = pack_examples(examples, 100)
    assert sum(len(r["input_ids"]) for r in rows) == sum(lengths)
    assert all(len(r["input_ids"]) <= 100 for r in rows)
    assert sum(len(r["input_ids"]) <= 50 for r in rows) <= 1  # best fit: never two rows at most half full
    assert len(rows) == 11  # lengths 64, 24, 44 (x7): each 64 with a 24, the 44s in pairs: the optimum
    assert [r["input_ids"].tolist() for r in rows] == [r["input_ids"].tolist() for r in pack_examples(examples, 100)]
    for r in rows:
        for d in r["doc_ids"].unique():
            pos = r["position_ids"][r["doc_ids"] == d]
            assert pos.tolist() == list(range(len(pos)))
    with pytest.raises(ValueError, match="does not fit block_size=10"):
        pack_examples(examples, 10)


def test_document_mask():
    mask = document_mask(torch.tensor([[0, 0, 1, 1, -1]]))[0, 0]
    assert mask.tolist() == [[True, False, False, False, False], [True, True, False, False, False],
                             [False, False, True, False, False], [False, False, True, True, False],
                             [False, False, False, False, True]]


def test_collate_and_held_out_items(tok):
    enc = encode_conversations(tok, CONVERSATIONS, with_prompts=True)
    batch = ChatSFTTask(tok).collate(enc.examples)
    T = max(len(e["input_ids"]) for e in enc.examples)
    assert batch["input_ids"].shape == batch["labels"].shape == (3, T) and "doc_ids" not in batch
    assert batch["answer"] == ["cba", "2", "yx"]
    prompt = tok.decode(batch["prompt_ids"][2], skip_special_tokens=False)
    assert prompt.endswith("reverse: xy<|im_end|>\n<|im_start|>assistant\n")
    assert encode_conversations(tok, CONVERSATIONS, max_len=40).dropped == 2
