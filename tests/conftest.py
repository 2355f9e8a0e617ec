"""Session-wide test settings (subprocesses inherit the environment variables)."""
import os

# Passive OpenMP waits: processes that share the cores (server, distributed tests) don't spin against each other.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# Test models are tiny: one intra-op thread is as fast as two, and on busy shared cores a second OpenMP
# thread makes every op wait for a preempted partner (measured 100x slowdowns).
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402

torch.set_num_threads(1)

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models gain nothing from threads; on a shared CPU extra OpenMP threads only spin. A test that
    changes the thread count gets it restored afterwards."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
