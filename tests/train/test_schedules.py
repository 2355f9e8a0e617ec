import pytest

from lingvis.train.config import TrainConfig
from lingvis.train.schedules import lr_at, warmup_steps


def test_every_schedule_warms_up_then_ends_at_min_lr_on_the_horizon():
    for schedule in ("cosine", "linear", "wsd"):
        cfg = TrainConfig(lr=1.0, min_lr=0.1, warmup_steps=10, max_steps=110, schedule=schedule)
        assert lr_at(0, cfg) == pytest.approx(0.1) and lr_at(9, cfg) == pytest.approx(1.0)
        lrs = [lr_at(s, cfg) for s in range(10, 111)]
        assert all(a >= b - 1e-12 for a, b in zip(lrs, lrs[1:])), schedule  # never rises after warmup
        assert lr_at(110, cfg) == pytest.approx(0.1) and lr_at(300, cfg) == pytest.approx(0.1)
        # a budget-derived horizon moves the end of the decay
        assert lr_at(50, cfg, horizon=50) == pytest.approx(0.1) and lr_at(49, cfg, horizon=50) > 0.1


def test_schedule_shapes_half_way():
    base = dict(lr=1.0, min_lr=0.0, warmup_steps=0, max_steps=100)
    assert lr_at(50, TrainConfig(**base, schedule="cosine")) == pytest.approx(0.5)
    assert lr_at(25, TrainConfig(**base, schedule="linear")) == pytest.approx(0.75)
    wsd = TrainConfig(**base, schedule="wsd", decay_fraction=0.2)
    assert lr_at(1, wsd) == lr_at(80, wsd) == 1.0  # stable until the last fifth
    assert lr_at(90, wsd) == pytest.approx(0.5)


def test_warmup_is_capped_by_a_short_budget_horizon():
    cfg = TrainConfig(lr=1.0, warmup_steps=100, max_steps=2000)
    assert warmup_steps(cfg) == 100 and warmup_steps(cfg, horizon=2000) == 100
    assert warmup_steps(cfg, horizon=200) == 40
    assert lr_at(39, cfg, horizon=200) == pytest.approx(1.0)


def test_bad_schedule_settings_are_rejected():
    with pytest.raises(ValueError, match="schedule must be cosine, linear or wsd"):
        TrainConfig(schedule="step")
    with pytest.raises(ValueError, match="decay_fraction"):
        TrainConfig(decay_fraction=0.0)
    with pytest.raises(ValueError, match="eval_every must be >= 1"):
        TrainConfig(eval_every=0)
