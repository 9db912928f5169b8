"""Layers that move values around without arithmetic: Flatten, Upsample2d, Concat.

Their backward passes undo the movement: Flatten reshapes the gradient back,
Upsample2d sums the gradient of every copy of a pixel back into that pixel, and
Concat cuts the gradient back into one piece per input.
"""
import numpy as np

from .._checks import check_array, message, pair
from .base import Layer


class Flatten(Layer):
    """Keep the batch axis, flatten the rest: out = x.reshape(N, -1).

    Math
    ----
    out[n, k] = x[n, c, h, w] with k = (c*H + h)*W + w (C order, as torch.flatten).
    Backward: dx = dout.reshape(x.shape), the same values put back in place.

    Shape
    -----
    x: (N, d1, d2, ...)  out: (N, d1*d2*...)

    Example
    -------
    >>> flatten = Flatten()
    >>> flatten(np.zeros((2, 3, 4, 4))).shape
    (2, 48)
    >>> flatten.backward(np.zeros((2, 48))).shape
    (2, 3, 4, 4)
    """

    def forward(self, x):
        if not isinstance(x, np.ndarray) or x.ndim < 2:
            got = f"shape {x.shape}" if isinstance(x, np.ndarray) else type(x).__name__
            raise ValueError(message(f"{self!r}.forward", "an array of shape (N, ...) with "
                                     "at least 2 dimensions", got,
                                     "For a single example add a batch axis with x[None]."))
        self.cache = {"x_shape": x.shape}
        return x.reshape(x.shape[0], -1)                       # (N, d1*d2*...)

    def backward(self, dout):
        return dout.reshape(self._cached("x_shape"))


class Upsample2d(Layer):
    """Nearest-neighbour upsampling: out[n, c, h, w] = x[n, c, h // sH, w // sW].

    Math
    ----
    Every input pixel becomes an sH x sW block of copies of itself.
    Backward: a pixel fed every output of its block, so its gradient is the sum of
    the block: dx[n, c, h, w] = sum_(i < sH, j < sW) dout[n, c, h*sH + i, w*sW + j].

    Parameters
    ----------
    scale_factor : int or (sH, sW), default 2

    Shape
    -----
    x: (N, C, H, W)  out: (N, C, H*sH, W*sW)

    Example
    -------
    >>> up = Upsample2d()
    >>> up(np.array([[[[1.0, 2.0]]]]))
    array([[[[1., 1., 2., 2.],
             [1., 1., 2., 2.]]]])
    >>> up.backward(np.arange(8.0).reshape(1, 1, 2, 4))   # 0+1+4+5, 2+3+6+7
    array([[[[10., 18.]]]])
    """

    def __init__(self, scale_factor=2):
        super().__init__()
        self.scale_factor = pair(scale_factor, "scale_factor", "Upsample2d")

    def forward(self, x):
        check_array(x, self._where, 4, "(N, C, H, W)")
        N, C, H, W = x.shape
        sH, sW = self.scale_factor
        self.cache = {"x_shape": x.shape}
        blocks = np.broadcast_to(x[:, :, :, None, :, None], (N, C, H, sH, W, sW))
        return blocks.reshape(N, C, H * sH, W * sW)            # one copy

    def backward(self, dout):
        N, C, H, W = self._cached("x_shape")
        sH, sW = self.scale_factor
        return dout.reshape(N, C, H, sH, W, sW).sum(axis=(3, 5))   # (N, C, H, W)

    def extra_repr(self):
        sH, sW = self.scale_factor
        if (sH, sW) == (2, 2):
            return ""
        return f"scale_factor={sH if sH == sW else (sH, sW)}"


class Concat(Layer):
    """Stack inputs along the channel axis: out = [x_0, x_1, ...] along axis 1.

    Concat takes two or more inputs, so its interface differs from a one-input
    layer in the obvious way: ``forward(*xs)`` (and ``concat(x_0, x_1)``) returns
    one array, ``backward(dout)`` returns a tuple with one gradient per input, in
    the order the inputs were given. A U-Net uses it to join encoder features
    (the long skip) to the upsampled decoder features.

    Math
    ----
    out[:, 0:C_0] = x_0,  out[:, C_0:C_0+C_1] = x_1, ...
    Each output channel is a copy of exactly one input channel, so the gradient of
    input k is the slice of dout that came from it: dx_k = dout[:, C_0+...+C_(k-1) :
    C_0+...+C_k]. Nothing is summed: concatenation, unlike addition, keeps the two
    paths apart.

    Shape
    -----
    x_k: (N, C_k, H, W) (any trailing axes, equal across inputs)
    out: (N, C_0 + C_1 + ..., H, W)

    Example
    -------
    >>> concat = Concat()
    >>> out = concat(np.zeros((2, 3, 4, 4)), np.ones((2, 5, 4, 4)))
    >>> out.shape
    (2, 8, 4, 4)
    >>> dx_0, dx_1 = concat.backward(np.arange(8.0).reshape(1, 8, 1, 1) * np.ones((2, 8, 4, 4)))
    >>> dx_0.shape, dx_1.shape, float(dx_1[0, 0, 0, 0])
    ((2, 3, 4, 4), (2, 5, 4, 4), 3.0)
    """

    def _check_inputs(self, xs):
        if len(xs) < 2:
            raise ValueError(message(self._where, "two or more inputs, as concat(x_0, x_1)",
                                     f"{len(xs)} input", "Pass each array as its own argument."))
        for k, x in enumerate(xs):
            check_array(x, lambda k=k: f"{self._where()} input {k}",   # built only on failure
                        max(np.ndim(xs[0]), 2), "(N, C, ...) like input 0")
        other = [tuple(x.shape[:1] + x.shape[2:]) for x in xs]
        if any(o != other[0] for o in other):
            raise ValueError(message(self._where,
                                     "inputs that agree on every axis but the channels (1)",
                                     "shapes " + ", ".join(str(x.shape) for x in xs),
                                     "Upsample or crop one input so H and W match."))

    def forward(self, *xs):
        self._check_inputs(xs)
        self.cache = {"sizes": [x.shape[1] for x in xs]}
        return np.concatenate(xs, axis=1)                      # (N, C_0 + C_1 + ..., H, W)

    def backward(self, dout):
        sizes = self._cached("sizes")
        cuts = np.cumsum(sizes)[:-1]                           # channel where each piece ends
        return tuple(np.split(dout, cuts, axis=1))             # views of dout, one per input

    def __call__(self, *xs):
        return self.forward(*xs)
