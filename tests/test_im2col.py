"""im2col / col2im: the column picture, the round trip and the adjoint identity."""
import numpy as np
import pytest

from resnet_np.layers.im2col import col2im, im2col, output_size

CASES = [  # (x shape, kernel, stride, padding)
    ((2, 3, 5, 5), (3, 3), (1, 1), (1, 1)),
    ((3, 2, 7, 6), (3, 2), (2, 1), (0, 2)),
    ((1, 4, 8, 8), (3, 3), (2, 2), (1, 1)),
    ((2, 1, 5, 7), (1, 1), (2, 2), (0, 0)),
    ((1, 2, 4, 4), (4, 4), (1, 1), (2, 2)),
]


def naive_im2col(x, kernel, stride, padding):
    """One column per output pixel, filled pixel by pixel."""
    N, C, H, W = x.shape
    (kH, kW), (sH, sW), (pH, pW) = kernel, stride, padding
    xp = np.pad(x, ((0, 0), (0, 0), (pH, pH), (pW, pW)))
    H_out, W_out = output_size(H, kH, sH, pH), output_size(W, kW, sW, pW)
    cols = np.zeros((C * kH * kW, N * H_out * W_out))
    for n in range(N):
        for h in range(H_out):
            for w in range(W_out):
                window = xp[n, :, h * sH:h * sH + kH, w * sW:w * sW + kW]
                cols[:, (n * H_out + h) * W_out + w] = window.reshape(-1)
    return cols


@pytest.mark.parametrize("shape, kernel, stride, padding", CASES)
def test_im2col_matches_naive_windows(rng, shape, kernel, stride, padding):
    x = rng.standard_normal(shape)
    cols = im2col(x, kernel, stride, padding)
    np.testing.assert_array_equal(cols, naive_im2col(x, kernel, stride, padding))


def test_im2col_shape_and_dtype(rng):
    x = rng.standard_normal((2, 3, 7, 9)).astype(np.float32)
    cols = im2col(x, (3, 5), (2, 2), (1, 0))
    assert cols.shape == (3 * 3 * 5, 2 * 4 * 3)
    assert cols.dtype == np.float32


@pytest.mark.parametrize("shape, kernel, stride, padding", CASES)
def test_col2im_of_im2col_counts_covering_windows(rng, shape, kernel, stride, padding):
    x = rng.standard_normal(shape)
    ones_cols = np.ones_like(im2col(x, kernel, stride, padding))
    count = col2im(ones_cols, shape, kernel, stride, padding)   # windows covering each pixel
    round_trip = col2im(im2col(x, kernel, stride, padding), shape, kernel, stride, padding)
    np.testing.assert_allclose(round_trip, x * count, rtol=1e-12, atol=1e-12)
    # the count itself, from a direct loop over windows
    N, C, H, W = shape
    (kH, kW), (sH, sW), (pH, pW) = kernel, stride, padding
    expected = np.zeros((H + 2 * pH, W + 2 * pW))
    for h in range(output_size(H, kH, sH, pH)):
        for w in range(output_size(W, kW, sW, pW)):
            expected[h * sH:h * sH + kH, w * sW:w * sW + kW] += 1
    np.testing.assert_array_equal(count[0, 0], expected[pH:pH + H, pW:pW + W])


@pytest.mark.parametrize("shape, kernel, stride, padding", CASES)
def test_col2im_is_the_adjoint_of_im2col(rng, shape, kernel, stride, padding):
    x = rng.standard_normal(shape)
    c = rng.standard_normal(im2col(x, kernel, stride, padding).shape)
    lhs = np.sum(im2col(x, kernel, stride, padding) * c)
    rhs = np.sum(x * col2im(c, shape, kernel, stride, padding))
    assert lhs == pytest.approx(rhs, rel=1e-12)


def test_docstring_picture_first_column_is_top_left_window():
    x = np.arange(2 * 4 * 4, dtype=np.float64).reshape(1, 2, 4, 4)
    cols = im2col(x, (2, 2), (2, 2))
    np.testing.assert_array_equal(cols[:, 0], [0, 1, 4, 5, 16, 17, 20, 21])
    np.testing.assert_array_equal(cols[:, 3], [10, 11, 14, 15, 26, 27, 30, 31])


# -- the fast path (shifted columns, chunks, threads) agrees with im2col/col2im --------
import importlib  # noqa: E402

fast = importlib.import_module("resnet_np.layers.im2col")   # the module, not the function

FAST_CASES = CASES + [
    ((7, 3, 8, 8), (3, 3), (2, 2), (1, 1)),      # odd batch, stride 2
    ((5, 2, 9, 9), (3, 3), (3, 3), (0, 0)),      # stride 3: nine phases
    ((3, 2, 6, 5), (5, 3), (1, 2), (2, 1)),      # kernel taller than the stride grid
]


def reference_conv(x, W2, kernel, stride, padding, dout):
    """out, dx, dW2 from the plain im2col/col2im on the whole batch."""
    cols = im2col(x, kernel, stride, padding)                    # (K, N*H_out*W_out)
    N, C_out = x.shape[0], W2.shape[0]
    H_out, W_out = dout.shape[2:]
    out = (W2 @ cols).reshape(C_out, N, H_out, W_out).transpose(1, 0, 2, 3)
    dout2 = dout.transpose(1, 0, 2, 3).reshape(C_out, -1)        # (C_out, N*H_out*W_out)
    return out, col2im(W2.T @ dout2, x.shape, kernel, stride, padding), dout2 @ cols.T


@pytest.mark.parametrize("flipped", [True, False])              # stride-1 backward route
@pytest.mark.parametrize("C_out", [1, 5])
@pytest.mark.parametrize("chunk_bytes", [1, 4 << 20])          # one example per chunk, or one chunk
@pytest.mark.parametrize("shape, kernel, stride, padding", FAST_CASES)
def test_fast_path_matches_im2col(rng, monkeypatch, flipped, C_out, chunk_bytes, shape, kernel,
                                  stride, padding):
    monkeypatch.setattr(fast, "CHUNK_BYTES", chunk_bytes)
    monkeypatch.setattr(fast, "FLIPPED_BACKWARD", flipped)
    x = rng.standard_normal(shape)
    W2 = rng.standard_normal((C_out, shape[1] * kernel[0] * kernel[1]))
    out = fast.conv_forward(x, W2, kernel, stride, padding)
    dout = rng.standard_normal(out.shape)
    dx, dW2 = fast.conv_backward(x, dout, W2, kernel, stride, padding)
    ref_out, ref_dx, ref_dW2 = reference_conv(x, W2, kernel, stride, padding, dout)
    np.testing.assert_allclose(out, ref_out, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dx, ref_dx, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dW2, ref_dW2, rtol=1e-12, atol=1e-12)


def test_fast_path_without_threads_agrees(rng, monkeypatch):
    """The fallback when OpenBLAS's thread setting is not found: chunks in sequence."""
    x = rng.standard_normal((9, 3, 8, 8)).astype(np.float32)
    W2 = rng.standard_normal((5, 27)).astype(np.float32)
    monkeypatch.setattr(fast, "CHUNK_BYTES", 1)
    threaded = fast.conv_forward(x, W2, (3, 3), (1, 1), (1, 1))
    monkeypatch.setattr(fast, "_blas", None)
    sequential = fast.conv_forward(x, W2, (3, 3), (1, 1), (1, 1))
    np.testing.assert_array_equal(threaded, sequential)
    assert threaded.dtype == np.float32


def test_flipped_route_is_taken_where_it_applies():
    g = fast._Geometry((2, 16, 8, 8), (3, 3), (1, 1), (1, 1))
    assert fast._flipped_route(g, 16) and not fast._flipped_route(g, 32)
    assert not fast._flipped_route(fast._Geometry((2, 16, 8, 8), (3, 3), (2, 2), (1, 1)), 16)
    assert not fast._flipped_route(fast._Geometry((1, 2, 4, 4), (3, 3), (1, 1), (3, 3)), 2)


def test_chunks_cover_the_batch_exactly_once():
    g = fast._Geometry((13, 16, 32, 32), (3, 3), (1, 1), (1, 1))
    for workers in (1, 2, 4):
        chunks = fast._chunks(g, 4, workers)
        covered = np.concatenate([np.arange(a, b) for a, b in chunks])
        np.testing.assert_array_equal(covered, np.arange(13))


def test_blas_thread_setting_is_restored(rng, monkeypatch):
    if fast._blas is None:
        pytest.skip("OpenBLAS thread control not found; the sequential fallback is used")
    before = fast._blas.get()
    monkeypatch.setattr(fast, "CHUNK_BYTES", 1)
    fast.conv_forward(rng.standard_normal((4, 2, 5, 5)), rng.standard_normal((3, 18)),
                      (3, 3), (1, 1), (1, 1))
    assert fast._blas.get() == before


def test_fast_path_accepts_non_contiguous_and_float16_input(rng, monkeypatch):
    monkeypatch.setattr(fast, "CHUNK_BYTES", 1)
    x = rng.standard_normal((5, 3, 7, 6))
    W2 = rng.standard_normal((4, 27)).astype(np.float32)
    view = np.asfortranarray(x)[:, :, ::-1]                       # strided, reversed rows
    expected = fast.conv_forward(np.ascontiguousarray(view), W2, (3, 3), (1, 1), (1, 1))
    np.testing.assert_array_equal(fast.conv_forward(view, W2, (3, 3), (1, 1), (1, 1)), expected)
    half = fast.conv_forward(x.astype(np.float16), W2, (3, 3), (1, 1), (1, 1))
    assert half.dtype == np.float32
    np.testing.assert_allclose(half, fast.conv_forward(x.astype(np.float16).astype(np.float32),
                                                       W2, (3, 3), (1, 1), (1, 1)))


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs os.fork")
def test_thread_pool_works_in_a_forked_child(rng, monkeypatch):
    """A forked child inherits the pool object but not its threads: it must make its own."""
    import multiprocessing
    monkeypatch.setattr(fast, "CHUNK_BYTES", 1)
    x = rng.standard_normal((4, 2, 5, 5))
    W2 = rng.standard_normal((3, 18))
    expected = fast.conv_forward(x, W2, (3, 3), (1, 1), (1, 1))   # the parent's pool exists now
    with multiprocessing.get_context("fork").Pool(1) as pool:
        result = pool.apply_async(fast.conv_forward, (x, W2, (3, 3), (1, 1), (1, 1)))
        np.testing.assert_array_equal(result.get(timeout=30), expected)
