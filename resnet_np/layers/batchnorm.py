"""Batch normalisation: y = gamma * (x - mean) / sqrt(var + eps) + beta, per channel.

BatchNorm1d (features, (N, D)) and BatchNorm2d (images, (N, C, H, W)) are one
layer. Both view their input as (N, C, L), with L = 1 for features and L = H*W for
images, and take every statistic over axes (0, 2): all the M = N*L values of one
channel. The only differences are the input layout they accept and the messages.
"""
import numpy as np

from .._checks import check_array, check_float, check_int, message
from . import _fast_batchnorm
from .base import Layer


def _rows(v, L):
    """Per-channel values (C,) as contiguous (C, L) rows, to broadcast over (N, C, L).

    Same result as v[:, None]; NumPy broadcasts a contiguous (C, L) operand over N
    about 1.5x faster than a (C, 1) one, and these are the hot loops of a ResNet.
    """
    return np.repeat(v, L).reshape(-1, L)


class _BatchNorm(Layer):
    """The shared implementation; subclasses set the layout they accept.

    Forward in training mode (M = N*L values per channel):

        mean = sum(x) / M          var = sum((x - mean)^2) / M      (biased)
        xhat = (x - mean) / sqrt(var + eps)
        y    = gamma * xhat + beta
        running_mean = (1 - momentum) * running_mean + momentum * mean
        running_var  = (1 - momentum) * running_var  + momentum * var * M / (M - 1)

    Backward in training mode (mean and var depend on every x of the channel):

        dbeta  = sum(dy)           dgamma = sum(dy * xhat)
        dx = gamma / sqrt(var + eps) * (dy - dbeta / M - xhat * dgamma / M)

    In eval mode mean and var are the running statistics, constants, so the layer is
    a per-channel affine map, computed as y = x * scale + shift with
    scale = gamma / sqrt(running_var + eps), shift = beta - running_mean * scale (two
    passes over x), and dx = dy * scale. An eval forward copies nothing for backward:
    its cache keeps a reference to x and the per-channel constants.

    Training inputs of 4 MB or more run the same passes with the batch split over the
    cores (the private resnet_np.layers._fast_batchnorm); so does each replica of a model
    that resnet_np.parallel.DataParallel runs on part of a batch, its statistics those of
    the whole batch. Under reference_kernels() the code below runs, and tests assert the
    two agree.
    """

    _ndim = None            # number of input dimensions
    _layout = ""            # the input shape for messages, e.g. "(N, {C}, H, W)"
    _other = ""             # the other BatchNorm and the layout it takes, for messages

    def __init__(self, num_features, momentum=0.1, eps=1e-5):
        super().__init__()
        name = type(self).__name__
        self.num_features = check_int(num_features, "num_features", name)
        self.momentum = check_float(momentum, "momentum", name)
        if self.momentum > 1:
            raise ValueError(message(name, "momentum in [0, 1]", f"momentum={momentum}",
                                     "PyTorch's default is 0.1."))
        self.eps = check_float(eps, "eps", name)
        C = self.num_features
        self.add_param("gamma", np.ones(C, dtype=np.float32))
        self.add_param("beta", np.zeros(C, dtype=np.float32))
        self.buffers["running_mean"] = np.zeros(C, dtype=np.float32)
        self.buffers["running_var"] = np.ones(C, dtype=np.float32)

    def forward(self, x):
        C = self.num_features
        check_array(x, self._where, self._ndim, self._layout.format(C=C), {1: C},
                    self._shape_fix)
        N = x.shape[0]
        x3 = x.reshape(N, C, -1)                               # (N, C, L): a view if contiguous
        L = x3.shape[2]
        gamma, beta = self.params["gamma"], self.params["beta"]
        if not self.training:          # running statistics: y = x * scale + shift, two passes
            mean, var = self.buffers["running_mean"], self.buffers["running_var"]
            inv_std = (1.0 / np.sqrt(var + self.eps)).astype(x.dtype)  # (C,)
            scale = gamma * inv_std                                    # (C,)
            shift = beta - mean * scale                                # (C,)
            out = x3 * _rows(scale.astype(x.dtype, copy=False), L)     # (N, C, L)
            out += _rows(shift.astype(x.dtype, copy=False), L)
            # nothing copied for backward: x itself (a reference) and the constants
            self.cache = {"x": x, "mean": mean.astype(x.dtype), "inv_std": inv_std,
                          "training": False}
            return out.reshape(x.shape)
        parts = _fast_batchnorm.split(x3, gamma)         # None: the whole batch is here
        M = (N if parts is None else parts.batch_size) * L     # values per channel in the batch
        if M < 2:
            raise ValueError(message(
                self._where, "more than 1 value per channel when training",
                f"x of shape {x.shape}", "Use a batch of at least 2 examples, or call "
                "eval() to use the running statistics."))
        if parts is not None:
            # the fast path: the same numbers, the batch split over threads
            out, x_centered, mean, var, inv_std = _fast_batchnorm.normalise(x3, gamma, beta,
                                                                            self.eps, parts)
        else:                                                  # the code to read
            mean = np.einsum("ncl->c", x3) / M                 # (C,), sums in one pass
            x_centered = x3 - _rows(mean, L)                   # (N, C, L)
            var = np.einsum("ncl,ncl->c", x_centered, x_centered) / M   # (C,), biased
            inv_std = (1.0 / np.sqrt(var + self.eps)).astype(x.dtype)  # (C,)
            # y = gamma * xhat + beta with xhat = x_centered * inv_std, never stored:
            out = x_centered * _rows(gamma * inv_std, L)       # (N, C, L)
            out += _rows(beta, L)
        # running = (1 - momentum) running + momentum batch statistic; var unbiased, as PyTorch
        for key, stat in (("running_mean", mean), ("running_var", var * (M / (M - 1)))):
            self.buffers[key] *= 1 - self.momentum
            self.buffers[key] += self.momentum * stat
        self.cache = {"x_centered": x_centered.reshape(x.shape), "inv_std": inv_std,
                      "training": True}
        return out.reshape(x.shape)

    def _shape_fix(self, x):
        """The hint of a wrong input shape (built only when the check fails)."""
        if x.ndim != self._ndim:
            return self._other
        return f"Set num_features to the number of channels of the previous layer ({x.shape[1]})."

    def backward(self, dout):
        inv_std, training = self._cached("inv_std", "training")
        N, C = dout.shape[:2]
        dout3 = dout.reshape(N, C, -1)                         # (N, C, L)
        L = dout3.shape[2]
        if training:
            xc3 = self.cache["x_centered"].reshape(N, C, L)
        else:                                                  # eval kept x, not x - mean
            xc3 = self.cache["x"].reshape(N, C, L) - _rows(self.cache["mean"], L)
        parts = _fast_batchnorm.split(dout3, xc3, self.params["gamma"]) if training else None
        if parts is not None:
            # the fast path: the same numbers, the batch split over threads
            dx, dbeta, dgamma = _fast_batchnorm.backward(dout3, xc3, inv_std,
                                                         self.params["gamma"], parts)
            self.grads["beta"], self.grads["gamma"] = dbeta, dgamma
            return dx.reshape(dout.shape)
        dbeta = np.einsum("ncl->c", dout3)                     # (C,)
        dgamma = np.einsum("ncl,ncl->c", dout3, xc3) * inv_std  # (C,), sum(dout * xhat)
        self.grads["beta"], self.grads["gamma"] = dbeta, dgamma
        k = self.params["gamma"] * inv_std                     # (C,): gamma / std
        if not training:                                       # statistics were constants
            return (dout3 * _rows(k, L)).reshape(dout.shape)
        M = N * L
        # dx = k * (dout - dbeta / M - xhat * dgamma / M), in one (N, C, L) buffer:
        dx = xc3 * _rows(inv_std * dgamma / M, L)              # xhat * dgamma / M
        dx += _rows(dbeta / M, L)
        np.subtract(dout3, dx, out=dx)
        dx *= _rows(k, L)
        return dx.reshape(dout.shape)

    def extra_repr(self):
        text = f"{self.num_features}"
        if self.momentum != 0.1:
            text += f", momentum={self.momentum}"
        if self.eps != 1e-5:
            text += f", eps={self.eps}"
        return text


class BatchNorm1d(_BatchNorm):
    """Normalise each feature over the batch: y = gamma * (x - mean) / sqrt(var + eps) + beta.

    Math
    ----
    For each feature c, over the N examples of the batch (M = N values):
    mean_c = sum_n x[n, c] / M,  var_c = sum_n (x[n, c] - mean_c)^2 / M  (biased),
    xhat = (x - mean) / sqrt(var + eps),  y = gamma * xhat + beta.
    Backward, training mode: dbeta = sum_n dy,  dgamma = sum_n dy * xhat,
    dx = gamma / sqrt(var + eps) * (dy - dbeta / M - xhat * dgamma / M).
    The two subtracted terms are the paths through mean and var: every example's
    output depends on every other example of the batch.
    Running statistics, exactly as PyTorch: running = (1 - momentum) * running +
    momentum * batch statistic, where the variance is the unbiased var * M / (M - 1).
    eval() uses running_mean and running_var instead of the batch statistics; then the
    layer is affine per feature and dx = dy * gamma / sqrt(running_var + eps).

    Parameters
    ----------
    num_features : int, D, the number of features (channels).
    momentum : float in [0, 1], default 0.1, weight of the new batch in the running stats.
    eps : float, default 1e-5, added to the variance before the square root.

    Attributes
    ----------
    params : "gamma" (ones), "beta" (zeros), both (D,)
    buffers : "running_mean" (zeros), "running_var" (ones), both (D,)
    cache : training: "x_centered" (N, D) = x - mean, "inv_std" (D,) = 1 / sqrt(var + eps),
        "training" (bool, the mode of the forward pass; backward follows it).
        xhat = x_centered * inv_std is not stored: that saves a pass over memory.
        eval: "x" (the input itself, not a copy), "mean", "inv_std", "training".

    Shape
    -----
    x: (N, D)  out: (N, D)  gamma, beta, running_mean, running_var: (D,)

    Example
    -------
    >>> bn = BatchNorm1d(2)
    >>> x = np.array([[1.0, 10.0], [3.0, 30.0]], dtype=np.float32)
    >>> np.round(bn(x), 4)                         # (x - mean) / std per column
    array([[-1., -1.],
           [ 1.,  1.]], dtype=float32)
    >>> np.round(bn.buffers["running_mean"], 4)      # 0.9 * 0 + 0.1 * mean
    array([0.2, 2. ], dtype=float32)
    >>> np.round(bn.buffers["running_var"], 4)       # 0.9 * 1 + 0.1 * unbiased var
    array([ 1.1, 20.9], dtype=float32)
    """

    _ndim = 2
    _layout = "(N, {C})"
    _other = "Use BatchNorm2d for images (N, C, H, W), or Flatten() them first."


class BatchNorm2d(_BatchNorm):
    """Normalise each channel over batch and pixels: y = gamma * (x - mean) / sqrt(var + eps) + beta.

    Math
    ----
    For each channel c, over all N*H*W values x[n, c, h, w] (M = N*H*W):
    mean_c = sum x / M,  var_c = sum (x - mean_c)^2 / M  (biased),
    xhat = (x - mean) / sqrt(var + eps),  y = gamma * xhat + beta.
    Backward, training mode: dbeta = sum dy,  dgamma = sum dy * xhat,
    dx = gamma / sqrt(var + eps) * (dy - dbeta / M - xhat * dgamma / M),
    every sum over (n, h, w) of the channel. Running statistics as PyTorch:
    running = (1 - momentum) * running + momentum * batch statistic, the variance
    unbiased (var * M / (M - 1)). eval() uses the running statistics; then
    dx = dy * gamma / sqrt(running_var + eps).

    After a convolution this layer plays the role of the conv's bias (beta), which is
    why convolutions followed by BatchNorm have bias=False.

    Parameters
    ----------
    num_features : int, C, the number of channels.
    momentum : float in [0, 1], default 0.1, weight of the new batch in the running stats.
    eps : float, default 1e-5, added to the variance before the square root.

    Attributes
    ----------
    params : "gamma" (ones), "beta" (zeros), both (C,)
    buffers : "running_mean" (zeros), "running_var" (ones), both (C,)
    cache : training: "x_centered" (N, C, H, W) = x - mean, "inv_std" (C,) = 1 / sqrt(var + eps),
        "training" (bool, the mode of the forward pass; backward follows it).
        xhat = x_centered * inv_std is not stored: that saves a pass over memory.
        eval: "x" (the input itself, not a copy), "mean", "inv_std", "training".

    Shape
    -----
    x: (N, C, H, W)  out: (N, C, H, W)  gamma, beta, running_mean, running_var: (C,)

    Example
    -------
    >>> bn = BatchNorm2d(3)
    >>> x = np.random.default_rng(0).normal(5.0, 2.0, size=(8, 3, 4, 4)).astype(np.float32)
    >>> out = bn(x)
    >>> out.shape, out.dtype
    ((8, 3, 4, 4), dtype('float32'))
    >>> np.round(out.mean(axis=(0, 2, 3)), 4) + 0.0, np.round(out.std(axis=(0, 2, 3)), 3)
    (array([0., 0., 0.], dtype=float32), array([1., 1., 1.], dtype=float32))
    >>> bn.backward(np.ones_like(out)).shape
    (8, 3, 4, 4)
    >>> bn
    BatchNorm2d(3)
    """

    _ndim = 4
    _layout = "(N, {C}, H, W)"
    _other = "Use BatchNorm1d for features (N, D)."
