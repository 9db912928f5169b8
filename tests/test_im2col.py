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
