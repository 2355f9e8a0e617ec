"""resolve_device: `auto` is cuda, then mps, then cpu; named devices this machine lacks are clear errors."""
import pytest
import torch

from lingvis.devices import resolve_device


def machine(monkeypatch, cuda: bool, mps: bool, count: int = 1):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count if cuda else 0)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)


@pytest.mark.parametrize("cuda,mps,want", [(True, True, "cuda"), (False, True, "mps"), (False, False, "cpu")])
def test_auto_prefers_cuda_then_mps_then_cpu(monkeypatch, cuda, mps, want):
    machine(monkeypatch, cuda, mps)
    assert resolve_device("auto") == resolve_device(None) == resolve_device(" AUTO ") == torch.device(want)


def test_named_devices_are_checked(monkeypatch):
    machine(monkeypatch, cuda=False, mps=False)
    assert resolve_device("cpu") == resolve_device(torch.device("cpu")) == torch.device("cpu")
    with pytest.raises(ValueError, match="CUDA is not available"):
        resolve_device("cuda")
    with pytest.raises(ValueError, match="MPS is not available"):
        resolve_device("mps")
    with pytest.raises(ValueError, match="unknown device 'gpu0'"):
        resolve_device("gpu0")
    machine(monkeypatch, cuda=True, mps=False, count=2)
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(ValueError, match="has 2 CUDA device"):
        resolve_device("cuda:2")


def test_the_server_defaults_to_auto(monkeypatch):
    from lingvis.cli import build_parser
    from lingvis.serve import ServeConfig

    assert build_parser().parse_args(["serve", "--model", "x"]).device == "auto"
    assert ServeConfig().device == "auto"
    machine(monkeypatch, cuda=False, mps=False)
    assert ServeConfig().resolved_device() == torch.device("cpu")
    machine(monkeypatch, cuda=True, mps=False)
    assert ServeConfig().resolved_device() == torch.device("cuda")
    assert ServeConfig(int8="weights").resolved_device() == torch.device("cpu")  # int8 decoding runs on the CPU
    with pytest.raises(ValueError, match="for CPU serving"):
        ServeConfig(int8="weights", device="cuda").validate()
