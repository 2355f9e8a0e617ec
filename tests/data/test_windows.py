import pytest
import torch

from lingvis.data.windows import WindowLMDataset


def test_windows_every_stride_with_shifted_labels():
    ids = torch.arange(20)
    ds = WindowLMDataset(ids, block_size=5, stride=3)
    assert len(ds) == (20 - 5 - 1) // 3 + 1 == 5
    for i in range(len(ds)):
        item = ds[i]
        s = 3 * i
        assert item["input_ids"].tolist() == list(range(s, s + 5))
        assert item["labels"].tolist() == list(range(s + 1, s + 6))
    assert ds[-1]["input_ids"].tolist() == ds[len(ds) - 1]["input_ids"].tolist()
    assert ds[len(ds) - 1]["labels"][-1].item() <= 19  # the last window stays inside the stream
    with pytest.raises(IndexError, match="out of range"):
        ds[len(ds)]


def test_stride_one_visits_every_offset():
    ds = WindowLMDataset(list(range(10)), block_size=4)
    assert [ds[i]["input_ids"][0].item() for i in range(len(ds))] == list(range(6))


@pytest.mark.parametrize("ids, T, stride, match", [
    (torch.zeros(2, 5, dtype=torch.long), 2, 1, "1-D integer"),
    (torch.zeros(10), 2, 1, "1-D integer"),
    (torch.arange(10), 0, 1, "block_size and stride"),
    (torch.arange(10), 2, 0, "block_size and stride"),
    (torch.arange(4), 4, 1, "needs at least 5"),
])
def test_bad_input_is_named(ids, T, stride, match):
    with pytest.raises(ValueError, match=match):
        WindowLMDataset(ids, T, stride)
