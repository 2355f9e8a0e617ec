"""Suite-wide settings. Set before torch is imported anywhere in the test session (subprocesses inherit it):
OpenMP threads that busy-wait make tests that run several processes at once (server, distributed) crawl."""
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
