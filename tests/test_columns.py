"""resnet_np.layers.columns: output_size, window_entry, im2col and col2im (the readable
reference): the column picture, the round trip and the adjoint identity."""
import numpy as np
import pytest

import resnet_np
from resnet_np.layers.columns import col2im, im2col, output_size, window_entry

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
    H_out, W_out = (H + 2 * pH - kH) // sH + 1, (W + 2 * pW - kW) // sW + 1
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
    for h in range((H + 2 * pH - kH) // sH + 1):
        for w in range((W + 2 * pW - kW) // sW + 1):
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


def test_a_module_path_gives_the_module():
    import types

    import resnet_np.layers.columns as module
    assert isinstance(module, types.ModuleType)
    assert resnet_np.im2col is module.im2col and resnet_np.layers.col2im is module.col2im


@pytest.mark.parametrize("shape, kernel, stride, padding", CASES)
def test_output_size_counts_window_positions(shape, kernel, stride, padding):
    N, C, H, W = shape
    (kH, kW), (sH, sW), (pH, pW) = kernel, stride, padding
    rows = [h for h in range(0, H + 2 * pH) if h + kH <= H + 2 * pH and h % sH == 0]
    columns = [w for w in range(0, W + 2 * pW) if w + kW <= W + 2 * pW and w % sW == 0]
    assert output_size(shape, kernel, stride, padding) == (len(rows), len(columns))


def test_output_size_error_names_where_and_is_built_only_when_failing():
    calls = []

    def where():
        calls.append(1)
        return "Layer(1).forward"

    assert output_size((1, 1, 3, 3), (3, 3), (1, 1), (0, 0), where) == (1, 1)
    assert calls == []                                     # not built on success
    with pytest.raises(ValueError, match=r"^Layer\(1\)\.forward: expected a padded input at least "
                       r"as large as the kernel 3x4, got 3x2 padded to 3x2\. Use a larger input"):
        output_size((1, 1, 3, 2), (3, 4), (1, 1), (0, 0), where)


def test_window_entry_is_the_strided_view_of_one_kernel_offset(rng):
    xp = rng.standard_normal((2, 3, 9, 8))
    view = xp[window_entry(1, 2, (2, 3), (4, 2))]          # H_out 4, W_out 2
    assert view.shape == (2, 3, 4, 2) and np.shares_memory(view, xp)
    for h in range(4):
        for w in range(2):
            np.testing.assert_array_equal(view[:, :, h, w], xp[:, :, h * 2 + 1, w * 3 + 2])
