import json

from lingvis.train.logging import MetricsLog, plot_losses


def test_fresh_log_truncates_and_resume_drops_rows_after_the_checkpoint(tmp_path):
    path = tmp_path / "m.jsonl"
    log = MetricsLog(path)
    for s in range(1, 6):
        log.write({"step": s, "split": "train", "loss": 1.0 / s})
    log.write({"step": 4, "split": "val", "loss": 0.3})
    resumed = MetricsLog(path, resume_step=3)
    assert [r["step"] for r in resumed.rows()] == [1, 2, 3]
    resumed.write({"step": 4, "split": "train", "loss": 0.25})
    assert json.loads(path.read_text().splitlines()[-1]) == {"step": 4, "split": "train", "loss": 0.25}
    assert MetricsLog(path).rows() == []


def test_loss_plot_is_written(tmp_path):
    rows = [{"step": s, "split": "train", "loss": 3 - s * 0.1} for s in range(1, 20)]
    rows.append({"step": 10, "split": "val", "loss": 2.5})
    plot_losses(rows, tmp_path / "loss.png")
    assert (tmp_path / "loss.png").read_bytes()[:4] == b"\x89PNG"
