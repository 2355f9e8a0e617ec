"""Session-wide test settings."""
import os

import torch

# Test models are tiny: one intra-op thread is as fast as two, and on busy shared cores a second OpenMP
# thread makes every op wait for a preempted partner (measured 100x slowdowns). Subprocesses inherit it.
os.environ.setdefault("OMP_NUM_THREADS", "1")
torch.set_num_threads(1)
