"""The fast path of BatchNorm in training mode: private, and not the code to read.

The code to read is _BatchNorm.forward/backward in resnet_np.layers.batchnorm, which
computes the Math of its docstring in a few passes over memory with NumPy. NumPy runs
each pass on one core; this module computes the same numbers with the batch split in
one slice per core on the convolution's thread pool (NumPy releases the GIL inside
its loops), adding the per-channel partial sums of the slices. It is used for training
inputs of at least MIN_BYTES outside reference_kernels(); tests/test_fast_batchnorm.py
asserts it equals the readable code (float64 to 1e-12, float32 to 1e-5).
"""
import numpy as np

from . import batchnorm          # for _rows; batchnorm imports this module, so no names here
from ._fast_conv import _pool_size, _share, batch_slices

# Below this size one thread is faster. Measured on 2 cores, BatchNorm training forward +
# backward at batch 128: (128, 16, 32*32) 8 MB 5.11 -> 3.30 ms, (128, 32, 16*16) 4 MB
# 2.61 -> 2.08 ms, (128, 64, 8*8) 2 MB 1.48 -> 2.02 ms (slower: the hand-offs dominate).
MIN_BYTES = 4 << 20


def workers():
    """The number of threads the batch is split over (the conv pool's)."""
    return _pool_size()


def _each(task, slices):
    """task(s) for every slice, one slice per thread (the caller's among them)."""
    return _share(task, slices, len(slices))


def normalise(x3, gamma, beta, eps):
    """(out, x_centered, mean, var, inv_std) of a training forward on x3 (N, C, L)."""
    N, C, L = x3.shape
    M, slices = N * L, batch_slices(N)
    mean = sum(_each(lambda s: np.einsum("ncl->c", x3[s]), slices)) / M           # (C,)
    x_centered, out = np.empty_like(x3), np.empty_like(x3)
    mean_rows = batchnorm._rows(mean.astype(x3.dtype, copy=False), L)

    def centre(s):                              # x - mean, and its squares summed
        np.subtract(x3[s], mean_rows, out=x_centered[s])
        return np.einsum("ncl,ncl->c", x_centered[s], x_centered[s])

    var = sum(_each(centre, slices)) / M                                           # (C,)
    inv_std = (1.0 / np.sqrt(var + eps)).astype(x3.dtype)
    scale, shift = batchnorm._rows(gamma * inv_std, L), batchnorm._rows(beta, L)

    def affine(s):                              # gamma * xhat + beta
        np.multiply(x_centered[s], scale, out=out[s])
        out[s] += shift

    _each(affine, slices)
    return out, x_centered, mean, var, inv_std


def backward(dout3, xc3, inv_std, gamma):
    """(dx, dbeta, dgamma) of a training backward, as the readable backward computes them."""
    N, C, L = xc3.shape
    M, slices = N * L, batch_slices(N)
    sums = _each(lambda s: (np.einsum("ncl->c", dout3[s]),
                            np.einsum("ncl,ncl->c", dout3[s], xc3[s])), slices)
    dbeta = sum(d for d, _ in sums)                                                # (C,)
    dgamma = sum(g for _, g in sums) * inv_std                                     # (C,)
    dx = np.empty_like(xc3)
    r1 = batchnorm._rows(inv_std * dgamma / M, L)                                  # (C, L) rows
    r2, k = batchnorm._rows(dbeta / M, L), batchnorm._rows(gamma * inv_std, L)

    def dx_slice(s):                            # k * (dout - dbeta / M - xhat * dgamma / M)
        d = dx[s]
        np.multiply(xc3[s], r1, out=d)
        d += r2
        np.subtract(dout3[s], d, out=d)
        d *= k

    _each(dx_slice, slices)
    return dx, dbeta, dgamma
