import os
import sys

import numpy as np
import pytest

import resnet_np


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


def _library_functions(fn, *args):
    """The set of distinct resnet_np functions that run during fn(*args), by qualname.

    A profiler hook records every Python function call whose code lives in the
    resnet_np package ("Conv2d.forward", "check_array", ...); comprehensions and
    generator expressions ("<listcomp>", "<genexpr>", ...) are not counted. The budget
    tests use it: a learner stepping into a forward pass under reference_kernels()
    should meet only a few functions.
    """
    root = os.path.dirname(resnet_np.__file__) + os.sep
    seen = set()

    def hook(frame, event, arg):
        code = frame.f_code
        if event == "call" and code.co_filename.startswith(root) and \
                not code.co_name.startswith("<"):
            seen.add(getattr(code, "co_qualname", code.co_name))   # co_qualname: 3.11+

    previous = sys.getprofile()
    sys.setprofile(hook)
    try:
        fn(*args)
    finally:
        sys.setprofile(previous)
    return seen


@pytest.fixture
def library_functions():
    """The helper library_functions(fn, *args) -> set of resnet_np qualnames run by the call.

    A fixture, since tests cannot import tests/conftest.py by name (the repository root
    has a conftest.py too).
    """
    return _library_functions
