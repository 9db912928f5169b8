"""Conv2d: 2-D convolution (cross-correlation, as in PyTorch) by im2col and a matrix product."""
import numpy as np

from .._checks import as_generator, check_array, check_int, message, pair, short_pair
from . import _kernels
from ._fast_conv import conv_backward, conv_forward
from .base import Layer
from .columns import col2im, im2col, output_size
from .dense import he_normal


class Conv2d(Layer):
    """2-D convolution: out[n, o] = b[o] + sum over c of W[o, c] (*) x[n, c].

    (*) is cross-correlation, as in PyTorch and every deep-learning library: the
    kernel is not flipped.

    Math
    ----
    With cols = im2col(x) (one column per output pixel, see resnet_np.layers.columns)
    and W2 = W.reshape(C_out, C_in * kH * kW):
        forward:   out = W2 @ cols + b                (C_out, N * H_out * W_out)
        backward:  dW2 = dout @ cols^T,  db = sum of dout over (N, H_out, W_out),
                   dx = col2im(W2^T @ dout)
    where out and dout are taken as (C_out, N * H_out * W_out) matrices (dout2 in the code).
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

    The code to read is the reference branch of forward and backward: the Math above,
    line for line, with im2col and col2im from resnet_np.layers.columns. It runs under
    `with resnet_np.reference_kernels():` (a debugger then steps into it). Otherwise the
    fast path of the private module resnet_np.layers._fast_conv runs (chunks of the batch,
    one matrix product per kernel offset on shifted slices, threads); tests assert that
    the two give the same numbers.
    Backward runs the kernels its forward ran.

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

    def forward(self, x):
        C_in, C_out = self.in_channels, self.out_channels
        window = self.kernel_size, self.stride, self.padding
        check_array(x, self._where, 4, f"(N, {C_in}, H, W)", {1: C_in}, self._shape_fix)
        N = x.shape[0]
        H_out, W_out = output_size(x.shape, *window, self._where)
        W = self.params["W"]
        dtype = np.result_type(x.dtype, W.dtype)                          # float32 stays float32
        W2 = W.reshape(C_out, -1).astype(dtype, copy=False)               # (C_out, C_in*kH*kW)
        cols = None
        if _kernels.REFERENCE:                       # the code to read: the Math, line for line
            cols = im2col(x, *window)                                 # (C_in*kH*kW, N*H_out*W_out)
            out2 = W2 @ cols                                              # (C_out, N*H_out*W_out)
            out = out2.reshape(C_out, N, H_out, W_out).transpose(1, 0, 2, 3)  # NCHW
        else:                                        # the fast path: the same numbers, faster
            out = conv_forward(x, W2, *window)
        if self.bias:                                                     # + b, per channel
            out += self.params["b"].astype(dtype, copy=False)[:, None, None]
        self.cache = {"x": x, "cols": cols, "out_shape": out.shape}
        return out

    def _shape_fix(self, x):
        """The hint of a wrong input shape (built only when the check fails)."""
        return (f"This layer has in_channels={self.in_channels}; check the previous layer's "
                "out_channels.")

    def backward(self, dout):
        x, cols, out_shape = self._cached("x", "cols", "out_shape")   # cols: reference only
        window = self.kernel_size, self.stride, self.padding
        if np.shape(dout) != out_shape:
            raise ValueError(message(f"{self!r}.backward",
                                     f"dout of the output's shape {out_shape}",
                                     str(np.shape(dout)), "Pass dL/dout for the last forward."))
        W = self.params["W"]
        dtype = np.result_type(x.dtype, W.dtype)
        W2 = W.reshape(self.out_channels, -1).astype(dtype, copy=False)  # (C_out, C_in*kH*kW)
        if cols is not None:                         # the forward ran the reference: so does this
            dout2 = dout.transpose(1, 0, 2, 3).reshape(len(W2), -1)      # (C_out, N*H_out*W_out)
            dW2 = dout2 @ cols.T                                          # (C_out, C_in*kH*kW)
            dx = col2im(W2.T @ dout2, x.shape, *window)           # (N, C_in, H, W)
        else:                                        # the fast path: the same numbers, faster
            dx, dW2 = conv_backward(x, dout, W2, *window)
        self.grads["W"] = dW2.reshape(W.shape).astype(W.dtype, copy=False)
        if self.bias:                                                     # db = dout summed
            self.grads["b"] = dout.sum(axis=(0, 2, 3)).astype(W.dtype, copy=False)
        return dx

    def extra_repr(self):
        text = f"{self.in_channels}, {self.out_channels}"
        text += f", kernel_size={short_pair(self.kernel_size)}"
        for name, value, default in (("stride", self.stride, 1), ("padding", self.padding, 0)):
            if value != (default, default):
                text += f", {name}={short_pair(value)}"
        return text + ("" if self.bias else ", bias=False")
