"""The fast path of BatchNorm in training mode: private, and not the code to read.

The code to read is _BatchNorm.forward/backward in resnet_np.layers.batchnorm, which
computes the Math of its docstring in a few passes over memory with NumPy. NumPy runs
each pass on one core; this module computes the same numbers with the batch split in
parts that run on their own threads (NumPy releases the GIL inside its loops), adding
the per-channel partial sums of the parts. Two kinds of split:

- Cores: one BatchNorm call on a large batch (at least MIN_BYTES, outside
  reference_kernels()) cuts it in one slice per core on the convolution's thread pool;
- a replica's part (resnet_np.parallel.DataParallel): the batch was cut before the
  model ran, one replica of the model per core; each replica's BatchNorm holds its part
  and meets the others' partial sums (part.each), so the statistics are those of the
  whole batch.

tests/test_fast_batchnorm.py and tests/test_parallel.py assert both equal the readable
code (float64 to 1e-12, float32 to 1e-5).
"""
import threading

import numpy as np

from . import _kernels
from . import batchnorm          # for _rows; batchnorm imports this module, so no names here
from ._fast_conv import _pool_size, _share, batch_slices

# Below this size one thread is faster. Measured on 2 cores, BatchNorm training forward +
# backward at batch 128: (128, 16, 32*32) 8 MB 5.11 -> 3.30 ms, (128, 32, 16*16) 4 MB
# 2.61 -> 2.08 ms, (128, 64, 8*8) 2 MB 1.48 -> 2.02 ms (slower: the hand-offs dominate).
MIN_BYTES = 4 << 20

_local = threading.local()       # .part: the replica part this thread runs, if any


def workers():
    """The number of threads the batch is split over (the conv pool's)."""
    return _pool_size()


class Cores:
    """The batch of one BatchNorm call, cut in one slice per core (batch_slices)."""

    def __init__(self, N):
        self.batch_size = N                     # examples in the whole batch
        self.slices = batch_slices(N)

    def each(self, task):
        """[task(s) for every slice s of the batch], the slices on their own threads."""
        return _share(task, self.slices, len(self.slices))

    def run(self, task):
        """task(s) for every slice s, for its effect (nothing to add up: no meeting)."""
        self.each(task)

    def here(self, results):
        """The results of the parts this call holds: all of them."""
        return results


def split(*arrays):
    """How the batch of a training BatchNorm call on `arrays` is split over threads: the
    part of a data-parallel replica (always, in its thread), Cores (large inputs on one
    dtype, outside reference_kernels(), more than one core), or None: the readable code."""
    part = getattr(_local, "part", None)
    if part is not None:
        return part
    if (arrays[0].nbytes >= MIN_BYTES and not _kernels.REFERENCE
            and len({a.dtype for a in arrays}) == 1 and workers() > 1):
        return Cores(len(arrays[0]))
    return None


def normalise(x3, gamma, beta, eps, parts):
    """(out, x_centered, mean, var, inv_std) of a training forward on x3 (N, C, L), the
    statistics over the whole batch that `parts` (Cores or a replica part) splits."""
    L = x3.shape[2]
    M = parts.batch_size * L                                                       # per channel
    mean = sum(parts.each(lambda s: np.einsum("ncl->c", x3[s]))) / M               # (C,)
    x_centered, out = np.empty_like(x3), np.empty_like(x3)
    mean_rows = batchnorm._rows(mean.astype(x3.dtype, copy=False), L)

    def centre(s):                              # x - mean, and its squares summed
        np.subtract(x3[s], mean_rows, out=x_centered[s])
        return np.einsum("ncl,ncl->c", x_centered[s], x_centered[s])

    var = sum(parts.each(centre)) / M                                              # (C,)
    inv_std = (1.0 / np.sqrt(var + eps)).astype(x3.dtype)
    scale, shift = batchnorm._rows(gamma * inv_std, L), batchnorm._rows(beta, L)

    def affine(s):                              # gamma * xhat + beta
        np.multiply(x_centered[s], scale, out=out[s])
        out[s] += shift

    parts.run(affine)
    return out, x_centered, mean, var, inv_std


def backward(dout3, xc3, inv_std, gamma, parts):
    """(dx, dbeta, dgamma) of a training backward, as the readable backward computes them;
    dbeta and dgamma sum over the examples this call holds (a replica: its part)."""
    L = xc3.shape[2]
    M = parts.batch_size * L
    sums = parts.each(lambda s: (np.einsum("ncl->c", dout3[s]),
                                 np.einsum("ncl,ncl->c", dout3[s], xc3[s])))
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

    parts.run(dx_slice)
    here = parts.here(sums)                     # this call's share of the parameters' gradients
    return dx, sum(d for d, _ in here), sum(g for _, g in here) * inv_std
