import argparse
import json

import pytest

from lingvis.cli.common import add_train_args, apply_config, train_config


def parse(argv, cfg=None):
    p = argparse.ArgumentParser()
    add_train_args(p, max_steps=100)
    args = p.parse_args(argv)
    if cfg is not None:
        apply_config(args, argv)
    return args


def test_config_fills_unset_options_and_flags_win(tmp_path):
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"max-steps": 7, "lr": 0.01, "no_progress": True, "warmup_steps": 3}))
    argv = ["--out", "o", "--config", str(cfg), "--max-steps", "5", "--warmup=9"]
    tc = train_config(parse(argv, cfg))
    assert (tc.max_steps, tc.lr, tc.progress, tc.warmup_steps) == (5, 0.01, False, 9)


def test_abbreviated_flags_also_win_over_the_file(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("max_steps: 7\nbatch_size: 32\n")
    tc = train_config(parse(["--out", "o", "--config", str(cfg), "--max-s", "5"], cfg))
    assert tc.max_steps == 5 and tc.batch_size == 32


def test_unknown_key_is_named(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("max_step: 7\n")
    with pytest.raises(SystemExit, match="unknown option 'max_step'"):
        parse(["--out", "o", "--config", str(cfg)], cfg)


def test_budget_alone_sets_the_horizon_and_explicit_max_steps_caps_it():
    from lingvis.cli.common import BUDGET_ONLY_MAX_STEPS

    assert train_config(parse(["--out", "o"])).max_steps == 100  # the command's default
    assert train_config(parse(["--out", "o", "--max-minutes", "2"])).max_steps == BUDGET_ONLY_MAX_STEPS
    tc = train_config(parse(["--out", "o", "--max-minutes", "2", "--max-steps", "50"]))
    assert (tc.max_steps, tc.max_minutes) == (50, 2.0)
