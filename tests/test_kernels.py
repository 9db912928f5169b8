"""resnet_np.layers._kernels: reference_kernels() as a context manager and a decorator."""
import pytest

import resnet_np
from resnet_np import layers
from resnet_np.layers import _kernels


def test_exported_from_the_package_and_layers():
    assert resnet_np.reference_kernels is layers.reference_kernels is _kernels.reference_kernels
    assert "reference_kernels" in resnet_np.__all__ and "reference_kernels" in layers.__all__


def test_context_manager_switches_and_restores():
    assert _kernels.REFERENCE is False
    with resnet_np.reference_kernels():
        assert _kernels.REFERENCE is True
    assert _kernels.REFERENCE is False


def test_nests_and_the_inner_exit_keeps_the_outer_setting():
    with resnet_np.reference_kernels():
        with resnet_np.reference_kernels():
            assert _kernels.REFERENCE is True
        assert _kernels.REFERENCE is True               # still inside the outer block
    assert _kernels.REFERENCE is False


def test_restores_after_an_exception():
    with pytest.raises(ZeroDivisionError):
        with resnet_np.reference_kernels():
            1 / 0
    assert _kernels.REFERENCE is False


def test_decorator_runs_the_function_on_the_reference_every_call():
    seen = []

    @resnet_np.reference_kernels()
    def step(fail=False):
        seen.append(_kernels.REFERENCE)
        if fail:
            raise ValueError("inside")
        return "done"

    assert step() == "done" and step() == "done"
    with pytest.raises(ValueError, match="inside"):
        step(fail=True)
    assert seen == [True, True, True] and _kernels.REFERENCE is False
