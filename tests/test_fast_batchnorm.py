"""resnet_np.layers._fast_batchnorm: BatchNorm training on threads = the readable code."""
import numpy as np
import pytest

import resnet_np as rn
from resnet_np.layers import _fast_batchnorm as fast


def run(bn, x, dout):
    """out, dx, grads and running statistics of one training forward and backward."""
    out = bn.forward(x)
    dx = bn.backward(dout)
    return [out, dx, bn.grads["gamma"], bn.grads["beta"], bn.buffers["running_mean"],
            bn.buffers["running_var"]]


def randomised(C, dtype, rng):
    bn = rn.BatchNorm2d(C).astype(dtype)
    bn.params["gamma"][:] = rng.uniform(0.5, 2.0, C)
    bn.params["beta"][:] = rng.normal(size=C)
    return bn


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-12), (np.float32, 1e-5)])
@pytest.mark.parametrize("shape", [(6, 16, 32, 32), (5, 32, 16, 16), (7, 64, 8, 8),
                                   (3, 3, 5, 7)])
def test_fast_equals_reference_on_resnet20_shapes(rng, monkeypatch, dtype, tol, shape):
    monkeypatch.setattr(fast, "MIN_BYTES", 0)                  # small tensors take it too
    monkeypatch.setattr(fast, "workers", lambda: 2)            # even on one core
    x = rng.normal(1.0, 2.0, shape).astype(dtype)
    dout = rng.normal(size=shape).astype(dtype)
    fast_bn = randomised(shape[1], dtype, rng)
    reference_bn = rn.BatchNorm2d(shape[1]).astype(dtype)
    reference_bn.load_state_dict(fast_bn.state_dict())
    calls = []
    normalise = fast.normalise
    monkeypatch.setattr(fast, "normalise", lambda *a: calls.append(1) or normalise(*a))
    got = run(fast_bn, x, dout)
    assert calls == [1]                                        # the fast path did run
    with rn.reference_kernels():
        expected = run(reference_bn, x, dout)
    assert calls == [1]                                        # ... and the reference did not
    for a, b in zip(got, expected):
        assert a.dtype == b.dtype == dtype
        assert rn.rel_error(a, b) <= tol


def test_small_tensors_and_eval_stay_on_the_readable_code(rng, monkeypatch):
    def fail(*args):
        raise AssertionError("the fast path ran")
    monkeypatch.setattr(fast, "normalise", fail)
    monkeypatch.setattr(fast, "backward", fail)
    bn = rn.BatchNorm2d(4)
    x = rng.standard_normal((2, 4, 8, 8)).astype(np.float32)   # 2 KB < MIN_BYTES
    bn.backward(bn.forward(x))
    monkeypatch.setattr(fast, "MIN_BYTES", 0)
    bn.eval()
    bn.backward(bn.forward(x))                                 # eval: one scale-and-shift


def test_slices_cover_the_batch(monkeypatch):
    from resnet_np.layers import _fast_conv        # the one home of the batch slices
    monkeypatch.setattr(_fast_conv, "_pool_size", lambda: 3)
    assert _fast_conv.batch_slices(7) == [slice(0, 2), slice(2, 4), slice(4, 7)]
    assert _fast_conv.batch_slices(2) == [slice(0, 1), slice(1, 2)]
    # Python ints: float32 sums divided by a size made of np.int64 would become float64
    assert all(type(s.start) is int and type(s.stop) is int for s in _fast_conv.batch_slices(7))
