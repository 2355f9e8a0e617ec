import pytest

from lingvis.train.sampler import ResumableBatchSampler


def take(sampler, n):
    it = iter(sampler)
    return [next(it) for _ in range(n)]


def test_start_skips_exactly_that_many_batches():
    full = take(ResumableBatchSampler(10, 3, seed=5), 9)
    assert take(ResumableBatchSampler(10, 3, seed=5, start=4), 5) == full[4:]


def test_each_epoch_is_a_new_permutation_without_repeats():
    batches = take(ResumableBatchSampler(9, 3, seed=1), 6)
    first, second = sum(batches[:3], []), sum(batches[3:], [])
    assert sorted(first) == sorted(second) == list(range(9))
    assert first != second
    assert take(ResumableBatchSampler(9, 3, seed=2), 3) != batches[:3]


def test_ranks_split_the_global_batch():
    ranks = [take(ResumableBatchSampler(12, 2, seed=0, rank=r, world_size=3), 2) for r in range(3)]
    whole = take(ResumableBatchSampler(12, 6, seed=0), 2)
    for step in range(2):
        assert sum((ranks[r][step] for r in range(3)), []) == whole[step]


def test_no_shuffle_and_too_small_dataset():
    assert take(ResumableBatchSampler(4, 2, shuffle=False), 3) == [[0, 1], [2, 3], [0, 1]]
    with pytest.raises(ValueError, match="dataset has 3 examples, fewer than one global batch of 4"):
        ResumableBatchSampler(3, 4)
