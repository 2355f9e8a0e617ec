"""DPO: the loss computed independently (token by token, plain math) on a fixed example matches the task;
precomputed, live and LoRA-disabled references agree."""
from __future__ import annotations

import copy
import math

import pytest
import torch

from lingvis.data.chat import Conversation, PreferencePair
from lingvis.data.chat_dataset import encode_preferences
from lingvis.lora import LoRAConfig, adapters_disabled, apply_lora
from lingvis.models import registry
from lingvis.recipes.chat import chat_tokenizer
from lingvis.tasks.dpo import DPOTask, dpo_loss, precompute_reference

PAIRS = [
    PreferencePair([{"role": "user", "content": "reverse: abc"}], [{"role": "assistant", "content": "cba"}],
                   [{"role": "assistant", "content": "The answer is cba."}], "p0"),
    PreferencePair([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "count a in aab"}],
                   [{"role": "assistant", "content": "2"}], [{"role": "assistant", "content": "two"}], "p1"),
]
BETA = 0.5


@pytest.fixture(scope="module")
def tok():
    texts = [Conversation([{"role": "user", "content": "abcdefghijklmnopqrstuvwxyz TA.012345:"}])]
    return chat_tokenizer(texts)


def _model(tok, seed):
    torch.manual_seed(seed)
    return registry.build("gpt-nano", vocab_size=tok.vocab_size, block_size=128).eval()


def _completion_logp(model, tok, pair, side) -> float:
    """Sum of log p(token | prefix) over the completion tokens, one forward per token, in float64 math."""
    prompt = tok.apply_chat_template(pair.prompt, add_generation_prompt=True, tokenize=True)
    full = tok.apply_chat_template(pair.prompt + getattr(pair, side), add_generation_prompt=False, tokenize=True)
    assert full[:len(prompt)] == prompt
    total = 0.0
    with torch.no_grad():
        for t in range(len(prompt), len(full)):
            logits = model(torch.tensor([full[:t]]))[0, -1].double()
            total += float(logits[full[t]] - torch.logsumexp(logits, 0))
    return total


def test_dpo_loss_matches_independent_computation(tok):
    policy, reference = _model(tok, 0), _model(tok, 1)
    items = encode_preferences(tok, PAIRS).examples
    task = DPOTask(tok.pad_id, beta=BETA, reference=reference)
    loss, metrics = task.loss(policy, task.collate(items))

    losses, margins, wins = [], [], []
    for pair in PAIRS:
        pc, pr = _completion_logp(policy, tok, pair, "chosen"), _completion_logp(policy, tok, pair, "rejected")
        rc, rr = _completion_logp(reference, tok, pair, "chosen"), _completion_logp(reference, tok, pair, "rejected")
        z = BETA * ((pc - rc) - (pr - rr))
        losses.append(math.log1p(math.exp(-z)))  # -log sigmoid(z)
        margins.append(z)
        wins.append(pc > pr)
    assert float(loss.detach()) == pytest.approx(sum(losses) / 2, abs=1e-5)
    assert metrics["reward_margin"] == pytest.approx(sum(margins) / 2, abs=1e-5)
    assert metrics["reward_accuracy"] == sum(m > 0 for m in margins) / 2
    assert metrics["preference_accuracy"] == sum(wins) / 2


def test_label_smoothing_and_argument_checks():
    z = torch.tensor([0.7, -1.2])
    loss, _, _ = dpo_loss(z, torch.zeros(2), torch.zeros(2), torch.zeros(2), beta=1.0, label_smoothing=0.2)
    expect = (-(0.8 * torch.nn.functional.logsigmoid(z) + 0.2 * torch.nn.functional.logsigmoid(-z))).mean()
    torch.testing.assert_close(loss, expect)
    with pytest.raises(ValueError, match="beta must be > 0"):
        DPOTask(0, beta=0)


def test_precomputed_and_live_references_agree(tok):
    policy, reference = _model(tok, 0), _model(tok, 1)
    items = encode_preferences(tok, PAIRS).examples
    live = DPOTask(tok.pad_id, BETA, reference).loss(policy, DPOTask(tok.pad_id).collate(items))[0]
    precompute_reference(reference, items, tok.pad_id)
    task = DPOTask(tok.pad_id, BETA)
    batch = task.collate(items)
    assert "ref_logps" in batch
    torch.testing.assert_close(task.loss(policy, batch)[0], live, atol=1e-5, rtol=1e-5)
    # the starting policy as its own reference: zero rewards, loss log 2
    precompute_reference(policy, items, tok.pad_id)
    torch.testing.assert_close(task.loss(policy, task.collate(items))[0], torch.tensor(math.log(2)), atol=1e-5,
                               rtol=0)


def test_lora_disabled_model_is_the_reference(tok):
    base = _model(tok, 0)
    policy = copy.deepcopy(base)
    apply_lora(policy, LoRAConfig(rank=2))
    with torch.no_grad():
        for name, p in policy.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)  # adapters that change the model
    items = encode_preferences(tok, PAIRS).examples
    batch = DPOTask(tok.pad_id).collate(items)
    via_lora = DPOTask(tok.pad_id, BETA).loss(policy, batch)[0]
    via_base = DPOTask(tok.pad_id, BETA, base).loss(policy, batch)[0]
    torch.testing.assert_close(via_lora, via_base, atol=1e-5, rtol=1e-5)
    assert abs(float(via_lora) - math.log(2)) > 1e-3
    x = batch["input_ids"][:1]
    with adapters_disabled(policy):
        torch.testing.assert_close(policy(x), base(x), atol=1e-5, rtol=1e-5)
    assert (policy(x) - base(x)).abs().max() > 1e-3  # the scales are restored afterwards
    with pytest.raises(ValueError, match="DPO needs reference log-probabilities"):
        DPOTask(tok.pad_id, BETA).loss(base, batch)


def _completion_token_logps(model, tok, pair, side) -> list[float]:
    """log p(token | prefix) of each completion token, one forward per token, in float64 math."""
    prompt = tok.apply_chat_template(pair.prompt, add_generation_prompt=True, tokenize=True)
    full = tok.apply_chat_template(pair.prompt + getattr(pair, side), add_generation_prompt=False, tokenize=True)
    out = []
    with torch.no_grad():
        for t in range(len(prompt), len(full)):
            logits = model(torch.tensor([full[:t]]))[0, -1].double()
            out.append(float(logits[full[t]] - torch.logsumexp(logits, 0)))
    return out


@pytest.mark.parametrize("alpha", [0.0, 0.7])
def test_rpo_loss_adds_chosen_nll_computed_independently(tok, alpha):
    """RPO (TRL's rpo_alpha): DPO loss + alpha * NLL of the chosen completions averaged over their tokens."""
    policy, reference = _model(tok, 0), _model(tok, 1)
    items = encode_preferences(tok, PAIRS).examples
    task = DPOTask(tok.pad_id, beta=BETA, reference=reference, rpo_alpha=alpha)
    loss, metrics = task.loss(policy, task.collate(items))

    dpo, chosen_tokens = [], []
    for pair in PAIRS:
        pc = _completion_token_logps(policy, tok, pair, "chosen")
        pr = sum(_completion_token_logps(policy, tok, pair, "rejected"))
        rc, rr = _completion_logp(reference, tok, pair, "chosen"), _completion_logp(reference, tok, pair, "rejected")
        z = BETA * ((sum(pc) - rc) - (pr - rr))
        dpo.append(math.log1p(math.exp(-z)))
        chosen_tokens += pc
    nll = -sum(chosen_tokens) / len(chosen_tokens)  # token mean over the batch, not a mean of per-pair means
    assert metrics["nll_loss"] == pytest.approx(nll, abs=1e-5)
    assert float(loss.detach()) == pytest.approx(sum(dpo) / 2 + alpha * nll, abs=1e-5)
    # the NLL term is added only when alpha > 0
    plain = DPOTask(tok.pad_id, beta=BETA, reference=reference).loss(policy, task.collate(items))[0]
    assert (float(loss) - float(plain) > 1e-3) == (alpha > 0)
    with pytest.raises(ValueError, match="rpo_alpha must be >= 0"):
        DPOTask(tok.pad_id, rpo_alpha=-1.0)
