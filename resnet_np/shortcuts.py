"""Shortcuts for convolutional residual blocks: what carries a^[l] to the addition.

He et al. 2015 (section 3.3 and Table 3) compare three options:

    A   identity where shapes match; where they change, subsample by the stride
        and append zero channels. No parameters.
    B   identity where shapes match; a projection W_s (1x1 conv, stride, + BN)
        where they change.
    C   a projection everywhere.

"identity" insists on matching shapes (a clear error otherwise) and None means
no shortcut at all: the plain twin.
"""
import numpy as np

from ._checks import check_array, check_choice, check_int, message
from .layers.activations import Identity
from .layers.base import Layer, Sequential
from .layers.batchnorm import BatchNorm2d
from .layers.conv import Conv2d

RESIDUAL_SHORTCUTS = ("identity", "A", "B", "C")
SHORTCUTS = RESIDUAL_SHORTCUTS + (None,)           # None: no shortcut, the plain twin


class ZeroPadShortcut(Layer):
    """Option A: out = a[:, :, ::stride, ::stride] with zero channels appended.

    The first in_channels output channels are the subsampled input, the remaining
    out_channels - in_channels are zero (as in the original Torch code, which
    concatenates zeros after the input). No parameters.
    Backward: dx[:, :, ::stride, ::stride] = dout[:, :in_channels], zero elsewhere.

    Shape
    -----
    x: (N, in_channels, H, W)   out: (N, out_channels, ceil(H/stride), ceil(W/stride))

    >>> pad = ZeroPadShortcut(1, 2, stride=2)
    >>> pad(np.arange(16.0).reshape(1, 1, 4, 4))[0]
    array([[[ 0.,  2.],
            [ 8., 10.]],
    <BLANKLINE>
           [[ 0.,  0.],
            [ 0.,  0.]]])
    """

    def __init__(self, in_channels, out_channels, stride=2):
        super().__init__()
        where = "ZeroPadShortcut"
        self.in_channels = check_int(in_channels, "in_channels", where)
        self.out_channels = check_int(out_channels, "out_channels", where)
        self.stride = check_int(stride, "stride", where)
        if self.out_channels < self.in_channels:
            raise ValueError(message(where, "out_channels >= in_channels (it appends zeros)",
                                     f"in_channels={in_channels}, out_channels={out_channels}",
                                     'Use shortcut="B" or "C" (a projection) to reduce channels.'))

    def forward(self, x):
        check_array(x, self._where, 4,
                    f"(N, {self.in_channels}, H, W)", {1: self.in_channels})
        s = self.stride
        sub = x[:, :, ::s, ::s]                                   # (N, C_in, H', W')
        N, C, H_out, W_out = sub.shape
        out = np.zeros((N, self.out_channels, H_out, W_out), dtype=x.dtype)
        out[:, :C] = sub
        self.cache = {"x_shape": x.shape}
        return out

    def backward(self, dout):
        x_shape = self._cached("x_shape")
        s = self.stride
        dx = np.zeros(x_shape, dtype=dout.dtype)
        dx[:, :, ::s, ::s] = dout[:, :self.in_channels]
        return dx

    def extra_repr(self):
        return f"{self.in_channels}, {self.out_channels}, stride={self.stride}"


class Projection(Sequential):
    """Options B and C: W_s a^[l] as a 1x1 convolution with stride, then BatchNorm.

    Children conv (Conv2d 1x1, no bias) and bn (BatchNorm2d); torchvision calls
    these downsample.0 and downsample.1.
    """

    def __init__(self, in_channels, out_channels, stride=1, rng=None):
        super().__init__({"conv": Conv2d(in_channels, out_channels, 1, stride=stride,
                                         bias=False, rng=rng),
                          "bn": BatchNorm2d(out_channels)})


def make_shortcut(kind, in_channels, out_channels, stride, where, rng=None):
    """The shortcut layer for `kind` in ("identity", "A", "B", "C", None), or None."""
    check_choice(kind, "shortcut", where, SHORTCUTS)
    changes_shape = stride != 1 or in_channels != out_channels
    if kind is None:
        return None
    if kind == "identity" and changes_shape:
        raise ValueError(message(
            where, "the same shape in and out for an identity shortcut",
            f"in_channels={in_channels}, out_channels={out_channels}, stride={stride}",
            'Use shortcut="A" (zero-pad, no parameters) or "B" (projection W_s) '
            "where the shape changes."))
    if kind == "C" or (kind == "B" and changes_shape):
        return Projection(in_channels, out_channels, stride, rng=rng)
    if kind == "A" and changes_shape:
        return ZeroPadShortcut(in_channels, out_channels, stride)
    return Identity()
