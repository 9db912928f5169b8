"""Conv2d: against a naive loop, gradient checks, shapes, dtypes, repr and errors; the
reference branch (reference_kernels()) against the fast path, and its function budget."""
import numpy as np
import pytest

from resnet_np import Conv2d, check_gradients, reference_kernels, rel_error
from resnet_np.bench import CONV_SHAPES


def naive_conv(x, W, b, stride, padding):
    """out[n, o, h, w] = b[o] + sum over (c, i, j) of W[o, c, i, j] xp[n, c, h*sH+i, w*sW+j]."""
    N, C, H, Wd = x.shape
    C_out, _, kH, kW = W.shape
    (sH, sW), (pH, pW) = stride, padding
    xp = np.pad(x, ((0, 0), (0, 0), (pH, pH), (pW, pW)))
    H_out, W_out = (H + 2 * pH - kH) // sH + 1, (Wd + 2 * pW - kW) // sW + 1
    out = np.zeros((N, C_out, H_out, W_out))
    for n in range(N):
        for o in range(C_out):
            for h in range(H_out):
                for w in range(W_out):
                    window = xp[n, :, h * sH:h * sH + kH, w * sW:w * sW + kW]
                    out[n, o, h, w] = np.sum(window * W[o]) + (0.0 if b is None else b[o])
    return out


CASES = [  # (N, C_in, C_out, H, W, kernel, stride, padding, bias)
    (2, 3, 4, 5, 5, 3, 1, 1, True),
    (3, 2, 3, 7, 6, (3, 2), (2, 1), (0, 2), True),
    (1, 4, 2, 8, 8, 3, 2, 1, False),
    (2, 3, 5, 5, 7, 1, 2, 0, True),
    (2, 2, 3, 4, 5, (2, 3), 1, 2, False),
    (5, 3, 2, 9, 9, 3, 3, 0, True),
]


def make(case, rng):
    N, C_in, C_out, H, W, kernel, stride, padding, bias = case
    conv = Conv2d(C_in, C_out, kernel, stride=stride, padding=padding, bias=bias, rng=rng)
    if bias:
        conv.params["b"][:] = rng.standard_normal(C_out)
    x = rng.standard_normal((N, C_in, H, W))
    return conv, x


@pytest.mark.parametrize("case", CASES)
def test_forward_matches_naive_loop(rng, case):
    conv, x = make(case, rng)
    conv.astype(np.float64)
    expected = naive_conv(x, conv.params["W"], conv.params.get("b"), conv.stride, conv.padding)
    np.testing.assert_allclose(conv.forward(x), expected, rtol=1e-10, atol=1e-12)


def test_forward_fixed_values():
    """A hand-computable case: 2x2 kernel of ones sums each window."""
    conv = Conv2d(1, 1, 2, padding=0)
    conv.params["W"][:] = 1.0
    conv.params["b"][:] = 0.5
    x = np.arange(9, dtype=np.float32).reshape(1, 1, 3, 3)
    np.testing.assert_array_equal(conv(x)[0, 0], [[8.5, 12.5], [20.5, 24.5]])


@pytest.mark.parametrize("case", CASES)
def test_gradients(rng, case):
    conv, x = make(case, rng)
    report = check_gradients(conv, x)
    report.assert_ok()
    expected = ["dx", "W", "b"] if conv.bias else ["dx", "W"]
    assert [row["name"] for row in report.rows] == expected
    assert report.max_error < 1e-7


def test_output_grad_and_cache_shapes(rng):
    conv = Conv2d(3, 4, (3, 5), stride=2, padding=(1, 0), rng=rng)
    x = rng.standard_normal((2, 3, 9, 11)).astype(np.float32)
    out = conv(x)
    assert out.shape == (2, 4, 5, 4)
    assert conv.cache["x"].shape == x.shape and conv.cache["out_shape"] == out.shape
    dx = conv.backward(np.ones_like(out))
    assert dx.shape == x.shape
    assert conv.grads["W"].shape == conv.params["W"].shape == (4, 3, 3, 5)
    assert conv.grads["b"].shape == conv.params["b"].shape == (4,)


def test_init_is_he_normal():
    conv = Conv2d(16, 32, 3, rng=0)
    W = conv.params["W"]
    assert W.dtype == np.float32 and W.shape == (32, 16, 3, 3)
    assert np.std(W) == pytest.approx(np.sqrt(2.0 / (16 * 9)), rel=0.05)
    np.testing.assert_array_equal(conv.params["b"], 0.0)
    np.testing.assert_array_equal(W, Conv2d(16, 32, 3, rng=0).params["W"])


def test_float32_stays_float32_and_float64_works(rng):
    conv = Conv2d(2, 3, 3, padding=1, rng=rng)
    x32 = rng.standard_normal((2, 2, 6, 6)).astype(np.float32)
    out = conv(x32)
    dx = conv.backward(np.ones_like(out))
    assert out.dtype == dx.dtype == conv.grads["W"].dtype == conv.grads["b"].dtype == np.float32
    conv.astype(np.float64)
    out64 = conv(x32.astype(np.float64))
    assert out64.dtype == np.float64
    np.testing.assert_allclose(out64, out, rtol=1e-4, atol=1e-5)
    assert conv.backward(np.ones_like(out64)).dtype == np.float64


def test_float16_input_is_accepted(rng):
    conv = Conv2d(2, 3, 3, rng=rng)
    out = conv(rng.standard_normal((1, 2, 5, 5)).astype(np.float16))
    assert out.shape == (1, 3, 3, 3) and np.issubdtype(out.dtype, np.floating)


def test_outputs_are_fresh_arrays(rng):
    """Calling forward again, or another layer, must not change an earlier output."""
    conv, other = Conv2d(3, 4, 3, padding=1, rng=1), Conv2d(3, 4, 3, padding=1, rng=2)
    x = rng.standard_normal((4, 3, 8, 8)).astype(np.float32)
    out = conv(x)
    kept = out.copy()
    other(x + 1)
    dx = conv.backward(np.ones_like(out))
    kept_dx = dx.copy()
    conv(x * 2)
    other.backward(np.ones_like(out))
    np.testing.assert_array_equal(out, kept)
    np.testing.assert_array_equal(dx, kept_dx)


@pytest.mark.parametrize("kwargs, text", [
    (dict(in_channels=3, out_channels=16, kernel_size=3, padding=1),
     "Conv2d(3, 16, kernel_size=3, padding=1)"),
    (dict(in_channels=16, out_channels=32, kernel_size=3, stride=2, padding=1, bias=False),
     "Conv2d(16, 32, kernel_size=3, stride=2, padding=1, bias=False)"),
    (dict(in_channels=1, out_channels=2, kernel_size=(3, 5), stride=(1, 2), padding=(0, 2)),
     "Conv2d(1, 2, kernel_size=(3, 5), stride=(1, 2), padding=(0, 2))"),
    (dict(in_channels=4, out_channels=4, kernel_size=1), "Conv2d(4, 4, kernel_size=1)"),
])
def test_repr_mirrors_constructor(kwargs, text):
    assert repr(Conv2d(**kwargs, rng=0)) == text


def test_error_wrong_channel_count(rng):
    conv = Conv2d(3, 16, 3, padding=1)
    with pytest.raises(ValueError, match=r"Conv2d\(3, 16, kernel_size=3, padding=1\)\.forward: "
                       r"expected x of shape \(N, 3, H, W\), got \(2, 4, 8, 8\)\. "
                       r".*in_channels=3.*previous layer's out_channels"):
        conv(rng.standard_normal((2, 4, 8, 8)))


def test_error_3d_input(rng):
    with pytest.raises(ValueError, match=r"expected x of shape \(N, 3, H, W\), got \(3, 8, 8\)\. "
                       r"For a single example add a batch axis with x\[None\]"):
        Conv2d(3, 16, 3)(rng.standard_normal((3, 8, 8)))


def test_error_kernel_larger_than_padded_input(rng):
    with pytest.raises(ValueError, match=r"expected a padded input at least as large as the "
                       r"kernel 5x5, got 3x3 padded to 5x3\. Use a larger input"):
        Conv2d(1, 1, 5, padding=(1, 0))(rng.standard_normal((1, 1, 3, 3)))


def test_error_stride_zero():
    with pytest.raises(ValueError, match=r"Conv2d: expected stride >= 1, got stride=0"):
        Conv2d(3, 16, 3, stride=0)


def test_error_negative_padding_and_bad_kernel_type():
    with pytest.raises(ValueError, match=r"Conv2d: expected padding >= 0, got padding=-1"):
        Conv2d(3, 16, 3, padding=-1)
    with pytest.raises(TypeError, match=r"Conv2d: expected kernel_size to be an int or a pair"):
        Conv2d(3, 16, "3")


def test_error_integer_input():
    with pytest.raises(TypeError, match=r"expected a floating-point array, got dtype int64\. "
                       r"Convert it with x.astype\(np.float32\)"):
        Conv2d(1, 1, 1)(np.ones((1, 1, 2, 2), dtype=np.int64))


def test_error_dout_of_the_wrong_shape(rng):
    conv = Conv2d(2, 3, 3, rng=rng)
    conv(rng.standard_normal((2, 2, 5, 5)))
    with pytest.raises(ValueError, match=r"Conv2d\(2, 3, kernel_size=3\)\.backward: expected dout "
                       r"of the output's shape \(2, 3, 3, 3\), got \(2, 3, 5, 5\)"):
        conv.backward(np.ones((2, 3, 5, 5)))


def test_error_backward_before_forward():
    with pytest.raises(RuntimeError, match=r"Conv2d.backward: expected forward to have run first"):
        Conv2d(1, 1, 1).backward(np.ones((1, 1, 2, 2), dtype=np.float32))


# -- the reference branch (the code to read) and the fast path agree ------------------
def both_paths(conv, x, dout):
    """(out, dx, dW, db) from the fast path, then from the reference branch."""
    results = []
    for reference in (False, True):
        if reference:
            with reference_kernels():
                out = conv.forward(x)
                dx = conv.backward(dout)
        else:
            out, dx = conv.forward(x), conv.backward(dout)
        results.append((out, dx, conv.grads["W"].copy(), conv.grads.get("b")))
    return results


RESNET20 = [(C_in, C_out, size, stride) for _, C_in, C_out, size, stride in CONV_SHAPES]


@pytest.mark.parametrize("dtype, tolerance", [(np.float64, 1e-12), (np.float32, 1e-5)])
@pytest.mark.parametrize("C_in, C_out, size, stride", RESNET20)
def test_reference_agrees_with_fast_path_on_resnet20_shapes(rng, dtype, tolerance, C_in, C_out,
                                                            size, stride):
    conv = Conv2d(C_in, C_out, 3, stride=stride, padding=1, bias=False, rng=rng).astype(dtype)
    x = rng.standard_normal((2, C_in, size, size)).astype(dtype)
    dout = rng.standard_normal((2, C_out, size // stride, size // stride)).astype(dtype)
    fast, reference = both_paths(conv, x, dout)
    for name, a, b in zip(("out", "dx", "dW"), fast, reference):
        assert a.dtype == b.dtype == dtype, name
        assert rel_error(a, b) <= tolerance, name


@pytest.mark.parametrize("case", CASES)
def test_reference_agrees_with_fast_path_on_odd_geometries(rng, case):
    conv, x = make(case, rng)
    conv.astype(np.float64)
    dout = rng.standard_normal(conv(x).shape)
    fast, reference = both_paths(conv, x, dout)
    for a, b in zip(fast, reference):
        if a is not None:
            assert rel_error(a, b) <= 1e-12


@pytest.mark.parametrize("case", CASES)
def test_gradients_under_reference_kernels(rng, case):
    conv, x = make(case, rng)
    with reference_kernels():
        check_gradients(conv, x).assert_ok()


def test_reference_branch_runs_im2col_and_backward_follows_forward(rng, library_functions):
    conv = Conv2d(2, 3, 3, padding=1, rng=rng)
    x = rng.standard_normal((2, 2, 5, 5))
    with reference_kernels():
        assert "im2col" in library_functions(conv.forward, x)
    assert conv.cache["cols"].shape == (2 * 9, 2 * 25)            # kept for backward
    assert "col2im" in library_functions(conv.backward, np.ones((2, 3, 5, 5)))
    assert "im2col" not in library_functions(conv.forward, x)       # fast path again
    assert conv.cache["cols"] is None
    assert "col2im" not in library_functions(conv.backward, np.ones((2, 3, 5, 5)))


def test_function_budget_under_reference_kernels(rng, library_functions):
    """A learner stepping into Conv2d under reference_kernels() meets few functions:
    forward, its input check, im2col with its argument handling, and Layer.__setattr__."""
    conv = Conv2d(8, 8, 3, padding=1, bias=False, rng=rng)
    x = rng.standard_normal((2, 8, 8, 8))
    with reference_kernels():
        forward = library_functions(conv.forward, x)
        backward = library_functions(conv.backward, np.ones((2, 8, 8, 8)))
    assert len(forward) <= 8, sorted(forward)
    assert len(backward) <= 7, sorted(backward)
    assert "Layer.__repr__" not in forward and "Conv2d.extra_repr" not in forward


def test_error_messages_are_built_only_when_failing(rng, library_functions):
    conv = Conv2d(3, 4, 3, rng=rng)
    x = rng.standard_normal((1, 3, 5, 5))
    assert "Conv2d.extra_repr" not in library_functions(conv.forward, x)
    with pytest.raises(ValueError, match=r"^Conv2d\(3, 4, kernel_size=3\)\.forward: "):
        conv.forward(rng.standard_normal((1, 2, 5, 5)))


@pytest.mark.torch
@pytest.mark.parametrize("dtype, rtol", [(np.float32, 1e-5), (np.float64, 1e-10)])
@pytest.mark.parametrize("case", CASES)
def test_matches_pytorch(rng, dtype, rtol, case):
    torch = pytest.importorskip("torch")
    conv, x = make(case, rng)
    conv.astype(dtype)
    x = x.astype(dtype)
    out = conv.forward(x)
    dout = rng.standard_normal(out.shape).astype(dtype)
    dx = conv.backward(dout)
    tx = torch.tensor(x, requires_grad=True)
    tW = torch.tensor(conv.params["W"], requires_grad=True)
    tb = torch.tensor(conv.params["b"], requires_grad=True) if conv.bias else None
    tout = torch.nn.functional.conv2d(tx, tW, tb, stride=conv.stride, padding=conv.padding)
    tout.backward(torch.tensor(dout))

    def close(a, t):
        t = t.detach().numpy()
        scale = np.max(np.abs(t))                  # relative to the tensor's magnitude
        np.testing.assert_allclose(a, t, rtol=0, atol=rtol * scale)

    close(out, tout)
    close(dx, tx.grad)
    close(conv.grads["W"], tW.grad)
    if conv.bias:
        close(conv.grads["b"], tb.grad)
