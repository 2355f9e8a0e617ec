import pytest

from lingvis.train.config import TrainConfig


def test_micro_batch():
    assert TrainConfig(batch_size=16, grad_accum=4).micro_batch == 4


@pytest.mark.parametrize("kw, msg", [
    ({"batch_size": 10, "grad_accum": 3}, "batch_size 10 is not divisible by grad_accum 3"),
    ({"precision": "fp8"}, "precision must be fp32, bf16 or fp16"),
    ({"max_steps": 0}, "max_steps must be >= 1"),
])
def test_invalid_values_are_named(kw, msg):
    with pytest.raises(ValueError, match=msg):
        TrainConfig(**kw)
