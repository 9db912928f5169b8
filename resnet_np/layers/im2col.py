"""im2col and col2im: a convolution as one matrix product.

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

Shape
-----
x: (N, C, H, W)   cols: (C * kH * kW, N * H_out * W_out)
H_out = (H + 2 * pH - kH) // sH + 1,   W_out = (W + 2 * pW - kW) // sW + 1
"""
import numpy as np


def output_size(size, kernel, stride, padding):
    """Number of window positions along one axis: (size + 2 padding - kernel) // stride + 1."""
    return (size + 2 * padding - kernel) // stride + 1


def _geometry(x_shape, kernel_size, stride, padding):
    N, C, H, W = x_shape
    (kH, kW), (sH, sW), (pH, pW) = kernel_size, stride, padding
    H_out, W_out = output_size(H, kH, sH, pH), output_size(W, kW, sW, pW)
    return N, C, H, W, kH, kW, sH, sW, pH, pW, H_out, W_out


def im2col(x, kernel_size, stride=(1, 1), padding=(0, 0)):
    """Copy every kH x kW window of the padded input into a column.

    cols[(c, i, j), (n, h, w)] = xp[n, c, h * sH + i, w * sW + j], with xp the
    zero-padded input. One Python loop runs over the kH * kW kernel offsets (i, j);
    each iteration copies, for all examples, channels and output pixels at once,
    the strided view of xp that offset (i, j) sees.

    Parameters
    ----------
    x : array (N, C, H, W)
    kernel_size, stride, padding : pairs of ints (kH, kW), (sH, sW), (pH, pW)

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
    N, C, H, W, kH, kW, sH, sW, pH, pW, H_out, W_out = \
        _geometry(x.shape, kernel_size, stride, padding)
    xp = np.pad(x, ((0, 0), (0, 0), (pH, pH), (pW, pW)))       # (N, C, Hp, Wp)
    cols = np.empty((C, kH, kW, N, H_out, W_out), dtype=x.dtype)
    for i in range(kH):
        for j in range(kW):
            window = xp[:, :, i:i + sH * H_out:sH, j:j + sW * W_out:sW]  # (N, C, H_out, W_out)
            cols[:, i, j] = window.transpose(1, 0, 2, 3)
    return cols.reshape(C * kH * kW, N * H_out * W_out)


def col2im(cols, x_shape, kernel_size, stride=(1, 1), padding=(0, 0)):
    """Add every column entry back to the input pixel it was copied from.

    The adjoint of im2col: <im2col(x), c> == <x, col2im(c)> for all x and c. A pixel
    covered by k windows receives the sum of k entries, so col2im(im2col(x)) is x
    times the number of windows covering each pixel. Entries that came from the
    zero padding are dropped.

    Parameters
    ----------
    cols : array (C * kH * kW, N * H_out * W_out)
    x_shape : (N, C, H, W), the shape of the input im2col saw
    kernel_size, stride, padding : pairs of ints

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
    N, C, H, W, kH, kW, sH, sW, pH, pW, H_out, W_out = \
        _geometry(x_shape, kernel_size, stride, padding)
    cols = cols.reshape(C, kH, kW, N, H_out, W_out)
    dxp = np.zeros((N, C, H + 2 * pH, W + 2 * pW), dtype=cols.dtype)   # (N, C, Hp, Wp)
    for i in range(kH):
        for j in range(kW):
            window = dxp[:, :, i:i + sH * H_out:sH, j:j + sW * W_out:sW]  # a view into dxp
            window += cols[:, i, j].transpose(1, 0, 2, 3)                  # (N, C, H_out, W_out)
    return dxp[:, :, pH:pH + H, pW:pW + W].copy()
