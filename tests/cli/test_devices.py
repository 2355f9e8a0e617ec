"""`--device auto` (CUDA, else MPS, else CPU) is the default of every command that runs a model."""
from __future__ import annotations

import argparse

import pytest
import torch

from lingvis.cli import build_parser
from lingvis.cli.common import DEVICE_HELP, device_for
from lingvis.train.trainer import pick_device

RUNNERS = ["generate", "chat", "embed", "search-text", "predict classify", "predict tag", "predict qa",
           "zero-shot", "search-images", "evaluate retrieval", "translate", "evaluate translate", "caption",
           "evaluate caption", "vqa"]


def _subparser(path: str) -> argparse.ArgumentParser:
    p = build_parser()
    for name in path.split():
        sub = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction))
        p = sub.choices[name]
    return p


@pytest.mark.parametrize("command", RUNNERS)
def test_model_commands_default_to_auto(command):
    (device,) = [a for a in _subparser(command)._actions if "--device" in a.option_strings]
    assert device.default == "auto" and device.help == DEVICE_HELP


def test_auto_prefers_cuda_then_mps_then_cpu(monkeypatch):
    mps = torch.backends.mps
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(mps, "is_available", lambda: False)
    assert pick_device("auto") == torch.device("cpu")
    monkeypatch.setattr(mps, "is_available", lambda: True)
    assert pick_device("auto") == torch.device("mps")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert pick_device("auto") == torch.device("cuda")
    assert pick_device("cpu") == torch.device("cpu") and pick_device("cuda:1") == torch.device("cuda", 1)


def test_cpu_only_options_take_the_cpu_under_auto(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert device_for("auto") == torch.device("cuda")
    assert device_for("auto", cpu_only="--int8") == torch.device("cpu")
    with pytest.raises(ValueError, match="--int8 runs on the CPU only"):
        device_for("cuda", cpu_only="--int8")
