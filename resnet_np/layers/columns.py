"""im2col and col2im: a convolution as one matrix product (the readable reference).

The picture
-----------
Pad each image with `padding` zeros on every side; call it xp, of shape (N, C, Hp, Wp).
Output pixel (h, w) of example n looks at the kH x kW window of xp whose top-left
corner is (h * stride, w * stride). im2col writes that window, for every channel,
as one column:

    cols[(c, i, j), (n, h, w)] = xp[n, c, h * stride + i, w * stride + j]

Rows are indexed by (channel c, kernel row i, kernel column j), in that order, which is
exactly how W (C_out, C_in, kH, kW) flattens to W.reshape(C_out, C_in * kH * kW).
Columns are indexed by (example n, output row h, output column w). Then

    out = W.reshape(C_out, -1) @ cols        (C_out, N * H_out * W_out)

and one transpose puts it back in NCHW. An input pixel appears in as many columns as
there are windows covering it (up to kH * kW): a 3x3 kernel with stride 1 copies
every pixel nine times, which is why the column matrix is big.

col2im is the adjoint (transpose) of im2col: every entry of a column is added back
to the pixel it came from, so pixels covered by several windows receive the sum.
That is exactly what backward needs: dx = col2im(W^T @ dout).

This module is the code to read: Conv2d runs exactly these functions under
resnet_np.reference_kernels(), and the pooling layers take their window slices from
window_entry. Conv2d's default, faster route computes the same numbers in the private
module resnet_np.layers._fast_conv; tests assert that the two agree.

Shape
-----
x: (N, C, H, W)   cols: (C * kH * kW, N * H_out * W_out)
H_out = (H + 2 * pH - kH) // sH + 1,   W_out = (W + 2 * pW - kW) // sW + 1
"""
import numpy as np

from .._checks import check_array, message, pair


def output_size(x_shape, kernel_size, stride, padding, where="output_size"):
    """(H_out, W_out): how many window positions fit down and across the padded input.

    H_out = (H + 2 pH - kH) // sH + 1 and W_out = (W + 2 pW - kW) // sW + 1, for
    x_shape (N, C, H, W) and the pairs kernel_size (kH, kW), stride (sH, sW) and
    padding (pH, pW). A kernel larger than the padded input fits nowhere: that raises
    a ValueError naming `where` (a text, or a function returning it), for Conv2d, the
    pooling layers, im2col and col2im alike.

    >>> output_size((1, 3, 32, 32), (3, 3), (2, 2), (1, 1))
    (16, 16)
    """
    (H, W), (kH, kW), (sH, sW), (pH, pW) = x_shape[2:], kernel_size, stride, padding
    if H + 2 * pH < kH or W + 2 * pW < kW:
        raise ValueError(message(
            where, f"a padded input at least as large as the kernel {kH}x{kW}",
            f"{H}x{W} padded to {H + 2 * pH}x{W + 2 * pW}",
            "Use a larger input, more padding or a smaller kernel_size."))
    return (H + 2 * pH - kH) // sH + 1, (W + 2 * pW - kW) // sW + 1


def window_entry(i, j, stride, out_size):
    """Index of entry (i, j) of every window of a padded (N, C, Hp, Wp) array xp.

    xp[window_entry(i, j, stride, (H_out, W_out))] is a strided view of shape
    (N, C, H_out, W_out) whose [n, c, h, w] is xp[n, c, h * sH + i, w * sW + j]: what
    kernel offset (i, j) sees at every output position. Writing into it (+=) writes into xp.
    """
    (sH, sW), (H_out, W_out) = stride, out_size
    return (slice(None), slice(None),
            slice(i, i + sH * (H_out - 1) + 1, sH), slice(j, j + sW * (W_out - 1) + 1, sW))


def im2col(x, kernel_size, stride=1, padding=0):
    """Copy every kH x kW window of the padded input into a column.

    cols[(c, i, j), (n, h, w)] = xp[n, c, h * sH + i, w * sW + j], with xp the
    zero-padded input. One Python loop runs over the kH * kW kernel offsets (i, j);
    each iteration copies, for all examples, channels and output pixels at once,
    the strided view of xp that offset (i, j) sees.

    Parameters
    ----------
    x : array (N, C, H, W)
    kernel_size, stride, padding : int or pair of ints (kH, kW), (sH, sW), (pH, pW)

    Returns
    -------
    cols : array (C * kH * kW, N * H_out * W_out), same dtype as x

    Example
    -------
    >>> x = np.arange(9.0).reshape(1, 1, 3, 3)
    >>> im2col(x, (2, 2))          # four 2x2 windows, one per column
    array([[0., 1., 3., 4.],
           [1., 2., 4., 5.],
           [3., 4., 6., 7.],
           [4., 5., 7., 8.]])
    """
    check_array(x, "im2col", 4, "(N, C, H, W)")
    kernel_size = pair(kernel_size, "kernel_size", "im2col")
    stride = pair(stride, "stride", "im2col")
    padding = pair(padding, "padding", "im2col", minimum=0)
    H_out, W_out = output_size(x.shape, kernel_size, stride, padding, "im2col")
    N, C, H, W = x.shape
    (kH, kW), (pH, pW) = kernel_size, padding
    xp = np.pad(x, ((0, 0), (0, 0), (pH, pH), (pW, pW)))       # (N, C, Hp, Wp)
    cols = np.empty((C, kH, kW, N, H_out, W_out), dtype=x.dtype)
    for i in range(kH):
        for j in range(kW):
            window = xp[window_entry(i, j, stride, (H_out, W_out))]   # (N, C, H_out, W_out)
            cols[:, i, j] = window.transpose(1, 0, 2, 3)
    return cols.reshape(C * kH * kW, N * H_out * W_out)


def col2im(cols, x_shape, kernel_size, stride=1, padding=0):
    """Add every column entry back to the input pixel it was copied from.

    The adjoint of im2col: <im2col(x), c> == <x, col2im(c)> for all x and c. A pixel
    covered by k windows receives the sum of k entries, so col2im(im2col(x)) is x
    times the number of windows covering each pixel. Entries that came from the
    zero padding are dropped.

    Parameters
    ----------
    cols : array (C * kH * kW, N * H_out * W_out)
    x_shape : (N, C, H, W), the shape of the input im2col saw
    kernel_size, stride, padding : int or pair of ints

    Returns
    -------
    dx : array (N, C, H, W), same dtype as cols

    Example
    -------
    >>> x = np.ones((1, 1, 3, 3))
    >>> col2im(im2col(x, (2, 2)), x.shape, (2, 2))[0, 0]   # windows covering each pixel
    array([[1., 2., 1.],
           [2., 4., 2.],
           [1., 2., 1.]])
    """
    kernel_size = pair(kernel_size, "kernel_size", "col2im")
    stride = pair(stride, "stride", "col2im")
    padding = pair(padding, "padding", "col2im", minimum=0)
    if len(x_shape) != 4:
        raise ValueError(message("col2im", "x_shape (N, C, H, W)", str(tuple(x_shape))))
    H_out, W_out = output_size(x_shape, kernel_size, stride, padding, "col2im")
    N, C, H, W = x_shape
    (kH, kW), (pH, pW) = kernel_size, padding
    if np.shape(cols) != (C * kH * kW, N * H_out * W_out):
        raise ValueError(message("col2im", f"cols of shape ({C * kH * kW}, {N * H_out * W_out})",
                                 str(np.shape(cols)), "Pass the x_shape that im2col saw."))
    cols = cols.reshape(C, kH, kW, N, H_out, W_out)
    dxp = np.zeros((N, C, H + 2 * pH, W + 2 * pW), dtype=cols.dtype)   # (N, C, Hp, Wp)
    for i in range(kH):
        for j in range(kW):
            window = dxp[window_entry(i, j, stride, (H_out, W_out))]  # a view into dxp
            window += cols[:, i, j].transpose(1, 0, 2, 3)              # (N, C, H_out, W_out)
    return dxp[:, :, pH:pH + H, pW:pW + W].copy()
