"""The VQA pretraining ablation's side-by-side table (no learning run here)."""
from benchmarks import vqa_pretraining_learning as bench


def summary(overall: float, position: float) -> dict:
    types = {"colour": 90.0, "shape": 80.0, "count": 70.0, "position": position, "yes/no": 60.0}
    return {"step": 10, "test": {"test": {"overall": overall, "per_question_type": types, "questions": 5}}}


def test_rows_and_table_put_both_arms_side_by_side_with_the_gain():
    rows = bench.rows_of("scratch", summary(50.0, 40.0), 1.0, 2.0) + \
        bench.rows_of("pretrained", summary(60.0, 85.5), 3.0, 4.0, {"pretrain_steps": 7})
    assert [r["arm"] for r in rows] == ["scratch", "pretrained"] and rows[1]["pretrain_steps"] == 7
    assert rows[0]["finetune_steps"] == rows[1]["finetune_steps"] == 10
    lines = bench.table(rows).splitlines()
    assert lines[0].split() == ["test", "scratch", "pretrained", "gain"]
    position = next(line for line in lines if line.split()[0] == "position").split()
    assert position[1:] == ["40.0", "85.5", "+45.5"]
    assert next(line for line in lines if line.split()[0] == "overall").split()[1:] == ["50.0", "60.0", "+10.0"]


def test_table_gives_each_readout_its_own_gain():
    rows = bench.rows_of("scratch", summary(50.0, 40.0), 1.0, 2.0) + \
        bench.rows_of("pretrained", summary(52.0, 41.0), 3.0, 4.0) + \
        bench.rows_of("scratch+regions", summary(70.0, 90.0), 1.0, 2.0) + \
        bench.rows_of("pretrained+regions", summary(75.0, 92.5), 3.0, 4.0)
    lines = bench.table(rows).splitlines()
    assert lines[0].split() == ["test", "scratch", "pretrained", "scratch+regions", "pretrained+regions",
                                "gain", "gain+regions"]
    position = next(line for line in lines if line.split()[0] == "position").split()
    assert position[1:] == ["40.0", "41.0", "90.0", "92.5", "+1.0", "+2.5"]


def test_seeds_table_reads_the_runs_and_averages_each_arm(tmp_path):
    import json

    import pytest

    for seed, (s_pos, p_pos) in {"1": (40.0, 86.0), "2": (50.0, 90.0)}.items():
        d = tmp_path / seed
        d.mkdir()
        rows = bench.rows_of("scratch", summary(50.0, s_pos), 1.0, 2.0, {"position_subtypes": {"where": s_pos}})
        (d / "rows_scratch.json").write_text(json.dumps(rows))
        rows = bench.rows_of("pretrained", summary(60.0, p_pos), 1.0, 2.0, {"position_subtypes": {"where": 70.0}})
        (d / "rows_pretrained.json").write_text(json.dumps(rows))
    lines = bench.seeds_table({s: bench.load_rows(tmp_path / s) for s in ("1", "2")}).splitlines()
    assert lines[0].split() == ["test", "pretrained", "1", "scratch", "1", "pretrained", "2", "scratch", "2",
                                "pretrained", "mean", "scratch", "mean"]
    position = next(line for line in lines if line.split()[0] == "position").split()
    assert position[1:] == ["86.0", "40.0", "90.0", "50.0", "88.0", "45.0"]
    where = next(line for line in lines if line.split()[0] == "where").split()
    assert where[1:] == ["70.0", "40.0", "70.0", "50.0", "70.0", "45.0"]
    assert lines[-1].startswith("fine-tuning time: pretrained 1: 2 s CPU / 1 s wall")
    with pytest.raises(FileNotFoundError, match="rows"):
        bench.load_rows(tmp_path / "none")
