"""Pooling over windows of an NCHW image: MaxPool2d, AvgPool2d, GlobalAvgPool2d.

A window picture. With kernel (kH, kW), stride (sH, sW) and the input padded by
(pH, pW) on each side into xp, output pixel (h, w) looks at the window

    xp[n, c, h*sH + i, w*sW + j]    for i < kH, j < kW,

and H_out = (H + 2*pH - kH) // sH + 1 (the same for W). Fixing the kernel offset
(i, j) and letting (h, w) run picks a strided slice of xp with the shape of the
output: xp[:, :, i : i + sH*H_out : sH, j : j + sW*W_out : sW] holds entry (i, j) of
every window at once. So both passes are a loop over the kH*kW offsets, each a
whole-array operation; backward adds each offset's share into the same slice of a
zero dxp, which is why overlapping windows (stride < kernel) sum up correctly.
"""
import numpy as np

from .._checks import check_array, message, pair
from .base import Layer


def _fmt(p):
    """(3, 3) -> "3", (3, 2) -> "(3, 2)": the shortest way to write a pair back."""
    return str(p[0]) if p[0] == p[1] else str(p)


class _Pool2d(Layer):
    """Shared by MaxPool2d and AvgPool2d: arguments, checks, padding, window slices."""

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
        where = f"{self!r}.forward"
        check_array(x, where, 4, "(N, C, H, W)",
                    fix="For a single image (C, H, W) add a batch axis with x[None]."
                    if np.ndim(x) == 3 else "")
        N, C, H, W = x.shape
        (kH, kW), (sH, sW), (pH, pW) = self.kernel_size, self.stride, self.padding
        if H + 2 * pH < kH or W + 2 * pW < kW:
            raise ValueError(message(
                where, f"an input of at least {kH}x{kW} after padding",
                f"x of shape {x.shape} with padding {self.padding}",
                "Use a smaller kernel_size, or fewer downsampling layers before this one."))
        if pH or pW:
            xp = np.full((N, C, H + 2 * pH, W + 2 * pW), fill, dtype=x.dtype)
            xp[:, :, pH:pH + H, pW:pW + W] = x
        else:
            xp = x
        return xp, ((H + 2 * pH - kH) // sH + 1, (W + 2 * pW - kW) // sW + 1)

    def _offsets(self, out_size):
        """Yield (k, slices): for kernel offset k = i*kW + j in row-major order, the
        index of xp holding entry (i, j) of every window, shaped like the output."""
        (kH, kW), (sH, sW), (H_out, W_out) = self.kernel_size, self.stride, out_size
        for i in range(kH):
            for j in range(kW):
                yield i * kW + j, (slice(None), slice(None),
                                   slice(i, i + sH * (H_out - 1) + 1, sH),
                                   slice(j, j + sW * (W_out - 1) + 1, sW))

    def _unpad(self, dxp):
        """Drop the padded border of a gradient: (N, C, H + 2pH, W + 2pW) -> (N, C, H, W)."""
        pH, pW = self.padding
        if not (pH or pW):
            return dxp
        return np.ascontiguousarray(dxp[:, :, pH:dxp.shape[2] - pH, pW:dxp.shape[3] - pW])

    def extra_repr(self):
        text = f"kernel_size={_fmt(self.kernel_size)}"
        if self.stride != self.kernel_size:
            text += f", stride={_fmt(self.stride)}"
        if self.padding != (0, 0):
            text += f", padding={_fmt(self.padding)}"
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
        xp, out_size = self._padded(x, -np.inf)
        kH, kW = self.kernel_size
        offsets = self._offsets(out_size)
        _, first = next(offsets)
        out = xp[first].copy()                                 # (N, C, H_out, W_out)
        argmax = np.zeros(out.shape, dtype=np.min_scalar_type(kH * kW - 1))
        for k, window_entry in offsets:
            candidate = xp[window_entry]                       # (N, C, H_out, W_out) view
            wins = candidate > out                             # strict: earlier ties stay
            np.maximum(out, candidate, out=out)
            # argmax = k where wins, else unchanged; arithmetic (wrapping in the unsigned
            # dtype) is several times faster than a masked assignment argmax[wins] = k.
            step = np.subtract(k, argmax, dtype=argmax.dtype)
            step *= wins
            argmax += step
        self.cache = {"argmax": argmax, "x_shape": x.shape}
        return out

    def backward(self, dout):
        argmax, x_shape = self._cached("argmax", "x_shape")
        N, C, H, W = x_shape
        pH, pW = self.padding
        dxp = np.zeros((N, C, H + 2 * pH, W + 2 * pW), dtype=dout.dtype)
        for k, window_entry in self._offsets(argmax.shape[2:]):
            dxp[window_entry] += dout * (argmax == k)          # overlapping windows add up
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
        xp, out_size = self._padded(x, 0)
        offsets = self._offsets(out_size)
        _, first = next(offsets)
        out = xp[first].copy()                                 # (N, C, H_out, W_out)
        for _, window_entry in offsets:
            out += xp[window_entry]
        kH, kW = self.kernel_size
        out *= 1.0 / (kH * kW)                                  # a Python float: no upcast
        self.cache = {"x_shape": x.shape}
        return out

    def backward(self, dout):
        N, C, H, W = self._cached("x_shape")
        pH, pW = self.padding
        kH, kW = self.kernel_size
        dshare = dout * (1.0 / (kH * kW))                      # each window entry's share
        dxp = np.zeros((N, C, H + 2 * pH, W + 2 * pW), dtype=dout.dtype)
        for _, window_entry in self._offsets(dout.shape[2:]):
            dxp[window_entry] += dshare
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
        check_array(x, f"{self!r}.forward", 4, "(N, C, H, W)",
                    fix="For a single image (C, H, W) add a batch axis with x[None]."
                    if np.ndim(x) == 3 else "")
        N, C = x.shape[:2]
        self.cache = {"x_shape": x.shape}
        return x.reshape(N, C, -1).mean(axis=2)                # (N, C)

    def backward(self, dout):
        N, C, H, W = self._cached("x_shape")
        dx = np.empty((N, C, H, W), dtype=dout.dtype)
        dx[...] = (dout * (1.0 / (H * W)))[:, :, None, None]  # (N, C, 1, 1) -> every pixel
        return dx
