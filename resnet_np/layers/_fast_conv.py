"""The fast path of Conv2d: private, and not the code to read.

The code to read is the reference: im2col and col2im in resnet_np.layers.columns, and
the reference branch of Conv2d.forward/backward, which computes exactly the Math of the
Conv2d docstring (`with resnet_np.reference_kernels():` runs it). This module computes
the same numbers faster; tests/test_fast_conv.py and tests/test_conv.py assert that the
two agree (float64 to 1e-12, float32 to 1e-5) on every ResNet-20 convolution shape and
on fuzzed geometries.

How it is faster is described below; conv_forward and conv_backward are its two entry
points, called by Conv2d outside reference_kernels().
"""
import ctypes
import glob
import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor, wait

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .columns import output_size

# How it is faster ----------------------------------------------------------------------
# Conv2d does not call im2col on the whole batch: for a CIFAR batch of 128 the column
# matrix is ~75 MB, and copying it, scattering it back (col2im) and page-faulting it in
# cost as much as the matrix product itself. Four changes, each worth about 1.5x:
#
# 1. Chunks. The batch is processed a few examples at a time, so that a chunk's columns
#    (a few MB) stay in the CPU cache between the copy that builds them and the matrix
#    product that reads them.
# 2. Columns as contiguous shifts. For stride 1, flatten each padded image (Hp, Wp) into
#    one row of Hp * Wp numbers. Kernel offset (i, j) sees pixel (h + i, w + j), which
#    sits i * Wp + j places after pixel (h, w): so the column row for offset (i, j) is
#    the flattened image shifted by i * Wp + j, one contiguous slice. The catch: we then
#    compute every output row over the full padded width instead of W_out, and drop the
#    extra ("wide") columns at the end. Putting the examples of a chunk side by side in
#    each row, sharing their zero borders, makes the slices longer and the waste smaller
#    (_Geometry). For stride s, split the padded image into s * s phases, phase (a, b) =
#    xp[a::s, b::s]; offset (i, j) reads phase (i % s, j % s) shifted by (i // s, j // s),
#    again one contiguous slice. The offsets that read one phase form a grid (r, q) whose
#    shift is r * (row length) + q, so all their rows are one copy from a read-only view
#    with those two strides (one copy for stride 1 instead of kH * kW).
# 3. Reused buffers. The columns, the phases and the wide output live in scratch
#    buffers kept between calls (one set per thread); only temporaries live there.
#    Outputs, dx and dW are fresh arrays the caller can keep.
# 4. Threads. Chunks are spread over a thread pool, one chunk per core at a time, while
#    BLAS runs single-threaded: NumPy releases the GIL in matmul and in copies, so the
#    copies run in parallel too, not just the matrix products. Each thread takes its share
#    of the chunks in one task (the calling thread is one of them): a hand-off between
#    threads, and each NumPy call while the other thread holds the GIL, costs several
#    microseconds, so fewer tasks and fewer, larger NumPy calls per chunk pay.
#
# Backward rebuilds each chunk's columns from the cached input instead of keeping the
# 75 MB matrix alive between forward and backward: a cheap, in-cache copy. With stride 1
# it computes dx as a convolution of dout with the flipped kernel (conv_backward).

class _Geometry:
    """Sizes of the phase ("shifted columns") layout for one input shape.

    A chunk of n examples lives in a phase buffer xq of shape (C, S, Hq * n * B + tail):
    S = sH * sW phases; in each phase, row r holds row r of every example side by side,
    each example in a block of B columns, then `tail` zeros so the last shift stays inside.
    With stride 1, B = W + pW: the pW zeros that start a block are both the left padding
    of its example and the right padding of the example before it (a shared border, so
    fewer wide columns: 9 instead of 10 per 8-pixel row). With stride s, B = Wq =
    ceil((W + 2 pW) / s) and each example keeps its own padding. cols (C, kH * kW,
    H_out * n * B) and the wide output (C_out, H_out, n, B) keep the first W_out of B.
    """

    def __init__(self, x_shape, kernel_size, stride, padding):
        self.N, self.C, self.H, self.W = x_shape
        (self.kH, self.kW), (self.sH, self.sW), (self.pH, self.pW) = kernel_size, stride, padding
        self.H_out, self.W_out = output_size(x_shape, kernel_size, stride, padding)
        self.Hq = -(-(self.H + 2 * self.pH) // self.sH)     # ceil(Hp / sH)
        self.Wq = -(-(self.W + 2 * self.pW) // self.sW)
        shared = self.sW == 1 and self.pW < self.kW          # then B >= W_out
        self.B = self.W + self.pW if shared else self.Wq
        self.S = self.sH * self.sW
        self.tail = (self.kW - 1) // self.sW
        self.K = self.C * self.kH * self.kW
        self.L = self.H_out * self.B                         # wide pixels per example
        rows = [_phase_axis(a, self.sH, self.pH, self.H) for a in range(self.sH)]
        cols = [_phase_axis(b, self.sW, self.pW, self.W) for b in range(self.sW)]
        # for each phase: (index, phase rows, block columns, x rows, x columns) as slices
        self.phase_slices = [(a * self.sW + b, rq, cq, rx, cx) for a, (rq, rx) in
                             enumerate(rows) for b, (cq, cx) in enumerate(cols)]
        # the offsets (i, j) that read phase (a, b): i = a + sH r, j = b + sW q, a grid
        self.offset_grids = [(a * self.sW + b, a, b, len(range(a, self.kH, self.sH)),
                              len(range(b, self.kW, self.sW)))
                             for a in range(min(self.sH, self.kH))
                             for b in range(min(self.sW, self.kW))]
        self._shifts = {}

    def shifts(self, n):
        """For each offset (i, j): (phase index, shift inside the flattened phase)."""
        if n not in self._shifts:                            # chunks share n: compute once
            self._shifts[n] = [((i % self.sH) * self.sW + j % self.sW,
                                (i // self.sH) * n * self.B + j // self.sW)
                               for i in range(self.kH) for j in range(self.kW)]
        return self._shifts[n]


def _phase_axis(a, s, p, size):
    """Phase a along one axis holds padded positions a + s r; which r are real input?"""
    r0 = max(0, -(-(p - a) // s))                # first r with a + s r - p >= 0
    first = a + s * r0 - p                      # its position in x
    count = max(0, -(-(size - first) // s))     # positions first, first + s, ... < size
    return slice(r0, r0 + count), slice(first, first + s * count, s)


_local = threading.local()


def _scratch(name, shape, dtype):
    """A reusable per-thread buffer of `shape`; its contents are garbage."""
    size = math.prod(shape)
    buffers = _local.__dict__.setdefault("buffers", {})
    buf = buffers.get(name)
    if buf is None or buf.size < size or buf.dtype != dtype:
        buf = buffers[name] = np.empty(size, dtype=dtype)
    return buf[:size].reshape(shape)


def _phases(name, n, g, dtype):
    """A zeroed phase buffer (C, S, Hq*n*B + tail) and its (C, S, Hq, n, B) view."""
    xq = _scratch(name, (g.C, g.S, g.Hq * n * g.B + g.tail), dtype)
    xq[...] = 0
    return xq, xq[..., :g.Hq * n * g.B].reshape(g.C, g.S, g.Hq, n, g.B)


def _columns(x, g, dtype):
    """Shifted columns of a chunk x (n, C, H, W): a scratch array (C * kH * kW, n * L)."""
    n = x.shape[0]
    xq, xq5 = _phases("phases", n, g, dtype)                        # (C, S, Hq, n, B)
    for phase, rq, cq, rx, cx in g.phase_slices:
        xq5[:, phase, rq, :, cq] = x[:, :, rx, cx].transpose(1, 2, 0, 3)
    cols = _scratch("cols", (g.C, g.kH, g.kW, n * g.L), dtype)      # (C, kH, kW, H_out*n*B)
    for phase, a, b, rows, columns in g.offset_grids:
        # offsets (a + sH r, b + sW q) read phase (a, b) shifted by r * n * B + q: one
        # copy from an (overlapping, read-only) view with those two strides
        src = as_strided(xq[:, phase], shape=(g.C, rows, columns, n * g.L),
                         strides=(xq.strides[0], n * g.B * xq.itemsize, xq.itemsize, xq.itemsize),
                         writeable=False)
        cols[:, a::g.sH, b::g.sW] = src
    return cols.reshape(g.K, n * g.L)                                # (C*kH*kW, n*L)


def _add_columns_back(dcols, dx, g):
    """col2im on the shifted layout: dx (n, C, H, W) = sum of dcols over the windows."""
    n = dx.shape[0]
    dcols = dcols.reshape(g.C, g.kH * g.kW, n * g.L)                # (C, kH*kW, H_out*n*B)
    dxq, dxq5 = _phases("dphases", n, g, dcols.dtype)               # (C, S, Hq, n, B)
    for k, (phase, shift) in enumerate(g.shifts(n)):
        dxq[:, phase, shift:shift + n * g.L] += dcols[:, k]
    for phase, rq, cq, rx, cx in g.phase_slices:
        dx[:, :, rx, cx] = dxq5[:, phase, rq, :, cq].transpose(2, 0, 1, 3)


def _forward_chunk(x, out, W2, g):
    """out (n, C_out, H_out, W_out) = W2 @ columns of x, wide columns dropped."""
    n, C_out = x.shape[0], W2.shape[0]
    wide = _scratch("wide", (C_out, n * g.L), out.dtype)           # (C_out, H_out*n*B)
    cols = _columns(x, g, out.dtype)                               # (C*kH*kW, H_out*n*B)
    np.matmul(W2, cols, out=wide)
    wide = wide.reshape(C_out, g.H_out, n, g.B)[..., :g.W_out]      # drop the wide columns
    out[...] = wide.transpose(2, 0, 1, 3)
    return cols


def _backward_chunk_flipped(x, dout, dx, Wf2, g_back):
    """Stride 1: fill dx = conv(dout, flipped kernel); return dW from the same columns.

    cols[(o, i', j'), (y, n, z)] = dout padded by kH - 1 - pH at (y + i', z + j'), so
    x (C, H*n*B') @ cols^T gives, at (c, (o, i', j')), dW[o, c, kH-1-i', kW-1-j'].
    Returns that (C_out*kH*kW, C) matrix; conv_backward flips it back.
    """
    n, C, H, W = x.shape
    cols = _forward_chunk(dout, dx, Wf2, g_back)                    # (C_out*kH*kW, H*n*B')
    xwide = _scratch("xwide", (C, H, n, g_back.B), dx.dtype)        # (C, H, n, B')
    xwide[..., :W] = x.transpose(1, 2, 0, 3)
    xwide[..., W:] = 0                                               # wide columns
    return cols @ xwide.reshape(C, -1).T                             # (C_out*kH*kW, C)


def _backward_chunk(x, dout, dx, W2, g):
    """Any stride: fill dx by col2im for a chunk; return its dW2 (C_out, C*kH*kW)."""
    n, C_out = x.shape[0], W2.shape[0]
    dwide = _scratch("dwide", (C_out, g.H_out, n, g.B), dx.dtype)   # (C_out, H_out, n, B)
    dwide[..., :g.W_out] = dout.transpose(1, 2, 0, 3)
    dwide[..., g.W_out:] = 0                                         # wide columns: no gradient
    dwide = dwide.reshape(C_out, n * g.L)                            # (C_out, H_out*n*B)
    cols = _columns(x, g, dx.dtype)                                  # (C*kH*kW, H_out*n*B)
    dW2 = (cols @ dwide.T).T        # (C_out, C*kH*kW); in this order BLAS is ~1.8x faster
    np.matmul(W2.T, dwide, out=cols)                                 # dcols, reusing cols
    _add_columns_back(cols, dx, g)
    return dW2


def _l2_cache_bytes(default=2 << 20):
    """The per-core L2 cache size the CPU reports (Linux sysfs), else `default` (2 MB)."""
    for folder in sorted(glob.glob("/sys/devices/system/cpu/cpu0/cache/index*")):
        try:
            with open(os.path.join(folder, "level")) as f:
                level = f.read().strip()
            with open(os.path.join(folder, "size")) as f:
                size = f.read().strip()                    # "2048K", "1M", ...
            with open(os.path.join(folder, "type")) as f:
                kind = f.read().strip()
        except OSError:
            continue
        units = {"K": 1 << 10, "M": 1 << 20}
        if level == "2" and kind in ("Unified", "Data") and size[:-1].isdigit() and \
                size[-1] in units:
            return int(size[:-1]) * units[size[-1]]
    return default


# Target size of one chunk's column matrix: twice the L2 cache. Measured on a 2 MB-L2
# Xeon (ResNet-20 convs, fw+bw, batch 128): 2-8 MB within noise of each other, 4 MB best
# overall, 0.5-1 MB up to 1.7x slower on 32->32 and 64->64 (the products get too thin).
CHUNK_BYTES = 2 * _l2_cache_bytes()
FLIPPED_BACKWARD = True    # stride-1 backward as a convolution with the flipped kernel


def _chunks(g, itemsize, workers):
    """(start, stop) ranges of examples whose columns take about CHUNK_BYTES each,
    as many chunks as a multiple of `workers`, so that the workers finish together."""
    per_example = g.K * g.L * itemsize
    count = -(-g.N // max(1, CHUNK_BYTES // per_example))      # ceil: chunks needed
    count = -(-count // workers) * workers                     # round up to the workers
    n = -(-g.N // count)                                       # examples per chunk
    return [(start, min(start + n, g.N)) for start in range(0, g.N, n)]


def _run(task, g, itemsize):
    """Call task(start, stop) for every chunk, spread over the cores (see _parallel)."""
    return _parallel(lambda chunk: task(*chunk), _chunks(g, itemsize, _pool_size()))


def _parallel(task, items):
    """[task(item) for item in items] on the thread pool with BLAS held to one thread;
    one after another in the calling thread when _in_sequence says so."""
    if _in_sequence(len(items)):
        return [task(item) for item in items]
    previous = _blas.get()
    _blas.set(1)
    try:
        return _share(task, items, _pool_size())
    finally:
        _blas.set(previous)


def _in_sequence(count):
    """Whether `count` tasks run one after another, BLAS on its own threads: on one core,
    for one task, when OpenBLAS's thread count cannot be set, or inside a share of an
    outer _parallel (split_batch's), whose cores are busy already."""
    return _pool_size() == 1 or count <= 1 or _blas is None or _inside_share()


def _inside_share():
    """True in a thread that is running a share of _share's work."""
    return getattr(_local, "sharing", False)


def _share(task, items, workers):
    """[task(item) for item in items], as `workers` shares run at once: items[w::workers]
    in turn on worker w, the calling thread taking share 0 (the results come share by
    share). One hand-off per worker instead of one per item. Called again from inside a
    share, it runs everything in the calling thread (nested waits on a busy pool could
    deadlock)."""
    if _inside_share() or workers == 1 or len(items) == 1:
        return [task(item) for item in items]

    def run_share(share):
        _local.sharing = True
        try:
            return [task(item) for item in share]
        finally:
            _local.sharing = False

    shares = [items[w::workers] for w in range(workers)]
    futures = [_pool().submit(run_share, share) for share in shares[1:]]
    try:
        results = run_share(shares[0])
    finally:
        wait(futures)                   # no worker may still write when this returns
    for future in futures:
        results += future.result()
    return results


def batch_slices(N):
    """One slice of a batch of N examples per core (at most N), sizes within one."""
    workers = min(_pool_size(), N)
    bounds = np.linspace(0, N, workers + 1).astype(int)
    return [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:])]


def split_batch(forward, x):
    """forward(x) with the batch cut in one part per core, each part run through the
    whole of `forward` on its own thread (convolutions inside run single-threaded), the
    outputs concatenated. Only for a forward in which examples do not interact and that
    keeps no state: resnet_np.fuse's inference copies. Faster than splitting each layer
    (fewer hand-offs between threads, and the elementwise layers run on every core)."""
    if not isinstance(x, np.ndarray) or x.ndim == 0 or _in_sequence(len(x)):
        return forward(x)
    return np.concatenate(_parallel(forward, [x[part] for part in batch_slices(len(x))]))


def conv_forward(x, W2, kernel_size, stride, padding):
    """out (N, C_out, H_out, W_out) = W2 @ im2col(x), chunked and threaded.

    W2 is the weight flattened to (C_out, C * kH * kW) in the dtype of the result.
    """
    g = _Geometry(x.shape, kernel_size, stride, padding)
    out = np.empty((g.N, W2.shape[0], g.H_out, g.W_out), dtype=W2.dtype)

    def task(start, stop):
        _forward_chunk(x[start:stop], out[start:stop], W2, g)

    _run(task, g, W2.itemsize)
    return out


def _flipped_route(g, C_out):
    """Stride 1, padding < kernel, and C_out <= C_in (dout's columns are not the larger)."""
    return (FLIPPED_BACKWARD and C_out <= g.C and (g.sH, g.sW) == (1, 1)
            and g.pH < g.kH and g.pW < g.kW)


def conv_backward(x, dout, W2, kernel_size, stride, padding):
    """(dx, dW2): dx = col2im(W2^T @ dout), dW2 = dout @ im2col(x)^T, chunked and threaded.

    With stride 1 (and padding < kernel), dx is itself a convolution: of dout, padded by
    kH - 1 - pH, with the kernel flipped and C_in, C_out swapped. Its columns also give
    dW, so backward costs one column build and two products, and no col2im scatter.
    It pays when C_out <= C_in (about 1.2x on ResNet-20's 16->16 backward, single thread);
    with C_out > C_in (the 3->16 stem) the columns of dout would be larger than those of x.
    """
    g = _Geometry(x.shape, kernel_size, stride, padding)
    dx = np.empty((g.N, g.C, g.H, g.W), dtype=W2.dtype)
    C_out = W2.shape[0]
    if _flipped_route(g, C_out):
        W4 = W2.reshape(C_out, g.C, g.kH, g.kW)
        Wf2 = W4[:, :, ::-1, ::-1].transpose(1, 0, 2, 3).reshape(g.C, -1)  # (C, C_out*kH*kW)
        pad = (g.kH - 1 - g.pH, g.kW - 1 - g.pW)
        g_back = _Geometry(dout.shape, (g.kH, g.kW), (1, 1), pad)

        def task(start, stop):
            chunk = slice(start, stop)
            return _backward_chunk_flipped(x[chunk], dout[chunk], dx[chunk], Wf2, g_back)

        dWf = sum(_run(task, g_back, W2.itemsize))                     # (C_out*kH*kW, C)
        dW4 = dWf.reshape(C_out, g.kH, g.kW, g.C)[:, ::-1, ::-1].transpose(0, 3, 1, 2)
        return dx, dW4.reshape(C_out, -1)                              # (C_out, C*kH*kW)

    def task(start, stop):
        return _backward_chunk(x[start:stop], dout[start:stop], dx[start:stop], W2, g)

    return dx, sum(_run(task, g, W2.itemsize))


# -- threads: a pool of one worker per core, and OpenBLAS held to one thread meanwhile ---
class _OpenBLAS:
    """get()/set(n) for the number of OpenBLAS threads, found through ctypes."""

    PREFIXES = ("scipy_openblas_", "openblas_")
    SUFFIXES = ("64_", "")

    def __init__(self, lib):
        for prefix in self.PREFIXES:
            for suffix in self.SUFFIXES:
                get = getattr(lib, f"{prefix}get_num_threads{suffix}", None)
                set_ = getattr(lib, f"{prefix}set_num_threads{suffix}", None)
                if get is not None and set_ is not None:
                    get.restype, set_.restype = ctypes.c_int, None
                    set_.argtypes = [ctypes.c_int]
                    self.get, self.set = get, set_
                    return
        raise OSError("no openblas_get/set_num_threads in this library")


def _find_openblas():
    """The OpenBLAS NumPy uses: the copy bundled in NumPy's wheel, else one already
    loaded (Linux /proc/self/maps), else None: then chunks run one after another on
    BLAS's own threads."""
    root = os.path.dirname(os.path.dirname(np.__file__))
    paths = [path for folder in ("numpy.libs", os.path.join("numpy", ".dylibs"))
             for path in sorted(glob.glob(os.path.join(root, folder, "*openblas*")))]
    try:
        with open("/proc/self/maps") as maps:
            paths += [line.split()[-1] for line in maps if "openblas" in line.lower()]
    except OSError:
        pass
    for path in dict.fromkeys(paths):                  # unique, in order
        try:
            return _OpenBLAS(ctypes.CDLL(path))
        except OSError:
            continue
    return None


_blas = _find_openblas()
_executor, _executor_pid = None, None
_CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def _pool_size():
    """One worker per core this process may run on (at most 8)."""
    return max(1, min(_CORES or 1, 8))


def _pool():
    """The thread pool, created on first use and again in a forked child (which
    inherits the pool object but not its threads)."""
    global _executor, _executor_pid
    if _executor is None or _executor_pid != os.getpid():
        _executor = ThreadPoolExecutor(max_workers=_pool_size(), thread_name_prefix="conv")
        _executor_pid = os.getpid()
    return _executor
