"""Pooling over windows of an NCHW image: MaxPool2d, AvgPool2d, GlobalAvgPool2d.

A window picture. With kernel (kH, kW), stride (sH, sW) and the input padded by
(pH, pW) on each side into xp, output pixel (h, w) looks at the window

    xp[n, c, h*sH + i, w*sW + j]    for i < kH, j < kW,

and H_out = (H + 2*pH - kH) // sH + 1 (the same for W). Fixing the kernel offset
(i, j) and letting (h, w) run picks a strided slice of xp with the shape of the
output, xp[window_entry(i, j, stride, (H_out, W_out))] (from resnet_np.layers.columns,
the same slices im2col copies): entry (i, j) of every window at once. So both passes
are a loop over the kH*kW offsets, each a whole-array operation; backward adds each
offset's share into the same slice of a zero dxp, which is why overlapping windows
(stride < kernel) sum up correctly.

MaxPool2d also has a reference written with im2col (one window per column: the max
and argmax of each column); it runs under resnet_np.reference_kernels(), and tests
assert that it agrees with the offset loop.
"""
import numpy as np

from .._checks import check_array, message, pair, short_pair
from . import _kernels
from .base import Layer
from .columns import col2im, im2col, output_size, window_entry


class _Pool2d(Layer):
    """Shared by MaxPool2d and AvgPool2d: arguments, the input check and padding."""

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        name = type(self).__name__
        self.kernel_size = pair(kernel_size, "kernel_size", name)
        self.stride = self.kernel_size if stride is None else pair(stride, "stride", name)
        self.padding = pair(padding, "padding", name, minimum=0)
        if any(2 * p > k for p, k in zip(self.padding, self.kernel_size)):
            raise ValueError(message(
                name, "padding <= kernel_size / 2",
                f"padding={padding} with kernel_size={kernel_size}",
                "Use less padding or a larger kernel_size (the same rule as PyTorch)."))

    def _padded(self, x, fill):
        """Check x; return it padded with `fill` on every side, and (H_out, W_out)."""
        check_array(x, self._where, 4, "(N, C, H, W)")
        out_size = output_size(x.shape, self.kernel_size, self.stride, self.padding, self._where)
        N, C, H, W = x.shape
        pH, pW = self.padding
        if pH or pW:
            xp = np.full((N, C, H + 2 * pH, W + 2 * pW), fill, dtype=x.dtype)
            xp[:, :, pH:pH + H, pW:pW + W] = x
        else:
            xp = x
        return xp, out_size

    def _unpad(self, dxp):
        """Drop the padded border of a gradient: (N, C, H + 2pH, W + 2pW) -> (N, C, H, W)."""
        pH, pW = self.padding
        if not (pH or pW):
            return dxp
        return np.ascontiguousarray(dxp[:, :, pH:dxp.shape[2] - pH, pW:dxp.shape[3] - pW])

    def extra_repr(self):
        text = f"kernel_size={short_pair(self.kernel_size)}"
        if self.stride != self.kernel_size:
            text += f", stride={short_pair(self.stride)}"
        if self.padding != (0, 0):
            text += f", padding={short_pair(self.padding)}"
        return text


class MaxPool2d(_Pool2d):
    """Largest value of each window: out[n, c, h, w] = max_(i, j) xp[n, c, h*sH + i, w*sW + j].

    Math
    ----
    xp is x padded with -inf (padding never wins). The output is the max over the
    kH*kW entries of each window. Backward: the gradient of a max is 1 for the entry
    that won and 0 for the others, so dout[n, c, h, w] goes whole to the winning input
    pixel. Where windows overlap (stride < kernel_size) a pixel can win several windows
    and receives the sum of their gradients.
    Ties: the first maximum in row-major window order (smallest i, then smallest j)
    wins and gets the whole gradient, as in PyTorch on the CPU. A NaN in a window
    makes that output NaN.
    The code to read is the reference branch (run under resnet_np.reference_kernels()):
    cols = im2col of each channel, out = max of each column, argmax = where it is;
    backward puts dout in the argmax row of a zero dcols and adds it back with col2im.
    Outside it, _fast_max gives the same numbers with a loop over kernel offsets.

    Parameters
    ----------
    kernel_size : int or (kH, kW)
    stride : int or (sH, sW), default kernel_size (windows side by side)
    padding : int or (pH, pW), default 0, at most kernel_size / 2

    Attributes
    ----------
    cache : "argmax" (N, C, H_out, W_out): for each output, the winning kernel offset
        k = i*kW + j in row-major window order; "x_shape".

    Shape
    -----
    x: (N, C, H, W)  out: (N, C, H_out, W_out),  H_out = (H + 2*pH - kH) // sH + 1

    Example
    -------
    >>> pool = MaxPool2d(2)
    >>> x = np.array([[[[1., 2., 5., 0.],
    ...                 [3., 4., 1., 1.]]]])
    >>> pool(x)
    array([[[[4., 5.]]]])
    >>> pool.backward(np.array([[[[10., 20.]]]]))
    array([[[[ 0.,  0., 20.,  0.],
             [ 0., 10.,  0.,  0.]]]])
    >>> MaxPool2d(3, stride=2, padding=1)
    MaxPool2d(kernel_size=3, stride=2, padding=1)
    """

    def forward(self, x):
        xp, (H_out, W_out) = self._padded(x, -np.inf)                # (N, C, Hp, Wp)
        if _kernels.REFERENCE:                       # the code to read: one window per column
            N, C, Hp, Wp = xp.shape
            cols = im2col(xp.reshape(N * C, 1, Hp, Wp), self.kernel_size,
                          self.stride)                                # (kH*kW, N*C*H_out*W_out)
            argmax = cols.argmax(axis=0).reshape(N, C, H_out, W_out)  # the first maximum wins
            out = cols.max(axis=0).reshape(N, C, H_out, W_out)
        else:                                        # the fast path: the same numbers, faster
            out, argmax = self._fast_max(xp, (H_out, W_out))
        self.cache = {"argmax": argmax, "x_shape": x.shape}
        return out

    def _fast_max(self, xp, out_size):
        """(out, argmax) by a loop over the kH*kW kernel offsets, without copying windows."""
        kH, kW = self.kernel_size
        out = xp[window_entry(0, 0, self.stride, out_size)].copy()   # (N, C, H_out, W_out)
        argmax = np.zeros(out.shape, dtype=np.min_scalar_type(kH * kW - 1))
        for k in range(1, kH * kW):                    # offset k = i*kW + j, row-major
            candidate = xp[window_entry(k // kW, k % kW, self.stride, out_size)]   # a view
            wins = candidate > out                     # strict: earlier ties stay
            np.maximum(out, candidate, out=out)
            # argmax = k where wins, else unchanged; arithmetic (wrapping in the unsigned
            # dtype) is several times faster than a masked assignment argmax[wins] = k.
            step = np.subtract(k, argmax, dtype=argmax.dtype)
            step *= wins
            argmax += step
        return out, argmax

    def backward(self, dout):
        argmax, (N, C, H, W) = self._cached("argmax", "x_shape")
        (kH, kW), (pH, pW) = self.kernel_size, self.padding
        Hp, Wp = H + 2 * pH, W + 2 * pW
        if _kernels.REFERENCE:                       # dout goes whole to each window's winner
            M = dout.size                                             # N*C*H_out*W_out windows
            dcols = np.zeros((kH * kW, M), dtype=dout.dtype)          # (kH*kW, N*C*H_out*W_out)
            dcols[argmax.reshape(M), np.arange(M)] = dout.reshape(M)
            dxp = col2im(dcols, (N * C, 1, Hp, Wp), self.kernel_size, self.stride)
            return self._unpad(dxp.reshape(N, C, Hp, Wp))             # windows that overlap add up
        dxp = np.zeros((N, C, Hp, Wp), dtype=dout.dtype)
        for k in range(kH * kW):
            window = dxp[window_entry(k // kW, k % kW, self.stride, argmax.shape[2:])]  # a view
            window += dout * (argmax == k)                            # overlapping windows add up
        return self._unpad(dxp)


class AvgPool2d(_Pool2d):
    """Mean of each window: out[n, c, h, w] = sum_(i, j) xp[n, c, h*sH + i, w*sW + j] / (kH*kW).

    Math
    ----
    xp is x padded with zeros, and the padded zeros count in the average: the divisor
    is always kH*kW (PyTorch's default, count_include_pad=True). Backward: every
    entry of a window gets dout / (kH*kW); overlapping windows add up.

    Parameters
    ----------
    kernel_size : int or (kH, kW)
    stride : int or (sH, sW), default kernel_size
    padding : int or (pH, pW), default 0, at most kernel_size / 2

    Attributes
    ----------
    cache : "x_shape" (the layer is linear: backward needs nothing else).

    Shape
    -----
    x: (N, C, H, W)  out: (N, C, H_out, W_out),  H_out = (H + 2*pH - kH) // sH + 1

    Example
    -------
    >>> pool = AvgPool2d(2)
    >>> x = np.array([[[[1., 2., 5., 0.],
    ...                 [3., 4., 1., 2.]]]])
    >>> pool(x)
    array([[[[2.5, 2. ]]]])
    >>> pool.backward(np.array([[[[4., 8.]]]]))
    array([[[[1., 1., 2., 2.],
             [1., 1., 2., 2.]]]])
    """

    def forward(self, x):
        xp, out_size = self._padded(x, 0)                            # (N, C, Hp, Wp)
        kH, kW = self.kernel_size
        out = xp[window_entry(0, 0, self.stride, out_size)].copy()   # (N, C, H_out, W_out)
        for k in range(1, kH * kW):                                  # offset k = i*kW + j
            out += xp[window_entry(k // kW, k % kW, self.stride, out_size)]
        out *= 1.0 / (kH * kW)                                  # a Python float: no upcast
        self.cache = {"x_shape": x.shape}
        return out

    def backward(self, dout):
        N, C, H, W = self._cached("x_shape")
        (kH, kW), (pH, pW) = self.kernel_size, self.padding
        dshare = dout * (1.0 / (kH * kW))                      # each window entry's share
        dxp = np.zeros((N, C, H + 2 * pH, W + 2 * pW), dtype=dout.dtype)
        for k in range(kH * kW):
            window = dxp[window_entry(k // kW, k % kW, self.stride, dout.shape[2:])]  # a view
            window += dshare                                   # overlapping windows add up
        return self._unpad(dxp)


class GlobalAvgPool2d(Layer):
    """Mean of each channel over all pixels: out[n, c] = sum_(h, w) x[n, c, h, w] / (H*W).

    Math
    ----
    The head of a ResNet: one number per channel, whatever the image size.
    Backward: dx[n, c, h, w] = dout[n, c] / (H*W) for every pixel.

    Shape
    -----
    x: (N, C, H, W)  out: (N, C)

    Example
    -------
    >>> pool = GlobalAvgPool2d()
    >>> x = np.arange(8.0).reshape(1, 2, 2, 2)
    >>> pool(x)
    array([[1.5, 5.5]])
    >>> pool.backward(np.array([[4.0, 8.0]]))[0, 1]
    array([[2., 2.],
           [2., 2.]])
    """

    def forward(self, x):
        check_array(x, self._where, 4, "(N, C, H, W)")
        N, C = x.shape[:2]
        self.cache = {"x_shape": x.shape}
        return x.reshape(N, C, -1).mean(axis=2)                # (N, C)

    def backward(self, dout):
        N, C, H, W = self._cached("x_shape")
        dx = np.empty((N, C, H, W), dtype=dout.dtype)
        dx[...] = (dout * (1.0 / (H * W)))[:, :, None, None]  # (N, C, 1, 1) -> every pixel
        return dx
