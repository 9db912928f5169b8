"""Exercise conv2d: the 2-D convolution layer (cross-correlation), forward and backward.

Fill in forward and backward between the markers, then run `python conv2d.py` to
check your code. You may use resnet_np.im2col and resnet_np.col2im (or your own).

Math
----
Deep learning's "convolution" does not flip the kernel (cross-correlation):
    out[n, o, h, w] = b[o] + sum_{c, i, j} W[o, c, i, j] * xp[n, c, h*s + i, w*s + j]
with xp the input padded by `padding` zeros and s the stride. With
cols = im2col(x) and W2 = W.reshape(C_out, C_in * k * k):
    forward:   out = W2 @ cols + b        then reshape to (N, C_out, H_out, W_out)
    backward:  dW2 = dout2 @ cols.T,  db = sum of dout over (N, H_out, W_out),
               dx = col2im(W2.T @ dout2)  (overlapping windows add up)
where dout2 is dout as (C_out, N * H_out * W_out).

Shape
-----
x: (N, C_in, H, W)   out, dout: (N, C_out, H_out, W_out)
W, dW: (C_out, C_in, k, k)   b, db: (C_out,)   H_out = (H + 2p - k) // s + 1
"""
import numpy as np


class Conv2d:
    """params "W" (out_channels, in_channels, k, k) and "b" (out_channels,)."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, rng=None):
        rng = np.random.default_rng(rng)
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        fan_in = in_channels * kernel_size * kernel_size
        W = rng.standard_normal((out_channels, in_channels, kernel_size, kernel_size))
        self.params = {"W": W * np.sqrt(2.0 / fan_in), "b": np.zeros(out_channels)}
        self.grads = {"W": np.zeros_like(W), "b": np.zeros(out_channels)}
        self.cache = {}

    def forward(self, x):
        """x (N, C_in, H, W) -> out (N, C_out, H_out, W_out). Read W, b from self.params."""
        # ---- your code here ----
        from resnet_np import im2col

        N, C_in, H, W = x.shape
        k, s, p = self.kernel_size, self.stride, self.padding
        W_param = self.params["W"]
        C_out = W_param.shape[0]
        H_out, W_out = (H + 2 * p - k) // s + 1, (W + 2 * p - k) // s + 1
        cols = im2col(x, k, s, p)                                   # (C_in*k*k, N*H_out*W_out)
        out = W_param.reshape(C_out, -1) @ cols + self.params["b"][:, None]
        self.cache = {"x_shape": x.shape, "cols": cols}
        return out.reshape(C_out, N, H_out, W_out).transpose(1, 0, 2, 3)
        # ---- end of your code ----

    def backward(self, dout):
        """dout (N, C_out, H_out, W_out) -> dx (N, C_in, H, W); sets grads["W"], ["b"]."""
        # ---- your code here ----
        from resnet_np import col2im

        x_shape, cols = self.cache["x_shape"], self.cache["cols"]
        W_param = self.params["W"]
        C_out = W_param.shape[0]
        dout2 = dout.transpose(1, 0, 2, 3).reshape(C_out, -1)      # (C_out, N*H_out*W_out)
        self.grads["W"] = (dout2 @ cols.T).reshape(W_param.shape)
        self.grads["b"] = dout.sum(axis=(0, 2, 3))
        dcols = W_param.reshape(C_out, -1).T @ dout2
        return col2im(dcols, x_shape, self.kernel_size, self.stride, self.padding)
        # ---- end of your code ----


if __name__ == "__main__":
    import sys

    from resnet_np.exercises import check

    diagnosis = check("conv2d", Conv2d)
    print(diagnosis)
    sys.exit(0 if diagnosis.passed else 1)
