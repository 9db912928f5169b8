"""Exercise col2im: add every column entry back to the pixel it came from.

Fill in col2im between the markers, then run `python col2im.py` to check it.

Math
----
col2im is the adjoint of im2col (see the im2col exercise for the layout):

    dxp[n, c, h * stride + i, w * stride + j]  +=  cols[(c, i, j), (n, h, w)]

for every column entry, into a zero-padded dxp (N, C, H + 2p, W + 2p); then drop
the padding. Where windows overlap (stride < kernel_size) a pixel receives the SUM
of the entries of every window that covers it: add (+=), never assign (=).
This is what a convolution's backward needs: dx = col2im(W2.T @ dout).

Shape
-----
cols: (C * k * k, N * H_out * W_out)   x_shape: (N, C, H, W)   dx: x_shape
"""
import numpy as np


def col2im(cols, x_shape, kernel_size, stride, padding):
    """cols (C*k*k, N*H_out*W_out), x_shape (N, C, H, W), ints -> dx of shape x_shape."""
    # ---- your code here ----
    N, C, H, W = x_shape
    k, s, p = kernel_size, stride, padding
    H_out, W_out = (H + 2 * p - k) // s + 1, (W + 2 * p - k) // s + 1
    cols = cols.reshape(C, k, k, N, H_out, W_out)
    dxp = np.zeros((N, C, H + 2 * p, W + 2 * p))
    for i in range(k):
        for j in range(k):
            dxp[:, :, i:i + s * H_out:s, j:j + s * W_out:s] += cols[:, i, j].transpose(1, 0, 2, 3)
    return dxp[:, :, p:p + H, p:p + W]
    # ---- end of your code ----


if __name__ == "__main__":
    import sys

    from resnet_np.exercises import check

    diagnosis = check("col2im", col2im)
    print(diagnosis)
    sys.exit(0 if diagnosis.passed else 1)
