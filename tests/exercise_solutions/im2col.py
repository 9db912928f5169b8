"""Exercise im2col: every kernel window of the padded input as one column.

Fill in im2col between the markers, then run `python im2col.py` to check it.

Math
----
Pad x with `padding` zeros on every side: xp (N, C, H + 2p, W + 2p). Output pixel
(h, w) sees the k x k window of xp whose top-left corner is (h * stride, w * stride).
Write that window, for every channel, as one column:

    cols[(c, i, j), (n, h, w)] = xp[n, c, h * stride + i, w * stride + j]

Rows run over (channel c, kernel row i, kernel column j) in that order, columns over
(example n, output row h, output column w) in that order: the layout of
resnet_np.im2col, in which a convolution is W.reshape(C_out, -1) @ cols.

Shape
-----
x: (N, C, H, W)   cols: (C * k * k, N * H_out * W_out)
H_out = (H + 2 * padding - k) // stride + 1, and W_out likewise.
"""
import numpy as np


def im2col(x, kernel_size, stride, padding):
    """x (N, C, H, W) and ints kernel_size, stride, padding -> cols (C*k*k, N*H_out*W_out)."""
    # ---- your code here ----
    N, C, H, W = x.shape
    k, s, p = kernel_size, stride, padding
    H_out, W_out = (H + 2 * p - k) // s + 1, (W + 2 * p - k) // s + 1
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    cols = np.empty((C, k, k, N, H_out, W_out))
    for i in range(k):
        for j in range(k):
            window = xp[:, :, i:i + s * H_out:s, j:j + s * W_out:s]   # (N, C, H_out, W_out)
            cols[:, i, j] = window.transpose(1, 0, 2, 3)
    return cols.reshape(C * k * k, N * H_out * W_out)
    # ---- end of your code ----


if __name__ == "__main__":
    import sys

    from resnet_np.exercises import check

    diagnosis = check("im2col", im2col)
    print(diagnosis)
    sys.exit(0 if diagnosis.passed else 1)
