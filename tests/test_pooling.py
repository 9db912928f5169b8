"""Pooling: against naive loops (fast and reference kernels), gradient checks, ties,
padding, shapes, repr and errors; MaxPool2d's reference against its fast path."""
from contextlib import nullcontext

import numpy as np
import pytest

from resnet_np import AvgPool2d, GlobalAvgPool2d, MaxPool2d, check_gradients, reference_kernels
from resnet_np._checks import short_pair


def naive_pool(x, dout, kernel, stride, padding, mode):
    """Loops over every example, channel, output pixel and window entry.

    Returns (out, dx). Max pooling: the first maximum in row-major window order wins.
    """
    (kH, kW), (sH, sW), (pH, pW) = kernel, stride, padding
    N, C, H, W = x.shape
    fill = -np.inf if mode == "max" else 0.0
    xp = np.full((N, C, H + 2 * pH, W + 2 * pW), fill)
    xp[:, :, pH:pH + H, pW:pW + W] = x
    H_out, W_out = (H + 2 * pH - kH) // sH + 1, (W + 2 * pW - kW) // sW + 1
    out = np.zeros((N, C, H_out, W_out))
    dxp = np.zeros_like(xp)
    for n in range(N):
        for c in range(C):
            for h in range(H_out):
                for w in range(W_out):
                    best, where = -np.inf, None
                    for i in range(kH):
                        for j in range(kW):
                            value = xp[n, c, h * sH + i, w * sW + j]
                            if mode == "avg":
                                out[n, c, h, w] += value / (kH * kW)
                                dxp[n, c, h * sH + i, w * sW + j] += dout[n, c, h, w] / (kH * kW)
                            elif value > best:
                                best, where = value, (h * sH + i, w * sW + j)
                    if mode == "max":
                        out[n, c, h, w] = best
                        dxp[(n, c) + where] += dout[n, c, h, w]
    return out, dxp[:, :, pH:pH + H, pW:pW + W]


def distinct(rng, shape):
    """Distinct values at least 0.1 apart: no ties, far from any max-pool kink."""
    return rng.permutation(int(np.prod(shape))).reshape(shape) * 0.1 - 1.0


CONFIGS = [  # kernel, stride, padding, input shape
    (2, None, 0, (2, 3, 4, 6)),          # the classic non-overlapping 2x2
    (3, 2, 1, (2, 2, 7, 5)),             # overlapping, padded, odd sizes
    (3, 1, 0, (1, 2, 5, 6)),             # stride 1: heavy overlap
    ((3, 2), (2, 1), (1, 0), (2, 2, 6, 5)),   # non-square everything
    (2, 3, 1, (1, 3, 7, 7)),             # stride > kernel: gaps between windows
]


def kernels(reference):
    """reference_kernels() or nothing: run a test on both paths."""
    return reference_kernels() if reference else nullcontext()


@pytest.mark.parametrize("reference", [False, True], ids=["fast", "reference"])
@pytest.mark.parametrize("kernel, stride, padding, shape", CONFIGS)
@pytest.mark.parametrize("layer, mode", [(MaxPool2d, "max"), (AvgPool2d, "avg")])
def test_matches_naive_loop(rng, layer, mode, kernel, stride, padding, shape, reference):
    pool = layer(kernel, stride, padding)
    x = distinct(rng, shape)
    with kernels(reference):
        out = pool(x)
        dout = rng.normal(size=out.shape)
        dx = pool.backward(dout)
    expected_out, expected_dx = naive_pool(x, dout, pool.kernel_size, pool.stride,
                                           pool.padding, mode)
    np.testing.assert_allclose(out, expected_out, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dx, expected_dx, rtol=1e-12, atol=1e-12)
    assert dx.shape == x.shape and dx.flags.c_contiguous


@pytest.mark.parametrize("reference", [False, True], ids=["fast", "reference"])
@pytest.mark.parametrize("kernel, stride, padding, shape", CONFIGS)
@pytest.mark.parametrize("layer", [MaxPool2d, AvgPool2d])
def test_gradients(rng, layer, kernel, stride, padding, shape, reference):
    with kernels(reference):
        check_gradients(layer(kernel, stride, padding), distinct(rng, shape)).assert_ok()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("kernel, stride, padding, shape", CONFIGS)
def test_max_pool_reference_agrees_with_fast_path_even_on_ties(rng, dtype, kernel, stride,
                                                                padding, shape):
    """Small integers: many ties, which both paths give to the first maximum (row-major)."""
    pool = MaxPool2d(kernel, stride, padding)
    x = rng.integers(-2, 3, size=shape).astype(dtype)
    results = []
    for reference in (False, True):
        with kernels(reference):
            out = pool(x)
            argmax = pool.cache["argmax"]
            dx = pool.backward(np.arange(out.size, dtype=dtype).reshape(out.shape))
        results.append((out, argmax, dx))
    (out, argmax, dx), (ref_out, ref_argmax, ref_dx) = results
    np.testing.assert_array_equal(out, ref_out)
    np.testing.assert_array_equal(argmax, ref_argmax)
    np.testing.assert_array_equal(dx, ref_dx)
    assert out.dtype == ref_out.dtype == dx.dtype == ref_dx.dtype == dtype


def test_function_budget_under_reference_kernels(rng, library_functions):
    """MaxPool2d's reference is im2col/col2im plus the layer's padding helpers."""
    x = rng.standard_normal((2, 3, 8, 8))
    with reference_kernels():
        for pool, (forward_budget, backward_budget) in ((MaxPool2d(3, 2, 1), (9, 8)),
                                                        (AvgPool2d(2), (6, 4))):
            forward = library_functions(pool.forward, x)
            backward = library_functions(pool.backward, np.ones_like(pool(x)))
            assert len(forward) <= forward_budget, sorted(forward)
            assert len(backward) <= backward_budget, sorted(backward)
            assert not any("repr" in name for name in forward)


def test_global_avg_pool_gradients_and_values(rng):
    x = rng.normal(size=(3, 4, 5, 3))
    pool = GlobalAvgPool2d()
    np.testing.assert_allclose(pool(x), x.mean(axis=(2, 3)), rtol=1e-12)
    check_gradients(pool, x).assert_ok()


def test_max_pool_hand_computed_overlap():
    # 3x3 input, 2x2 windows with stride 1: four overlapping windows. The centre 9
    # is the max of all four, so it collects all four upstream gradients.
    x = np.array([[[[1.0, 2.0, 3.0], [4.0, 9.0, 5.0], [6.0, 7.0, 8.0]]]])
    pool = MaxPool2d(2, stride=1)
    np.testing.assert_array_equal(pool(x), [[[[9.0, 9.0], [9.0, 9.0]]]])
    dx = pool.backward(np.array([[[[1.0, 10.0], [100.0, 1000.0]]]]))
    np.testing.assert_array_equal(dx, [[[[0, 0, 0], [0, 1111.0, 0], [0, 0, 0]]]])
    np.testing.assert_array_equal(pool.cache["argmax"], [[[[3, 2], [1, 0]]]])


@pytest.mark.parametrize("reference", [False, True], ids=["fast", "reference"])
def test_max_pool_ties_first_in_row_major_order_wins(reference):
    with kernels(reference):
        pool = MaxPool2d(2, stride=1)
        pool(np.ones((1, 1, 3, 3)))
        dx = pool.backward(np.array([[[[1.0, 10.0], [100.0, 1000.0]]]]))
        # every window's top-left entry wins, and windows never share their top-left pixel
        np.testing.assert_array_equal(dx, [[[[1.0, 10.0, 0], [100.0, 1000.0, 0], [0, 0, 0]]]])
        pool = MaxPool2d(2)
        pool(np.array([[[[0.0, 5.0], [5.0, 5.0]]]]))
        np.testing.assert_array_equal(pool.backward(np.ones((1, 1, 1, 1))), [[[[0, 1.0], [0, 0]]]])


def test_max_pool_padding_never_wins():
    x = -np.arange(1.0, 10.0).reshape(1, 1, 3, 3)          # all negative, pad is -inf
    out = MaxPool2d(3, stride=1, padding=1)(x)
    assert np.isfinite(out).all()
    assert out[0, 0, 0, 0] == -1.0


def test_avg_pool_counts_padding_in_the_average():
    out = AvgPool2d(3, stride=1, padding=1)(np.ones((1, 1, 3, 3)))
    np.testing.assert_allclose(out[0, 0], [[4, 6, 4], [6, 9, 6], [4, 6, 4]] / np.float64(9))


def test_shapes_dtypes_and_cache(rng):
    x = rng.normal(size=(4, 3, 9, 8)).astype(np.float32)
    pool = MaxPool2d(3, stride=2, padding=1)
    out = pool(x)
    assert out.shape == (4, 3, 5, 4) and out.dtype == np.float32
    assert pool.cache["argmax"].shape == out.shape and pool.cache["argmax"].dtype == np.uint8
    assert pool.cache["x_shape"] == x.shape
    assert pool.backward(np.ones_like(out)).dtype == np.float32
    avg = AvgPool2d(2)
    assert avg(x).shape == (4, 3, 4, 4) and avg(x).dtype == np.float32
    assert avg.backward(np.ones((4, 3, 4, 4), np.float32)).dtype == np.float32
    gap = GlobalAvgPool2d()
    assert gap(x).shape == (4, 3) and gap(x).dtype == np.float32
    assert gap.backward(np.ones((4, 3), np.float32)).shape == x.shape
    assert pool.params == {} and avg.num_parameters() == 0


def test_repr():
    assert repr(MaxPool2d(3, stride=2, padding=1)) == "MaxPool2d(kernel_size=3, stride=2, padding=1)"
    assert repr(MaxPool2d(2)) == "MaxPool2d(kernel_size=2)"
    assert repr(AvgPool2d((3, 2), stride=1)) == "AvgPool2d(kernel_size=(3, 2), stride=1)"
    assert repr(GlobalAvgPool2d()) == "GlobalAvgPool2d()"


def test_repr_writes_pairs_back_as_given():
    assert short_pair((3, 3)) == "3" and short_pair((3, 2)) == "(3, 2)"
    assert repr(MaxPool2d((3, 2), stride=(2, 2))) == "MaxPool2d(kernel_size=(3, 2), stride=2)"


# -- errors ---------------------------------------------------------------------------

def test_error_kernel_larger_than_padded_input():
    with pytest.raises(ValueError, match=r"MaxPool2d\(kernel_size=3\)\.forward: expected a "
                                         r"padded input at least as large as the kernel 3x3, got "
                                         r"2x5 padded to 2x5\. Use a larger input"):
        MaxPool2d(3)(np.zeros((1, 1, 2, 5)))
    AvgPool2d(3, padding=1)(np.zeros((1, 1, 1, 1)))        # 1 + 2 = 3: just fits


def test_error_stride_zero():
    with pytest.raises(ValueError, match=r"MaxPool2d: expected stride >= 1, got stride=0\."):
        MaxPool2d(2, stride=0)
    with pytest.raises(ValueError, match=r"AvgPool2d: expected kernel_size >= 1, got kernel_size=0"):
        AvgPool2d(0)


def test_error_padding_more_than_half_the_kernel():
    with pytest.raises(ValueError, match=r"MaxPool2d: expected padding <= kernel_size / 2, got "
                                         r"padding=2 with kernel_size=3\. Use less padding"):
        MaxPool2d(3, padding=2)
    with pytest.raises(ValueError, match=r"padding=\(1, 2\) with kernel_size=\(2, 3\)"):
        AvgPool2d((2, 3), padding=(1, 2))
    MaxPool2d(2, padding=1)                                # exactly half is allowed


def test_error_3d_input():
    for pool in (MaxPool2d(2), AvgPool2d(2), GlobalAvgPool2d()):
        name = type(pool).__name__
        with pytest.raises(ValueError, match=rf"{name}\(.*\)\.forward: expected x of shape "
                                             r"\(N, C, H, W\), got \(3, 4, 4\)\. .*x\[None\]"):
            pool(np.zeros((3, 4, 4)))


def test_error_integer_input_and_backward_before_forward():
    with pytest.raises(TypeError, match=r"MaxPool2d\(kernel_size=2\)\.forward: expected a "
                                        r"floating-point array, got dtype int64"):
        MaxPool2d(2)(np.zeros((1, 1, 4, 4), dtype=np.int64))
    for pool in (MaxPool2d(2), AvgPool2d(2), GlobalAvgPool2d()):
        with pytest.raises(RuntimeError, match=r"\.backward: expected forward to have run"):
            pool.backward(np.zeros((1, 1, 2, 2)))


# -- PyTorch parity ------------------------------------------------------------------

@pytest.mark.torch
@pytest.mark.parametrize("dtype, rtol", [(np.float32, 1e-5), (np.float64, 1e-10)])
@pytest.mark.parametrize("kernel, stride, padding, shape", CONFIGS)
def test_matches_pytorch(rng, kernel, stride, padding, shape, dtype, rtol):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x = distinct(rng, shape).astype(dtype)
    for ours, theirs in [(MaxPool2d(kernel, stride, padding),
                          lambda t: F.max_pool2d(t, kernel, stride, padding)),
                         (AvgPool2d(kernel, stride, padding),
                          lambda t: F.avg_pool2d(t, kernel, stride, padding)),
                         (GlobalAvgPool2d(), lambda t: t.mean(dim=(2, 3)))]:
        xt = torch.from_numpy(x).requires_grad_(True)
        out_t = theirs(xt)
        dout = rng.normal(size=tuple(out_t.shape)).astype(dtype)
        out_t.backward(torch.from_numpy(dout))
        out, dx = ours(x), ours.backward(dout)
        assert out.dtype == dx.dtype == dtype
        np.testing.assert_allclose(out, out_t.detach().numpy(), rtol=rtol, atol=rtol)
        np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=rtol, atol=rtol)


@pytest.mark.torch
def test_max_pool_ties_match_pytorch():
    torch = pytest.importorskip("torch")
    x = np.round(np.random.default_rng(1).uniform(0, 2, (2, 2, 7, 7)))   # many ties
    dout = np.random.default_rng(2).normal(size=(2, 2, 4, 4))
    xt = torch.from_numpy(x).requires_grad_(True)
    torch.nn.functional.max_pool2d(xt, 3, 2, 1).backward(torch.from_numpy(dout))
    pool = MaxPool2d(3, stride=2, padding=1)
    pool(x)
    np.testing.assert_allclose(pool.backward(dout), xt.grad.numpy(), rtol=1e-12)
