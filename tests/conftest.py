import sys
import numpy as np
import pytest


@pytest.fixture
def rng():
    """A seeded generator, so every test is reproducible."""
    return np.random.default_rng(0)


@pytest.fixture(autouse=True)
def _torch_single_thread():
    """PyTorch cross-checks run single-threaded: on a shared 2-core machine its OpenMP
    threads otherwise spin against other processes (20 tiny steps took 4 s, not 0.02 s)."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.get_num_threads() != 1:
        torch.set_num_threads(1)
