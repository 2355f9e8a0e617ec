import math

import pytest

from lingvis.recipes.gpt import BUDGET_DEFAULTS, DEFAULT_PRESET, GPTPretrainArgs, defaults_for, make_model
from lingvis.tokenizers import train_char


@pytest.fixture(scope="module")
def tok():
    return train_char(["To be, or not to be: that is the question."])


def test_budget_rows_cover_every_budget_in_order():
    ends = [d.up_to_minutes for d in BUDGET_DEFAULTS]
    assert ends == sorted(ends) and ends[-1] == math.inf
    assert defaults_for(None) is BUDGET_DEFAULTS[-1]  # a step-bounded run takes the longest row
    assert defaults_for(0.5) is BUDGET_DEFAULTS[0]
    assert defaults_for(ends[0]) is BUDGET_DEFAULTS[0] and defaults_for(ends[0] + 0.01) is BUDGET_DEFAULTS[1]


def test_fresh_model_takes_the_budget_shape_and_erf_gelu(tok, tmp_path):
    d = defaults_for(1.8)
    model = make_model(GPTPretrainArgs(out=str(tmp_path)), tok, max_minutes=1.8)
    c = model.config
    assert (c.n_layer, c.n_embd, c.block_size) == (d.model["n_layer"], d.model["n_embd"], d.block_size)
    assert c.vocab_size == tok.vocab_size and c.activation == "gelu"


def test_explicit_preset_and_overrides_win(tok, tmp_path):
    args = GPTPretrainArgs(out=str(tmp_path), preset=DEFAULT_PRESET, block_size=48,
                           overrides={"activation": "gelu_tanh"})
    c = make_model(args, tok, max_minutes=1.8).config
    assert c.block_size == 48 and c.activation == "gelu_tanh"  # the preset's shape, not the budget's
    with pytest.raises(ValueError, match="not gpt"):
        make_model(GPTPretrainArgs(out=str(tmp_path), preset="bert-mini"), tok)


def test_cli_fills_only_the_options_left_unset():
    from lingvis.cli import build_parser
    from lingvis.cli.gpt import apply_budget_defaults

    args = build_parser().parse_args(["pretrain", "gpt", "--out", "x", "--max-minutes", "1.8", "--lr", "0.01"])
    apply_budget_defaults(args)
    d = defaults_for(1.8)
    assert args.lr == 0.01  # given on the command line
    assert (args.batch_size, args.warmup_steps, args.beta2, args.stride) == (d.batch_size, d.warmup_steps, d.beta2,
                                                                             d.stride)
    assert args.optimizer == d.optimizer == "muon"  # the sweep's choice for short budgets
    adamw = build_parser().parse_args(["pretrain", "gpt", "--out", "x", "--max-minutes", "1.8", "--optimizer", "adamw"])
    apply_budget_defaults(adamw)
    assert adamw.optimizer == "adamw"
    steps_only = build_parser().parse_args(["pretrain", "gpt", "--out", "x"])
    apply_budget_defaults(steps_only)
    assert steps_only.batch_size == defaults_for(None).batch_size and steps_only.lr == defaults_for(None).lr
