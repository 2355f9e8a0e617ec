"""Progress output: a live bar on a terminal; in logs whole lines, at most one per 10% or 30 s."""
from __future__ import annotations

import io

from tqdm.auto import tqdm

from lingvis.progress import LogProgress, progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class Clock:
    t = 0.0

    def __call__(self) -> float:
        return self.t


def test_log_gets_a_line_per_tenth_not_per_update():
    out = io.StringIO()
    for _ in progress(range(1000), desc="work", file=out, mininterval=0):
        pass
    text = out.getvalue()
    assert "\r" not in text
    lines = text.splitlines()
    assert 10 <= len(lines) <= 12, lines  # start, each tenth, the end
    assert lines[0].startswith("work:") and "0/1000" in lines[0]
    assert "1000/1000" in lines[-1] and "100%" in lines[-1]
    assert text.endswith("\n") and "\n\n" not in text


def test_log_reports_slow_work_every_30_seconds():
    out, clock = io.StringIO(), Clock()
    bar = progress(total=1_000_000, desc="slow", file=out, mininterval=0)
    clock.t = bar._last_t  # the bar's clock, from its first line on
    bar._time = clock
    for _ in range(5):  # 5 updates of 0.0001% each, 31 s apart: 5 lines after the start
        clock.t += 31
        bar.update(1)
    for _ in range(20):  # 20 more, 1 s apart: nothing new until 30 s have passed
        clock.t += 1
        bar.update(1)
    bar.close()
    lines = out.getvalue().splitlines()
    assert len(lines) == 1 + 5 + 1  # start, five heartbeats, the final state
    assert lines[-1].startswith("slow:") and "25/1000000" in lines[-1]


def test_postfix_updates_do_not_add_lines():
    out = io.StringIO()
    bar = progress(total=100, desc="train", file=out, mininterval=0)
    for i in range(100):
        bar.update(1)
        bar.set_postfix(loss=f"{1 / (i + 1):.4f}")
    bar.close()
    lines = out.getvalue().splitlines()
    assert len(lines) <= 12 and "loss=0.0100" in lines[-1]


def test_terminal_gets_one_live_bar():
    out = Terminal()
    bar = progress(range(50), desc="live", file=out, mininterval=0)
    assert type(bar) is tqdm and not isinstance(bar, LogProgress)
    for _ in bar:
        pass
    text = out.getvalue()
    assert text.count("\r") > 10 and text.count("\n") <= 1  # redrawn in place


def test_short_work_with_a_delay_prints_nothing():
    out = io.StringIO()
    for _ in progress(range(100), file=out, delay=60):
        pass
    assert out.getvalue() == ""


def test_disabled_bar_prints_nothing_and_counts():
    out = io.StringIO()
    bar = progress(total=10, file=out, disable=True)
    bar.update(3)
    bar.close()
    assert out.getvalue() == ""


def test_training_in_a_log_writes_few_lines(tmp_path, capsys):
    import torch

    import lingvis
    from lingvis.data.packing import PackedLMDataset
    from lingvis.tasks.lm import CausalLMTask
    from lingvis.train.config import TrainConfig
    from lingvis.train.trainer import Trainer

    torch.manual_seed(0)
    ids = torch.randint(0, 23, (1500,), generator=torch.Generator().manual_seed(0))
    cfg = TrainConfig(max_steps=40, eval_every=40, eval_batches=1, batch_size=2, warmup_steps=1, device="cpu")
    Trainer(lingvis.build("gpt-nano", vocab_size=23, block_size=8), CausalLMTask(), PackedLMDataset(ids, 8),
            PackedLMDataset(ids[:200], 8), cfg, tmp_path).fit()
    err = capsys.readouterr().err
    bar_lines = [line for line in err.splitlines() if "/40" in line]
    assert "\r" not in err and 2 <= len(bar_lines) <= 12, err
    assert "40/40" in bar_lines[-1]


def test_other_torchrun_ranks_stay_quiet(monkeypatch):
    out = io.StringIO()
    monkeypatch.setenv("RANK", "1")
    for _ in progress(range(10), file=out):
        pass
    assert out.getvalue() == ""


def test_long_commands_report_in_logs(tmp_path, capsys, monkeypatch):
    """Data generation (the shapes scenes) reports through the same helper when it takes a while."""
    import lingvis.progress as prog
    from lingvis.data.shapes import generate_shapes

    real = prog.progress
    monkeypatch.setattr("lingvis.data.shapes.progress", lambda *a, **k: real(*a, **{**k, "delay": 0}))
    generate_shapes(tmp_path, n_train=30, n_val=0, n_test=0, n_test_unseen=0, image_size=16)
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("shapes train")]
    assert 2 <= len(lines) <= 12 and "30/30" in lines[-1]
