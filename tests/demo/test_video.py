"""The `make demo` video step end to end on a few clips and steps (the real step trains longer)."""
import pytest

from lingvis.demo import load_steps


def test_video_step_trains_both_variants_and_reports(tmp_path, capsys):
    pytest.importorskip("av")
    from lingvis.demo.video import demo_video

    assert "video" in load_steps()
    res = demo_video(tmp_path, steps=3, minutes=1.0, n_train=2, test_groups=1, batch_size=8)
    for k in ("temporal_top1", "mean_top1", "temporal_order_accuracy", "mean_order_accuracy"):
        assert 0.0 <= res[k] <= 1.0
    out = capsys.readouterr().out
    assert "[video] temporal transformer: top-1" in out and "mean-pooled baseline" in out
    assert (tmp_path / "video" / "classify-transformer").is_dir() and (tmp_path / "video" / "classify-mean").is_dir()
