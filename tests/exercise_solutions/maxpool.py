"""Exercise maxpool: max pooling, forward and backward.

Fill in forward and backward between the markers, then run `python maxpool.py` to
check your code.

Math
----
out[n, c, h, w] = max over (i, j) of x[n, c, h * stride + i, w * stride + j],
i, j in [0, kernel_size). No padding.
Backward: the gradient of a max goes whole to the entry that won, the others get 0.
Where windows overlap (stride < kernel_size) one pixel can win several windows: it
receives the SUM of their gradients (add with +=, never assign a window with =).
The checker's inputs have no ties.

Shape
-----
x, dx: (N, C, H, W)   out, dout: (N, C, H_out, W_out),  H_out = (H - k) // stride + 1
"""
import numpy as np


class MaxPool2d:
    """The largest value of each kernel_size x kernel_size window. No parameters."""

    def __init__(self, kernel_size, stride):
        self.kernel_size, self.stride = kernel_size, stride
        self.params, self.grads, self.cache = {}, {}, {}

    def forward(self, x):
        """x (N, C, H, W) -> out (N, C, H_out, W_out). Keep what backward needs."""
        # ---- your code here ----
        N, C, H, W = x.shape
        k, s = self.kernel_size, self.stride
        H_out, W_out = (H - k) // s + 1, (W - k) // s + 1
        out = np.full((N, C, H_out, W_out), -np.inf)
        for i in range(k):
            for j in range(k):
                out = np.maximum(out, x[:, :, i:i + s * H_out:s, j:j + s * W_out:s])
        self.cache = {"x": x, "out": out}
        return out
        # ---- end of your code ----

    def backward(self, dout):
        """dout (N, C, H_out, W_out) -> dx (N, C, H, W)."""
        # ---- your code here ----
        x, out = self.cache["x"], self.cache["out"]
        k, s = self.kernel_size, self.stride
        H_out, W_out = out.shape[2:]
        dx = np.zeros_like(x)
        for i in range(k):
            for j in range(k):
                window = x[:, :, i:i + s * H_out:s, j:j + s * W_out:s]
                dx[:, :, i:i + s * H_out:s, j:j + s * W_out:s] += dout * (window == out)
        return dx
        # ---- end of your code ----


if __name__ == "__main__":
    import sys

    from resnet_np.exercises import check

    diagnosis = check("maxpool", MaxPool2d)
    print(diagnosis)
    sys.exit(0 if diagnosis.passed else 1)
