"""Conv2d: 2-D convolution (cross-correlation, as in PyTorch) by im2col and a matrix product."""
import numpy as np

from .._checks import as_generator, check_array, check_int, message, pair
from .base import Layer
from .dense import he_normal
from .im2col import conv_backward, conv_forward


class Conv2d(Layer):
    """2-D convolution: out[n, o] = b[o] + sum over c of W[o, c] (*) x[n, c].

    (*) is cross-correlation, as in PyTorch and every deep-learning library: the
    kernel is not flipped.

    Math
    ----
    With cols = im2col(x) (one column per output pixel, see resnet_np.layers.im2col)
    and W2 = W.reshape(C_out, C_in * kH * kW):
        forward:   out = W2 @ cols + b                (C_out, N * H_out * W_out)
        backward:  dW2 = dout @ cols^T,  db = sum of dout over (N, H_out, W_out),
                   dx = col2im(W2^T @ dout)
    Ng writes one example with channels last; here images are NCHW, as in PyTorch.

    Parameters
    ----------
    in_channels, out_channels : int
    kernel_size : int or (kH, kW)
    stride : int or (sH, sW), default 1
    padding : int or (pH, pW), default 0; zeros added on every side
    bias : bool, default True (False before BatchNorm, whose beta plays that role)
    rng : None, int or np.random.Generator
        Source of the He-normal weights W ~ N(0, 2 / (C_in * kH * kW)); b = 0.

    Shape
    -----
    x: (N, C_in, H, W)   out: (N, C_out, H_out, W_out)
    W: (C_out, C_in, kH, kW)   b: (C_out,)
    H_out = (H + 2 pH - kH) // sH + 1,   W_out = (W + 2 pW - kW) // sW + 1

    Float32 input gives float32 output (no upcast); float64 works for gradient checks.
    The work is done by resnet_np.layers.im2col's fast path (chunks of the batch, columns
    as shifted slices, threads), which computes exactly the Math above.

    Example
    -------
    >>> conv = Conv2d(3, 16, kernel_size=3, padding=1, rng=0)
    >>> conv
    Conv2d(3, 16, kernel_size=3, padding=1)
    >>> x = np.ones((2, 3, 8, 8), dtype=np.float32)
    >>> conv(x).shape, conv(x).dtype
    ((2, 16, 8, 8), dtype('float32'))
    >>> conv.backward(np.ones((2, 16, 8, 8), dtype=np.float32)).shape
    (2, 3, 8, 8)
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 bias=True, rng=None):
        super().__init__()
        self.in_channels = check_int(in_channels, "in_channels", "Conv2d")
        self.out_channels = check_int(out_channels, "out_channels", "Conv2d")
        self.kernel_size = pair(kernel_size, "kernel_size", "Conv2d")
        self.stride = pair(stride, "stride", "Conv2d")
        self.padding = pair(padding, "padding", "Conv2d", minimum=0)
        self.bias = bool(bias)
        kH, kW = self.kernel_size
        fan_in = self.in_channels * kH * kW
        rng = as_generator(rng)
        self.add_param("W", he_normal(rng, (self.out_channels, self.in_channels, kH, kW), fan_in))
        if self.bias:
            self.add_param("b", np.zeros(self.out_channels, dtype=np.float32))

    def _check_input(self, x):
        where = f"{self!r}.forward"
        C_in = self.in_channels
        fix = "For a single image add the batch axis: x[None]." if np.ndim(x) == 3 else \
              f"This layer has in_channels={C_in}; check the previous layer's out_channels."
        check_array(x, where, 4, f"(N, {C_in}, H, W)", {1: C_in}, fix)
        N, C, H, W = x.shape
        (kH, kW), (pH, pW) = self.kernel_size, self.padding
        if H + 2 * pH < kH or W + 2 * pW < kW:
            raise ValueError(message(
                where, f"a padded input at least as large as the kernel {kH}x{kW}",
                f"{H}x{W} padded to {H + 2 * pH}x{W + 2 * pW}",
                "Use a larger input, more padding or a smaller kernel_size."))

    def forward(self, x):
        self._check_input(x)
        W = self.params["W"]
        dtype = np.result_type(x.dtype, W.dtype)                      # float32 stays float32
        W2 = W.reshape(self.out_channels, -1).astype(dtype, copy=False)  # (C_out, C_in*kH*kW)
        out = conv_forward(x, W2, self.kernel_size, self.stride,
                           self.padding)                              # (N, C_out, H_out, W_out)
        if self.bias:
            out += self.params["b"].astype(dtype, copy=False)[:, None, None]
        self.cache = {"x": x, "out_shape": out.shape}
        return out

    def backward(self, dout):
        x, out_shape = self._cached("x", "out_shape")                 # x: (N, C_in, H, W)
        if np.shape(dout) != out_shape:
            raise ValueError(message(f"{self!r}.backward",
                                     f"dout of the output's shape {out_shape}",
                                     str(np.shape(dout)), "Pass dL/dout for the last forward."))
        W = self.params["W"]
        dtype = np.result_type(x.dtype, W.dtype)
        W2 = W.reshape(self.out_channels, -1).astype(dtype, copy=False)  # (C_out, C_in*kH*kW)
        dx, dW2 = conv_backward(x, dout, W2, self.kernel_size, self.stride, self.padding)
        self.grads["W"] = dW2.reshape(W.shape).astype(W.dtype, copy=False)
        if self.bias:
            self.grads["b"] = dout.sum(axis=(0, 2, 3)).astype(W.dtype, copy=False)
        return dx

    def extra_repr(self):
        def short(pair):                                              # 3 for (3, 3)
            return pair[0] if pair[0] == pair[1] else pair

        text = f"{self.in_channels}, {self.out_channels}, kernel_size={short(self.kernel_size)}"
        for name, value, default in (("stride", self.stride, 1), ("padding", self.padding, 0)):
            if value != (default, default):
                text += f", {name}={short(value)}"
        return text + ("" if self.bias else ", bias=False")
