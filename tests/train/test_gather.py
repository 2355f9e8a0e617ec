"""all_gather_with_grad: two gloo processes reproduce the full-batch contrastive loss and gradient."""
import os
import socket
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.distributed as dist
import torch.nn.functional as F

from lingvis.models.clip import contrastive_loss
from lingvis.train.gather import all_gather_with_grad, world

WORKER = textwrap.dedent("""
    import os, sys, torch, torch.distributed as dist
    from lingvis.models.clip import contrastive_loss
    rank, port, folder = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    data = torch.load(os.path.join(folder, "inputs.pt"), weights_only=True)
    i = data["img"][rank * 3:rank * 3 + 3].clone().requires_grad_(True)
    t = data["txt"][rank * 3:rank * 3 + 3].clone().requires_grad_(True)
    loss = contrastive_loss(i, t, torch.tensor(5.0))
    loss.backward()
    torch.save({"loss": loss.detach(), "gi": i.grad, "gt": t.grad}, os.path.join(folder, f"rank{rank}.pt"))
    dist.destroy_process_group()
""")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_outside_a_distributed_run_gather_is_the_identity():
    x = torch.randn(3, 4)
    assert world() == (0, 1) and all_gather_with_grad(x) is x


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed unavailable")
def test_two_ranks_reproduce_the_full_batch_gradient(tmp_path):
    torch.manual_seed(0)
    img, txt = F.normalize(torch.randn(6, 8), dim=-1), F.normalize(torch.randn(6, 8), dim=-1)
    torch.save({"img": img, "txt": txt}, tmp_path / "inputs.pt")
    (tmp_path / "worker.py").write_text(WORKER)
    port = str(_free_port())
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, str(tmp_path / "worker.py"), str(r), port, str(tmp_path)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for r in (0, 1)]
    for p in procs:
        out, _ = p.communicate(timeout=120)
        assert p.returncode == 0, out[-2000:]
    full_i, full_t = img.clone().requires_grad_(True), txt.clone().requires_grad_(True)
    full = contrastive_loss(full_i, full_t, torch.tensor(5.0))
    full.backward()
    res = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    # the mean of the rank losses is the full-batch loss; DDP averages gradients over ranks, so each rank's
    # gradient is world_size times the full-batch gradient of its slice
    assert abs(float(res[0]["loss"] + res[1]["loss"]) / 2 - full.item()) < 1e-5
    for r in (0, 1):
        sl = slice(r * 3, r * 3 + 3)
        assert torch.allclose(res[r]["gi"] / 2, full_i.grad[sl], atol=1e-6)
        assert torch.allclose(res[r]["gt"] / 2, full_t.grad[sl], atol=1e-6)
