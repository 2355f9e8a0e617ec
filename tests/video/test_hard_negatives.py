"""Hard-negative groups: partners share the item's key and differ in label; keyless items stand alone."""
import pytest

from lingvis.video.hard_negatives import HardNegativeGroups, group_keys
from lingvis.video.records import VideoRecord

KEYS = ["red circle"] * 4 + ["blue star"] * 3 + [None]
LABELS = ["left", "right", "left", "up", "left", "left", "down", "up"]


def test_partners_share_the_key_and_differ_in_label():
    g = HardNegativeGroups(list(range(8)), KEYS, size=3, labels=LABELS, seed=0)
    for _ in range(20):
        item = g[0]
        assert item[0] == 0 and len(item) == 3
        assert all(KEYS[j] == "red circle" for j in item)
        assert len({LABELS[j] for j in item}) == 3  # left + right + up: the distinct labels come first
    item = g[4]  # blue star: left, left, down; distinct labels first, then any
    assert item[0] == 4 and sorted(item[1:]) == [5, 6] and LABELS[item[1]] == "down"
    assert g[7] == [7] and len(g) == 8


def test_without_labels_any_member_and_size_one_alone():
    g = HardNegativeGroups(list(range(8)), KEYS, size=10, seed=1)
    assert sorted(g[1]) == [0, 1, 2, 3]
    assert HardNegativeGroups(list(range(8)), KEYS, size=1)[2] == [2]


def test_draws_are_seeded_and_bad_arguments_named():
    a = [HardNegativeGroups(list(range(8)), KEYS, 2, seed=3)[0] for _ in range(2)]
    assert a[0] == a[1]
    with pytest.raises(ValueError, match="group size"):
        HardNegativeGroups([1, 2], ["a", "a"], 0)
    with pytest.raises(ValueError, match="3 group keys for 2 items"):
        HardNegativeGroups([1, 2], ["a", "a", "b"], 2)
    recs = [VideoRecord(path=f"{i}.mp4", meta={"colour": "red"}) for i in range(2)]
    with pytest.raises(ValueError, match="'subject'.*colour"):
        group_keys(recs, "subject")
    assert group_keys(recs, "colour") == ["red", "red"]
