"""Fuzzing: Conv2d, pools, im2col/col2im and BatchNorm over random shapes, against
naive loop references written here and against the gradient check. Conv2d and the pools
run on both paths (the fast one and reference_kernels()), and the two must agree.

Hypothesis draws the sizes, strides, paddings and kernels (only valid combinations:
kernel <= padded input) and a seed; the arrays come from np.random.default_rng(seed),
so every failing example is reproducible and shrinks to a small one. Example counts
are bounded so the whole file runs in a few seconds.
"""
from contextlib import nullcontext

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from resnet_np import (AvgPool2d, BatchNorm1d, BatchNorm2d, Conv2d, MaxPool2d, check_gradients,
                       reference_kernels, rel_error)
from resnet_np.layers.columns import col2im, im2col

FAST = settings(max_examples=40, deadline=None)
SLOW = settings(max_examples=25, deadline=None)       # gradient checks: many forward passes
seeds = st.integers(0, 2**32 - 1)


@st.composite
def geometry(draw, max_kernel=4, max_stride=3, max_padding=2, max_size=7, pool=False):
    """(kernel, stride, padding, (H, W)) with kernel <= padded input on both axes.

    pool=True keeps padding <= kernel // 2 (the pooling layers' rule, as PyTorch's)."""
    kernel, stride, padding, size = [], [], [], []
    for _ in range(2):
        k = draw(st.integers(1, max_kernel))
        p = draw(st.integers(0, min(max_padding, k // 2) if pool else max_padding))
        n = draw(st.integers(max(1, k - 2 * p), max_size))   # n + 2p >= k
        kernel.append(k), padding.append(p), size.append(n)
        stride.append(draw(st.integers(1, max_stride)))
    return tuple(kernel), tuple(stride), tuple(padding), tuple(size)


def out_size(n, k, s, p):
    return (n + 2 * p - k) // s + 1


def windows(xp, kernel, stride, out_hw):
    """Yield (h, w, window) for every output pixel: xp[:, :, h*sH:h*sH+kH, w*sW:w*sW+kW]."""
    (kH, kW), (sH, sW) = kernel, stride
    for h in range(out_hw[0]):
        for w in range(out_hw[1]):
            yield h, w, (slice(None), slice(None), slice(h * sH, h * sH + kH),
                         slice(w * sW, w * sW + kW))


def kernels(reference):
    """reference_kernels() or nothing: hypothesis draws which path a test runs on."""
    return reference_kernels() if reference else nullcontext()


def pad(x, padding, value=0.0):
    pH, pW = padding
    return np.pad(x, ((0, 0), (0, 0), (pH, pH), (pW, pW)), constant_values=value)


# -- Conv2d -------------------------------------------------------------------------------
def naive_conv(x, W, b, stride, padding):
    """out[n, o, h, w] = b[o] + sum over (c, i, j) of W[o, c, i, j] * xp[n, c, h*sH+i, w*sW+j]."""
    N, C_in, H, Wd = x.shape
    C_out, _, kH, kW = W.shape
    out_hw = (out_size(H, kH, stride[0], padding[0]), out_size(Wd, kW, stride[1], padding[1]))
    xp = pad(x, padding)
    out = np.zeros((N, C_out) + out_hw)
    for h, w, idx in windows(xp, (kH, kW), stride, out_hw):
        out[:, :, h, w] = np.einsum("ncij,ocij->no", xp[idx], W)
    return out + (0 if b is None else b[:, None, None])


def naive_conv_backward(x, W, dout, stride, padding):
    """dx and dW by the same loop: each window sends dout * W back, and W gets dout * window."""
    kH, kW = W.shape[2:]
    xp = pad(x, padding)
    dxp, dW = np.zeros_like(xp), np.zeros_like(W)
    for h, w, idx in windows(xp, (kH, kW), stride, dout.shape[2:]):
        dxp[idx] += np.einsum("no,ocij->ncij", dout[:, :, h, w], W)
        dW += np.einsum("no,ncij->ocij", dout[:, :, h, w], xp[idx])
    pH, pW = padding
    return dxp[:, :, pH:pH + x.shape[2], pW:pW + x.shape[3]], dW


@FAST
@given(geometry(), st.integers(1, 4), st.integers(1, 3), st.integers(1, 4), st.booleans(),
       st.sampled_from([np.float32, np.float64]), seeds, st.booleans())
def test_conv2d_matches_naive_loops(geom, N, C_in, C_out, bias, dtype, seed, reference):
    kernel, stride, padding, (H, W) = geom
    r = np.random.default_rng(seed)
    conv = Conv2d(C_in, C_out, kernel, stride=stride, padding=padding, bias=bias, rng=seed)
    if bias:
        conv.params["b"][...] = r.standard_normal(C_out)
    conv.astype(dtype)
    x = r.standard_normal((N, C_in, H, W)).astype(dtype)
    with kernels(reference):
        out = conv.forward(x)
    Wt = conv.params["W"].astype(np.float64)
    expected = naive_conv(x.astype(np.float64), Wt, conv.params.get("b"), stride, padding)
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-10)
    assert out.dtype == dtype and out.shape == expected.shape
    np.testing.assert_allclose(out, expected, **tol)

    dout = r.standard_normal(out.shape).astype(dtype)
    with kernels(reference):
        dx = conv.backward(dout)
    dx_ref, dW_ref = naive_conv_backward(x.astype(np.float64), Wt, dout.astype(np.float64),
                                         stride, padding)
    np.testing.assert_allclose(dx, dx_ref, **tol)
    np.testing.assert_allclose(conv.grads["W"], dW_ref, **tol)
    if bias:
        np.testing.assert_allclose(conv.grads["b"], dout.astype(np.float64).sum(axis=(0, 2, 3)), **tol)


@FAST
@given(geometry(), st.integers(1, 4), st.integers(1, 3), st.integers(1, 4),
       st.sampled_from([(np.float64, 1e-12), (np.float32, 1e-5)]), seeds)
def test_conv2d_reference_agrees_with_fast_path(geom, N, C_in, C_out, precision, seed):
    kernel, stride, padding, (H, W) = geom
    dtype, tolerance = precision
    r = np.random.default_rng(seed)
    conv = Conv2d(C_in, C_out, kernel, stride=stride, padding=padding, rng=seed).astype(dtype)
    conv.params["b"][...] = r.standard_normal(C_out)
    x = r.standard_normal((N, C_in, H, W)).astype(dtype)
    results = []
    for reference in (False, True):
        with kernels(reference):
            out = conv.forward(x)
            dx = conv.backward(np.cos(np.arange(out.size)).reshape(out.shape).astype(dtype))
        results.append((out, dx, conv.grads["W"].copy(), conv.grads["b"].copy()))
    for fast, ref in zip(*results):
        assert fast.dtype == ref.dtype == dtype
        assert rel_error(fast, ref) <= tolerance


@SLOW
@given(geometry(max_kernel=3, max_stride=2, max_padding=1, max_size=5), st.integers(1, 2),
       st.integers(1, 2), st.integers(1, 2), st.booleans(), seeds, st.booleans())
def test_conv2d_gradient_check(geom, N, C_in, C_out, bias, seed, reference):
    kernel, stride, padding, (H, W) = geom
    conv = Conv2d(C_in, C_out, kernel, stride=stride, padding=padding, bias=bias, rng=seed)
    x = np.random.default_rng(seed).standard_normal((N, C_in, H, W))
    with kernels(reference):
        report = check_gradients(conv, x, seed=seed % 1000)
    assert [row["name"] for row in report.rows] == ["dx", "W"] + (["b"] if bias else [])
    report.assert_ok()


# -- pools --------------------------------------------------------------------------------
def naive_pool(x, kind, kernel, stride, padding):
    """Max (padding -inf, first maximum wins) or average (padding 0 counts) of each window;
    returns out and, for max, the flat index of each window's winner for backward."""
    N, C, H, W = x.shape
    out_hw = (out_size(H, kernel[0], stride[0], padding[0]), out_size(W, kernel[1], stride[1], padding[1]))
    xp = pad(x, padding, -np.inf if kind == "max" else 0.0)
    out = np.zeros((N, C) + out_hw)
    for h, w, idx in windows(xp, kernel, stride, out_hw):
        win = xp[idx].reshape(N, C, -1)
        out[:, :, h, w] = win.max(axis=2) if kind == "max" else win.mean(axis=2)
    return out


def naive_pool_backward(x, kind, kernel, stride, padding, dout):
    N, C = x.shape[:2]
    xp = pad(x, padding, -np.inf if kind == "max" else 0.0)
    dxp = np.zeros_like(xp)
    for h, w, idx in windows(xp, kernel, stride, dout.shape[2:]):
        if kind == "avg":
            dxp[idx] += dout[:, :, h, w, None, None] / (kernel[0] * kernel[1])
            continue
        win = xp[idx].reshape(N, C, -1)
        first = win.argmax(axis=2)                            # first maximum, row-major
        share = np.zeros_like(win)
        np.put_along_axis(share, first[..., None], dout[:, :, h, w, None], axis=2)
        dxp[idx] += share.reshape(xp[idx].shape)
    pH, pW = padding
    return dxp[:, :, pH:pH + x.shape[2], pW:pW + x.shape[3]]


@FAST
@given(st.sampled_from(["max", "avg"]), geometry(pool=True), st.booleans(),
       st.integers(1, 3), st.integers(1, 3), seeds, st.booleans())
def test_pools_match_naive_loops(kind, geom, default_stride, N, C, seed, reference):
    kernel, stride, padding, (H, W) = geom
    stride = kernel if default_stride else stride
    Pool = MaxPool2d if kind == "max" else AvgPool2d
    pool = Pool(kernel, stride=None if default_stride else stride, padding=padding)
    r = np.random.default_rng(seed)
    x = r.standard_normal((N, C, H, W))                    # continuous: no ties
    with kernels(reference):
        out = pool.forward(x)
    np.testing.assert_allclose(out, naive_pool(x, kind, kernel, stride, padding), rtol=1e-12, atol=1e-12)
    dout = r.standard_normal(out.shape)
    with kernels(reference):
        dx = pool.backward(dout)
    np.testing.assert_allclose(dx, naive_pool_backward(x, kind, kernel, stride, padding, dout),
                               rtol=1e-12, atol=1e-12)


@FAST
@given(geometry(pool=True), st.integers(1, 3), st.integers(1, 3), seeds,
       st.sampled_from([np.float32, np.float64]))
def test_max_pool_reference_agrees_with_fast_path_on_ties(geom, N, C, seed, dtype):
    kernel, stride, padding, (H, W) = geom
    pool = MaxPool2d(kernel, stride=stride, padding=padding)
    x = np.random.default_rng(seed).integers(-1, 2, size=(N, C, H, W)).astype(dtype)  # ties
    results = []
    for reference in (False, True):
        with kernels(reference):
            out = pool.forward(x)
            dx = pool.backward(np.arange(out.size, dtype=dtype).reshape(out.shape))
        results.append((out, dx))
    for fast, ref in zip(*results):
        np.testing.assert_array_equal(fast, ref)
        assert fast.dtype == ref.dtype == dtype


# -- im2col / col2im ----------------------------------------------------------------------
@FAST
@given(geometry(), st.integers(1, 3), st.integers(1, 3), seeds)
def test_im2col_columns_round_trip_and_adjoint(geom, N, C, seed):
    kernel, stride, padding, (H, W) = geom
    r = np.random.default_rng(seed)
    x = r.standard_normal((N, C, H, W))
    cols = im2col(x, kernel, stride, padding)
    out_hw = (out_size(H, kernel[0], stride[0], padding[0]), out_size(W, kernel[1], stride[1], padding[1]))
    assert cols.shape == (C * kernel[0] * kernel[1], N * out_hw[0] * out_hw[1])

    # Each column is one window: cols[(c, i, j), (n, h, w)] = xp[n, c, h*sH + i, w*sW + j].
    xp = pad(x, padding)
    expected = np.stack([xp[idx].reshape(N, -1) for _, _, idx in windows(xp, kernel, stride, out_hw)],
                        axis=1)                            # (N, H_out*W_out, C*kH*kW)
    np.testing.assert_array_equal(cols, expected.reshape(-1, expected.shape[2]).T)

    # Adjoint: <im2col(x), c> == <x, col2im(c)> for any c.
    c = r.standard_normal(cols.shape)
    back = col2im(c, x.shape, kernel, stride, padding)
    assert back.shape == x.shape
    np.testing.assert_allclose(np.vdot(cols, c), np.vdot(x, back), rtol=1e-10, atol=1e-10)

    # Round trip: col2im(im2col(x)) is x times the number of windows covering each pixel.
    coverage = col2im(im2col(np.ones_like(x), kernel, stride, padding), x.shape, kernel, stride, padding)
    np.testing.assert_allclose(col2im(cols, x.shape, kernel, stride, padding), x * coverage,
                               rtol=1e-12, atol=1e-12)


# -- BatchNorm ----------------------------------------------------------------------------
bn_shapes = st.one_of(
    st.tuples(st.integers(2, 6), st.integers(1, 4)),                                  # (N, D)
    st.tuples(st.integers(1, 4), st.integers(1, 3), st.integers(1, 3), st.integers(1, 3)))


@FAST
@given(bn_shapes, seeds, st.floats(0.1, 10.0), st.floats(-5.0, 5.0))
def test_batchnorm_train_statistics(shape, seed, scale, shift):
    N, C = shape[:2]
    if np.prod(shape) // C < 2:                             # BatchNorm needs 2 values a channel
        shape = (2,) + shape[1:]
    r = np.random.default_rng(seed)
    bn = (BatchNorm1d if len(shape) == 2 else BatchNorm2d)(C).astype(np.float64)
    gamma, beta = r.uniform(0.5, 2.0, C), r.standard_normal(C)
    bn.params["gamma"][...], bn.params["beta"][...] = gamma, beta
    x = shift + scale * r.standard_normal(shape)
    out = bn.forward(x)
    axes = (0,) if len(shape) == 2 else (0, 2, 3)
    view = (1, C) + (1,) * (len(shape) - 2)
    xhat = (out - beta.reshape(view)) / gamma.reshape(view)  # undo the affine
    var = x.var(axis=axes)                                   # biased, as BatchNorm uses
    np.testing.assert_allclose(xhat.mean(axis=axes), 0.0, atol=1e-9)
    np.testing.assert_allclose(xhat.var(axis=axes), var / (var + bn.eps), rtol=1e-9, atol=1e-12)
    M = x.size // C
    np.testing.assert_allclose(bn.buffers["running_mean"], 0.1 * x.mean(axis=axes), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(bn.buffers["running_var"], 0.9 + 0.1 * var * M / (M - 1), rtol=1e-9)


@SLOW
@given(bn_shapes, seeds, st.booleans())
def test_batchnorm_gradient_check(shape, seed, training):
    C = shape[1]
    while np.prod(shape) // C < 3:       # with 2 values a channel xhat is +-1 whatever x is:
        shape = (shape[0] + 1,) + shape[1:]   # dx ~ 0 and only rounding noise is left
    r = np.random.default_rng(seed)
    bn = (BatchNorm1d if len(shape) == 2 else BatchNorm2d)(C)
    bn.params["gamma"][...] = r.uniform(0.5, 2.0, C)
    bn.params["beta"][...] = r.standard_normal(C)
    bn.buffers["running_mean"][...] = r.standard_normal(C)
    bn.buffers["running_var"][...] = r.uniform(0.5, 2.0, C)
    bn.train(training)
    x = 1.0 + 2.0 * r.standard_normal(shape)
    report = check_gradients(bn, x, seed=seed % 1000)
    assert [row["name"] for row in report.rows] == ["dx", "gamma", "beta"]
    report.assert_ok()


# -- fixed edge cases the strategies reach only rarely --------------------------------------
@pytest.mark.parametrize("kernel, stride, padding, size", [
    ((1, 1), (1, 1), (0, 0), (1, 1)),          # 1x1 everything
    ((3, 1), (2, 3), (1, 0), (1, 5)),          # kernel taller than the unpadded input
    ((2, 5), (3, 1), (0, 2), (2, 1)),          # width 1 padded to 5, exactly the kernel
    ((4, 4), (1, 1), (2, 2), (1, 1)),          # padding larger than the input
])
def test_conv2d_edge_geometries(kernel, stride, padding, size, rng):
    conv = Conv2d(2, 3, kernel, stride=stride, padding=padding, rng=0).astype(np.float64)
    conv.params["b"][...] = rng.standard_normal(3)
    x = rng.standard_normal((2, 2) + size)
    out = conv.forward(x)
    np.testing.assert_allclose(out, naive_conv(x, conv.params["W"], conv.params["b"], stride, padding),
                               rtol=1e-10, atol=1e-10)
    dout = rng.standard_normal(out.shape)
    dx_ref, dW_ref = naive_conv_backward(x, conv.params["W"], dout, stride, padding)
    np.testing.assert_allclose(conv.backward(dout), dx_ref, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(conv.grads["W"], dW_ref, rtol=1e-10, atol=1e-10)
