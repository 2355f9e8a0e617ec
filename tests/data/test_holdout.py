import pytest

from lingvis.data.holdout import holdout_split


def test_split_is_seeded_disjoint_and_complete():
    items = list(range(23))
    train, val = holdout_split(items, 0.2, seed=3)
    assert len(val) == 4 and sorted(train + val) == items
    assert holdout_split(items, 0.2, seed=3) == (train, val)
    assert holdout_split(items, 0.2, seed=4) != (train, val)


def test_at_least_one_and_at_most_max_val():
    assert len(holdout_split([1, 2, 3], 0.01)[1]) == 1
    assert len(holdout_split(list(range(100)), 0.5, max_val=7)[1]) == 7


@pytest.mark.parametrize("items,fraction,match", [([1], 0.1, "at least 2 videos"), ([1, 2], 1.0, "val_fraction")])
def test_errors_name_the_problem(items, fraction, match):
    with pytest.raises(ValueError, match=match):
        holdout_split(items, fraction, noun="videos")
