"""`lingvis data videos`, `finetune video-classify`, `classify-video`, `pretrain video-clip`, `search-videos`,
`evaluate video-classify` and `evaluate video-retrieval` end to end on tiny data."""
import json

import pytest

from lingvis.cli import main

pytest.importorskip("av")
TRAIN = ["--max-steps", "2", "--batch-size", "6", "--eval-every", "2", "--eval-batches", "1", "--warmup-steps", "1",
         "--no-progress"]


def lines(capsys):
    return [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith("{")]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("video-cli") / "motion"
    assert main(["data", "videos", "--out", str(root), "--n-train", "1", "--n-val", "1", "--n-test-groups", "1",
                 "--frames", "8"]) == 0
    return root


def test_data_videos_writes_every_split(data):
    for split in ("train", "val", "test"):
        assert (data / f"{split}.csv").is_file() and (data / f"captions_{split}.json").is_file()
        assert (data / f"qa_{split}.json").is_file()
    assert len(list((data / "train").rglob("*.mp4"))) == 12
    assert json.loads((data / "captions_val.json").read_text())["info"]["frames"] == 8
