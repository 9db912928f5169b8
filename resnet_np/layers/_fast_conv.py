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
import queue
import threading
from concurrent.futures import Future, wait

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .columns import output_size

# How it is faster ----------------------------------------------------------------------
# Conv2d does not call im2col on the whole batch: for a CIFAR batch of 128 the column
# matrix is ~75 MB, and copying it, scattering it back (col2im) and page-faulting it in
# cost as much as the matrix product itself. Five changes, each worth about 1.2-1.5x:
#
# 1. Chunks. The batch is processed a few examples at a time, so that a chunk's data
#    (a few MB) stays in the CPU cache between the copy that lays it out and the matrix
#    products that read it.
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
# 3. No column matrix where a sum of products will do. The product W2 @ cols is a sum
#    over the kernel offsets k of W_k @ (the input shifted by k), W_k = W[:, :, i, j] of
#    shape (C_out, C_in), and "the input shifted by k" is a slice of the phase buffer: a
#    matrix BLAS can read in place (its rows are channels, one phase row apart). So the
#    forward pass never builds the columns: kH * kW products, each adding into the same
#    output (BLAS's beta = 1, see _offset_products). Backward's dx is the mirror image: each
#    W_k^T @ dout adds into the shifted slice of a phase buffer (the first to reach each
#    phase writes it), which is col2im without the column matrix. dW = dout @ cols^T
#    reads built columns (one long product is faster there than nine), except for the
#    convolutions with few channels, whose nine products run from the phase buffer in
#    pieces that OpenBLAS's small-matrix kernels take (see SMALL_GEMM_MNK, _offset_dW).
# 4. Reused buffers. The columns, the phases and the wide output live in scratch
#    buffers kept between calls (one set per thread); only temporaries live there.
#    Outputs, dx and dW are fresh arrays the caller can keep.
# 5. Threads. Chunks are spread over a thread pool, one chunk per core at a time, while
#    BLAS runs single-threaded: NumPy releases the GIL in matmul and in copies, and
#    ctypes around the BLAS calls, so the copies run in parallel too, not just the matrix
#    products. Each thread takes its share of the chunks in one task (the calling thread
#    is one of them): a hand-off between threads, and each NumPy call while the other
#    thread holds the GIL, costs several microseconds, so fewer tasks and fewer, larger
#    NumPy calls per chunk pay. While a share runs, its thread is held on a core of its
#    own (see _cores_for): left to itself, Linux sometimes runs both on one core.
#
# Backward rebuilds each chunk's columns from the cached input instead of keeping the
# 75 MB matrix alive between forward and backward: a cheap, in-cache copy.

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


def _phases(name, n, g, dtype, first_writes=False):
    """A zeroed phase buffer (C, S, Hq*n*B + tail) and its (C, S, Hq, n, B) view. With
    first_writes (dx's offset products, where each phase's first window writes rather
    than adds: see _offset_products), zeros only beyond n*L in each phase, and in a phase
    no offset reads (a stride larger than the kernel)."""
    xq = _scratch(name, (g.C, g.S, g.Hq * n * g.B + g.tail), dtype)
    if first_writes:
        xq[:, :, n * g.L:] = 0
        written = {phase for phase, shift in g.shifts(n) if shift == 0}
        for phase in range(g.S):
            if phase not in written:
                xq[:, phase] = 0
    else:
        xq[...] = 0
    return xq, xq[..., :g.Hq * n * g.B].reshape(g.C, g.S, g.Hq, n, g.B)


def _columns(x, g, dtype):
    """Shifted columns of a chunk x (n, C, H, W): a scratch array (C * kH * kW, n * L)."""
    n = x.shape[0]
    xq = _phase_buffer(x, g, dtype)                                 # (C, S, Hq*n*B + tail)
    cols = _scratch("cols", (g.C, g.kH, g.kW, n * g.L), dtype)      # (C, kH, kW, H_out*n*B)
    for phase, a, b, rows, columns in g.offset_grids:
        cols[:, a::g.sH, b::g.sW] = _offset_windows(xq, phase, rows, columns, g, n)  # one copy
    return cols.reshape(g.K, n * g.L)                                # (C*kH*kW, n*L)


def _offset_windows(xq, phase, rows, columns, g, n):
    """The windows of the offsets (a + sH r, b + sW q) that read phase (a, b) of the phase
    buffer xq, for r < rows and q < columns, as one read-only view (C, rows, columns, n*L):
    window (r, q) is the phase shifted by r * n * B + q, so the view has those two strides
    (its windows overlap; nothing may write through it)."""
    item = xq.itemsize
    return as_strided(xq[:, phase], shape=(g.C, rows, columns, n * g.L),
                      strides=(xq.strides[0], n * g.B * item, item, item), writeable=False)


def _phase_buffer(x, g, dtype, name="phases"):
    """The zero-padded phase buffer of a chunk x (n, C, H, W): scratch (C, S, Hq*n*B + tail)."""
    n = x.shape[0]
    xq, xq5 = _phases(name, n, g, dtype)                            # (C, S, Hq, n, B)
    for phase, rq, cq, rx, cx in g.phase_slices:
        xq5[:, phase, rq, :, cq] = x[:, :, rx, cx].transpose(1, 2, 0, 3)
    return xq


def _offset_products(Wk, xq, dense, g, n, kind):
    """The products of a convolution, one per kernel offset k, straight from the phase
    buffer xq (C, S, Hq*n*B + tail), where window_k = xq[:, phase_k, shift_k:shift_k + n*L]
    is the chunk's input seen from offset k (a (C, n*L) matrix, rows a phase row apart):

        "forward":  dense (C_out, n*L) = sum over k of Wk[k] @ window_k
        "dx":       window_k (+)= Wk[k]^T @ dense, for every k

    "dx" thus adds each offset's gradient into the input positions it came from: col2im,
    without the column matrix. The first offset that reaches a phase, (i, j) = (a, b), has
    shift 0: it writes its window instead of adding to it, so xq needs zeros only beyond
    n*L in each phase (see _phases). Wk is (kH*kW, C_out, C), contiguous. (dW's products,
    dense @ window_k^T, are _offset_dW's.)

    The NumPy branch says it plainly. np.matmul cannot add into its output, so there
    each += writes a temporary and reads it back. BLAS's gemm can (C = A B + beta C with
    beta = 1), so when NumPy's OpenBLAS was found the same products go to its gemm through
    ctypes (which releases the GIL meanwhile), with the addresses of the windows worked
    out from xq's address and strides: looking up a view's address costs a few
    microseconds, as much as a fifth of a product of one chunk.
    """
    gemm = _blas.gemm.get(dense.dtype) if _blas is not None else None
    if gemm is None or xq.dtype != dense.dtype or Wk.dtype != dense.dtype:
        for k, (phase, shift) in enumerate(g.shifts(n)):
            window = xq[:, phase, shift:shift + n * g.L]
            if kind == "dx" and shift:
                window += Wk[k].T @ dense
            elif kind == "dx":
                np.matmul(Wk[k].T, dense, out=window)
            elif k == 0:
                np.matmul(Wk[k], window, out=dense)
            else:
                dense += Wk[k] @ window
        return
    item = dense.itemsize
    C_out, C = Wk.shape[1:]
    wk, x0, d0 = Wk.ctypes.data, xq.ctypes.data, dense.ctypes.data
    ldx, ldd = xq.strides[0] // item, dense.shape[1]           # row strides, in elements
    width = n * g.L
    for k, (phase, shift) in enumerate(g.shifts(n)):
        window = x0 + xq.strides[1] * phase + item * shift                 # window_k
        w = wk + Wk.strides[0] * k                                         # Wk[k]
        if kind == "dx":    # window_k (C, n*L) (+)= Wk[k]^T (C, C_out) @ dense (C_out, n*L)
            gemm(_ROW_MAJOR, _TRANS, _NO_TRANS, C, width, C_out, 1.0, w, C, d0, ldd,
                 1.0 if shift else 0.0, window, ldx)
        else:               # dense (C_out, n*L) (+)= Wk[k] (C_out, C) @ window_k (C, n*L)
            gemm(_ROW_MAJOR, _NO_TRANS, _NO_TRANS, C_out, width, C, 1.0, w, C, window, ldx,
                 1.0 if k else 0.0, d0, ldd)


# OpenBLAS multiplies a product with M * N * K <= 100^3 by its "small-matrix" kernels,
# which read the operands where they are, where larger products first copy ("pack") them
# into blocks. Thin products, with few channels, run faster cut into pieces of columns
# that the small kernels take. Cutting them into many calls costs GIL round trips with two
# threads (the forward's and dx's products in pieces were faster on one core alone, 16 ->
# 16 forward 5.1 -> 4.7 ms, and slower with two threads at once, fused ResNet-20
# inference 107 -> 118 ms best), so the pieces of a product go to BLAS in one batched
# np.matmul over a view (pieces, rows, columns) of the operands, one NumPy call: for dW
# by offsets (_offset_dW) and for the chunks that build their columns (_product_in_pieces,
# _product_over_pieces). Only on the cores whose kernels were measured (SkylakeX,
# OpenBLAS 0.3.31, and its successors); elsewhere whole products, as before.
SMALL_GEMM_MNK = 100 ** 3
SMALL_GEMM_CORES = ("SkylakeX", "Cooperlake", "SapphireRapids")

# The chunks that build their columns (few input channels: the stem) run their three
# products, W2 @ cols, W2^T @ dout and dout @ cols^T, in pieces of SMALL_GEMM_MNK // (M K)
# columns (the rest of the columns as one more product). One chunk of 16 examples, 32x32,
# one core, float32, whole -> pieces, ms: 3 -> 16 (pieces of 2,314 columns) forward 0.182
# -> 0.148, W2^T @ dout 0.321 -> 0.128, dW 0.313 -> 0.208; 3 -> 32 (1,157) 0.429 -> 0.372,
# 0.468 -> 0.289, 0.485 -> 0.359; 1 -> 128 (868) 0.811 -> 0.630, 1.039 -> 0.760, 1.557 ->
# 0.537; but 3 -> 64 (578) dW 0.927 -> 0.952 and 7 -> 32 (496) forward 0.623 -> 0.638, dW
# 0.784 -> 1.181: thinner pieces do not pay. float64 alike.
MIN_PIECE_COLUMNS = 800

# dW by offsets: dW_k = dout @ window_k^T, a (C_out x C) result for each offset summed
# over all the columns of a chunk, read from the phase buffer (no column matrix), in
# pieces of DW_PIECE_COLUMNS columns: a piece of dout and of its nine windows then stays
# in the cache while the nine products read it. One chunk on one core, float32, ms,
# columns built + one product -> by offsets in pieces of 128 / 256 / 500: 16 -> 16 (22
# images) 2.44 -> 1.64 / 1.31-1.44 / 1.40; 32 -> 32 (40 images) 3.11 -> 1.87 / 1.79 /
# 1.89; but 64 -> 64 (22 images) 0.98 -> 1.25 / 1.15 / 1.12. Whole backward at batch 128,
# both cores, 30 alternating rounds, columns -> offsets, best (median) ms: 16 -> 16 15.42
# (19.01) -> 11.41 (14.28), 32 -> 32 10.32 (13.01) -> 10.08 (12.15); with stride 2 (four
# phases, four smaller batches of products) 16 -> 32 9.60 (11.03) -> 9.69 (11.94), 32 ->
# 64 7.70 (8.89) -> 7.72 (11.68). So: by offsets for stride 1 and C_out * C up to
# DW_BY_OFFSETS_WEIGHTS.
DW_PIECE_COLUMNS = 256
DW_BY_OFFSETS_WEIGHTS = 32 * 32


def _small_kernels():
    """Whether NumPy's OpenBLAS was found and its small-matrix kernels were measured."""
    return _blas is not None and _blas.small_gemm


def _piece_columns(M, K):
    """Columns per piece of a product of an (M x K) factor with columns that OpenBLAS's
    small kernels take, at least MIN_PIECE_COLUMNS, or None: whole."""
    if not _small_kernels():
        return None
    columns = SMALL_GEMM_MNK // (M * K)
    return columns if columns >= MIN_PIECE_COLUMNS else None


def _column_pieces(a, columns):
    """a (..., rows, width) -> (its first count * columns columns as a view (..., count,
    rows, columns), piece i = a[..., i*columns:(i+1)*columns]; the rest of the columns)."""
    count = a.shape[-1] // columns
    split = count * columns
    pieces = a[..., :split].reshape(*a.shape[:-1], count, columns)
    return np.moveaxis(pieces, -2, -3), a[..., split:]


def _product_in_pieces(left, right, out):
    """out (M, width) = left (M, K) @ right (K, width), in pieces of the columns where the
    small kernels take them (see MIN_PIECE_COLUMNS), else as one product."""
    columns = _piece_columns(*left.shape)
    if columns is None or right.shape[1] < 2 * columns:
        return np.matmul(left, right, out=out)
    (right_pieces, right_rest), (out_pieces, out_rest) = (_column_pieces(right, columns),
                                                          _column_pieces(out, columns))
    np.matmul(left, right_pieces, out=out_pieces)
    np.matmul(left, right_rest, out=out_rest)
    return out


def _product_over_pieces(left, right):
    """left (M, width) @ right (K, width)^T, summed over pieces of the columns where the
    small kernels take them, else as one product (in the order BLAS runs ~1.8x faster)."""
    columns = _piece_columns(left.shape[0], right.shape[0])
    if columns is None or left.shape[1] < 2 * columns:
        return (right @ left.T).T
    return _summed_over_pieces(left, right, columns)


def _summed_over_pieces(left, right, columns):
    """left (M, width) @ right (..., K, width)^T -> (..., M, K), as the sum of the pieces'
    products (one batched np.matmul, into a reused buffer: a fresh one of a MB or two
    would be page-faulted in at every chunk) and the rest's."""
    (left_pieces, left_rest), (right_pieces, right_rest) = (_column_pieces(left, columns),
                                                            _column_pieces(right, columns))
    right_pieces = np.swapaxes(right_pieces, -1, -2)                 # (..., count, piece, K)
    products = _scratch("pieces", right_pieces.shape[:-2] + (left.shape[0], right.shape[-2]),
                        np.result_type(left, right))                 # (..., count, M, K)
    np.matmul(left_pieces, right_pieces, out=products)
    return products.sum(axis=-3) + np.matmul(left_rest, np.swapaxes(right_rest, -1, -2))


def _dW_by_offsets(g, C_out):
    """Whether backward's dW runs one product per offset from the phase buffer, in pieces
    (no column matrix; see DW_BY_OFFSETS_WEIGHTS), rather than one over the built columns."""
    return (_by_offsets(g) and g.S == 1 and _small_kernels()
            and C_out * g.C <= DW_BY_OFFSETS_WEIGHTS)


def _offset_dW(dense, xq, g, n):
    """dWk (kH*kW, C_out, C), dWk[k] = dense (C_out, n*L) @ window_k^T for every kernel
    offset k = (i, j): the gradient of W[:, :, i, j], read from the phase buffer xq.

    The offsets that read one phase form a grid, and their windows one view (see
    _offset_windows); cut into pieces of DW_PIECE_COLUMNS columns, all the products of a
    phase are one batched np.matmul, summed over the pieces (_summed_over_pieces).
    """
    C_out = dense.shape[0]
    dWk = np.empty((g.kH, g.kW, C_out, g.C), dtype=dense.dtype)
    for phase, a, b, rows, columns in g.offset_grids:
        windows = _offset_windows(xq, phase, rows, columns, g, n).transpose(1, 2, 0, 3)
        dWk[a::g.sH, b::g.sW] = _summed_over_pieces(dense, windows, DW_PIECE_COLUMNS)
    return dWk.reshape(g.kH * g.kW, C_out, g.C)


def _forward_chunk(x, out, W, g):
    """out (n, C_out, H_out, W_out) = W2 @ columns of x, wide columns dropped: as a sum of
    one product per kernel offset, or with few input channels as one product over the
    built columns (see _by_offsets)."""
    n, C_out = x.shape[0], W.C_out
    wide = _scratch("wide", (C_out, n * g.L), out.dtype)           # (C_out, H_out*n*B)
    if _by_offsets(g):
        xq = _phase_buffer(x, g, out.dtype)                         # (C, S, Hq*n*B + tail)
        _offset_products(W.Wk, xq, wide, g, n, "forward")          # wide = sum W_k @ x_k
    else:
        _product_in_pieces(W.W2, _columns(x, g, out.dtype), wide)   # wide = W2 @ cols
    _wide_to_nchw(wide, out, g)


def _wide_to_nchw(wide, out, g):
    """out (n, C_out, H_out, W_out) = the wide product (C_out, H_out*n*B), wide columns dropped."""
    n, C_out = out.shape[:2]
    wide = wide.reshape(C_out, g.H_out, n, g.B)[..., :g.W_out]      # drop the wide columns
    out[...] = wide.transpose(2, 0, 1, 3)


def _backward_chunk(x, dout, dx, W, g):
    """Fill dx for a chunk; return its dW2 (C_out, C*kH*kW) = dout @ cols^T. dx is col2im
    of W2^T @ dout: by products adding into the phase buffer, or with few input channels
    by adding the columns of W2^T @ dout back (see _by_offsets)."""
    n, C_out = x.shape[0], W.C_out
    dwide = _scratch("dwide", (C_out, g.H_out, n, g.B), dx.dtype)   # (C_out, H_out, n, B)
    dwide[..., :g.W_out] = dout.transpose(1, 2, 0, 3)
    dwide[..., g.W_out:] = 0                                         # wide columns: no gradient
    dwide = dwide.reshape(C_out, n * g.L)                            # (C_out, H_out*n*B)
    if _dW_by_offsets(g, C_out):    # dW_k = dout @ x_k^T, x_k read in the phase buffer
        dWk = _offset_dW(dwide, _phase_buffer(x, g, dx.dtype), g, n)  # dWk[k] = dW[:, :, i, j]
        dW2 = dWk.transpose(1, 2, 0).reshape(C_out, g.K)            # (C_out, C*kH*kW)
    else:
        cols = _columns(x, g, dx.dtype)                              # (C*kH*kW, H_out*n*B)
        dW2 = _product_over_pieces(dwide, cols)                    # (C_out, C*kH*kW)
    dxq, dxq5 = _phases("dphases", n, g, dx.dtype, first_writes=_by_offsets(g))
    if _by_offsets(g):
        _offset_products(W.Wk, dxq, dwide, g, n, "dx")              # dx_k += W_k^T @ dout
    else:
        _product_in_pieces(W.W2.T, dwide, cols)                     # dcols, reusing cols
        dcols = cols.reshape(g.C, g.kH * g.kW, n * g.L)             # (C, kH*kW, H_out*n*B)
        for k, (phase, shift) in enumerate(g.shifts(n)):
            dxq[:, phase, shift:shift + n * g.L] += dcols[:, k]
    for phase, rq, cq, rx, cx in g.phase_slices:
        dx[:, :, rx, cx] = dxq5[:, phase, rq, :, cq].transpose(2, 0, 1, 3)
    return dW2


def _pair_chunk(x, out, first, second):
    """out = conv_2(conv_1(x)) for a chunk, conv_1's output kept in the cache: each conv_i
    is (W, b, g, relu), computing max(W2 @ cols + b, 0) if relu else W2 @ cols + b."""
    (W1, b1, g1, relu1), (W2, b2, g2, relu2) = first, second
    n, dtype = x.shape[0], out.dtype
    wide = _scratch("wide", (W1.C_out, n * g1.L), dtype)           # (C_mid, H_mid*n*B)
    _offset_products(W1.Wk, _phase_buffer(x, g1, dtype), wide, g1, n, "forward")
    _add_bias(wide, b1, relu1)
    xq = _phases_from_wide(wide, g2, n)                             # conv_2's input, padded
    wide2 = _scratch("wide2", (W2.C_out, n * g2.L), dtype)         # (C_out, H_out*n*B)
    _offset_products(W2.Wk, xq, wide2, g2, n, "forward")
    _add_bias(wide2, b2, relu2)
    _wide_to_nchw(wide2, out, g2)


def _add_bias(wide, b, relu):
    """wide (C, ...) += b per channel, then max(., 0) if relu, in place."""
    wide += b[:, None]
    if relu:
        np.maximum(wide, 0, out=wide)


def _phases_from_wide(wide, g, n):
    """The phase buffer of a stride-1 convolution of geometry g, filled from the previous
    convolution's wide output (C, H*n*B) with the same block width B. Row h, column w of
    an example there is row h + pH, column w + pW here: the same order, so one copy at an
    offset. The wide columns w >= W land on padding and are zeroed again."""
    xq = _scratch("phases2", (g.C, 1, g.Hq * n * g.B + g.tail), wide.dtype)
    start, stop = g.pH * n * g.B + g.pW, g.pH * n * g.B + g.pW + wide.shape[1]
    xq[:, 0, :start] = 0                                             # top rows
    xq[:, 0, start:stop] = wide
    xq[:, 0, stop:] = 0                                              # bottom rows, tail
    blocks = xq[:, 0, :g.Hq * n * g.B].reshape(g.C, g.Hq, n, g.B)
    blocks[..., :g.pW] = 0                                           # left padding
    blocks[..., g.pW + g.W:] = 0                                     # right padding, if any
    return xq


# Below this many input channels a convolution builds its columns and runs one product,
# since one product per kernel offset would have K = C. Measured (batch 128, 32x32, both
# cores, fw / bw ms, columns against offsets): 3->16 3.3 / 6.8 against 4.9 / 12.9; 4->16
# 3.4 / 6.5 against 3.8 / 8.9; 8->8 4.5 / 8.8 against 3.6 / 8.0; 16->16 10.0 / 19.3
# against 8.5 / 17.1.
MIN_CHANNELS_BY_OFFSETS = 8


def _by_offsets(g):
    """Whether a convolution of geometry g runs one product per kernel offset."""
    return g.C >= MIN_CHANNELS_BY_OFFSETS


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


# Target size of one chunk's data: twice the L2 cache. Measured on a 2 MB-L2 Xeon
# (ResNet-20 convs, batch 128), when a chunk's data were its columns: 2-8 MB within noise
# of each other, 4 MB best overall, 0.5-1 MB up to 1.7x slower on 32->32 and 64->64 (the
# products get too thin). The forward by offsets holds no columns; counting its phase
# buffer and output against the same 4 MB (chunks 4.5x larger) made fused ResNet-20
# inference 10 % faster (best of 4 alternating runs: 100-122 -> 90-101 ms per batch).
CHUNK_BYTES = 2 * _l2_cache_bytes()


def _bytes_per_example(g, C_out, itemsize, columns):
    """What one example adds to a chunk's data: its columns (K * L numbers) if the chunk
    builds them, else its share of the phase buffer and of the wide output."""
    if columns:
        return g.K * g.L * itemsize
    return (g.C * g.S * g.Hq * g.B + C_out * g.L) * itemsize


def _chunks(g, per_example, workers):
    """(start, stop) ranges of examples whose data take about CHUNK_BYTES each (an example
    taking `per_example` bytes), as many chunks as a multiple of `workers`, so that the
    workers finish together."""
    count = -(-g.N // max(1, CHUNK_BYTES // per_example))      # ceil: chunks needed
    count = -(-count // workers) * workers                     # round up to the workers
    n = -(-g.N // count)                                       # examples per chunk
    return [(start, min(start + n, g.N)) for start in range(0, g.N, n)]


def _run(task, g, per_example):
    """Call task(start, stop) for every chunk, spread over the cores (see _parallel)."""
    # chunks that will run one after another (inside a share of split_batch, say) need
    # not come in a multiple of the cores: fewer, larger chunks then
    workers = 1 if _in_sequence(_pool_size()) else _pool_size()
    return _parallel(lambda chunk: task(*chunk), _chunks(g, per_example, workers))


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
    share), each under the caller's np.errstate and on a core of its own (_cores_for). One
    hand-off per worker instead of one per item. Called again from inside a share, it runs
    everything in the calling thread (nested waits on a busy pool could deadlock)."""
    if _inside_share() or workers == 1 or len(items) == 1:
        return [task(item) for item in items]

    errors = np.geterr()                # the caller's np.errstate: NumPy keeps it per thread

    def run_share(share):
        _local.sharing = True
        try:
            with np.errstate(**errors):
                return [task(item) for item in share]
        finally:
            _local.sharing = False

    shares = [items[w::workers] for w in range(workers)]
    cores = _cores_for(workers)         # the caller's core, then one other per worker
    futures = []
    for worker, core, share in zip(_pool(workers - 1), cores[1:], shares[1:]):
        held = _hold(worker.thread.native_id, core)     # before it wakes: see below
        futures.append(worker.submit(_then_release, None if held is None else worker.home,
                                     run_share, share))
    try:
        results = _then_release(_hold(0, cores[0]), run_share, shares[0])
    finally:
        wait(futures)                   # no worker may still write when this returns
    for future in futures:
        results += future.result()
    return results


# Where the threads run. Linux picks the core a woken thread runs on, and after an idle
# pause it sometimes wakes the pool's worker on the core of the thread that woke it: the
# two shares then take turns on one core until the scheduler moves one, milliseconds
# later. Seen after a PyTorch call and 100 ms idle (the order of a benchmark), in 14 and
# 15 of 15 backward passes of a 32 -> 32 convolution, batch 128 (the threads' cores read
# at each chunk), which then took 17-23 ms instead of 11-14; with no PyTorch, in 2 of 15.
# So each share holds its thread on one core of its own while it runs: the caller on the
# core it is on, each worker on another; the threads' own sets of cores come back after.
# A worker is held before it is woken: held only once it ran, it was often woken on the
# caller's core, busy with share 0, and waited there for its turn, one time slice, before
# it could move. Seen in most forward passes of a 64 -> 64 convolution (batch 128) after
# 20 ms idle: the worker's share started 2.8-2.9 ms after the call (median of 40; 0.4 ms
# when held first), and the pass took 7.3 ms (median) instead of 4.8-5.5.
# Only when the shares take every core the process may use (as the pool does on up to 8
# cores): with cores to spare, two processes would hold their workers on the same few.
_libc = ctypes.CDLL(None) if os.name == "posix" else None
_sched_getcpu = getattr(_libc, "sched_getcpu", None)
if _sched_getcpu is not None:
    _sched_getcpu.restype, _sched_getcpu.argtypes = ctypes.c_int, []


def _cores_for(workers):
    """One core per share, the caller's first, or [None] * workers (the threads run where
    the operating system puts them) where not every allowed core gets a share, or cores
    cannot be chosen (not Linux)."""
    if _sched_getcpu is None or not hasattr(os, "sched_setaffinity"):
        return [None] * workers
    here, allowed = _sched_getcpu(), os.sched_getaffinity(0)
    if here not in allowed or len(allowed) != workers:
        return [None] * workers
    return [here] + sorted(allowed - {here})


def _hold(thread, core):
    """Hold a thread (its native id; 0: the calling thread) on `core`. Return the set of
    cores it was allowed before, or None where it was not held (no core chosen, or one
    the system refuses)."""
    if core is None:
        return None
    try:
        allowed = os.sched_getaffinity(thread)
        os.sched_setaffinity(thread, {core})
    except OSError:                     # the core went away since _cores_for looked
        return None
    return allowed


def _then_release(allowed, fn, *args):
    """fn(*args), then the calling thread allowed the cores `allowed` again (None: it
    was not held)."""
    try:
        return fn(*args)
    finally:
        if allowed is not None:
            os.sched_setaffinity(0, allowed)


def batch_slices(N):
    """One slice of a batch of N examples per core (at most N), sizes within one."""
    workers = min(_pool_size(), N)
    # Python ints, not np.int64: a size computed from them divides float32 sums, and NumPy
    # would promote float32 / np.int64 to float64 (BatchNorm's statistics in DataParallel)
    bounds = np.linspace(0, N, workers + 1).astype(int).tolist()
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


class _Weights:
    """The weight in the two layouts the chunks use: W2 (C_out, C*kH*kW), one product
    over the columns; Wk (kH*kW, C_out, C), Wk[i*kW + j] = W[:, :, i, j], one product per
    kernel offset (made only where used)."""

    def __init__(self, W2, g):
        self.W2, self.C_out = W2, W2.shape[0]
        self.Wk = (np.ascontiguousarray(W2.reshape(self.C_out, g.C, -1).transpose(2, 0, 1))
                   if _by_offsets(g) else None)


def conv_forward(x, W2, kernel_size, stride, padding):
    """out (N, C_out, H_out, W_out) = W2 @ im2col(x), chunked and threaded.

    W2 is the weight flattened to (C_out, C * kH * kW) in the dtype of the result.
    """
    g = _Geometry(x.shape, kernel_size, stride, padding)
    W = _Weights(W2, g)
    out = np.empty((g.N, W.C_out, g.H_out, g.W_out), dtype=W2.dtype)

    def task(start, stop):
        _forward_chunk(x[start:stop], out[start:stop], W, g)

    _run(task, g, _bytes_per_example(g, W.C_out, W2.itemsize, columns=not _by_offsets(g)))
    return out


def conv_backward(x, dout, W2, kernel_size, stride, padding):
    """(dx, dW2): dx = col2im(W2^T @ dout), dW2 = dout @ im2col(x)^T, chunked and threaded."""
    g = _Geometry(x.shape, kernel_size, stride, padding)
    W = _Weights(W2, g)
    dx = np.empty((g.N, g.C, g.H, g.W), dtype=W2.dtype)

    def task(start, stop):
        return _backward_chunk(x[start:stop], dout[start:stop], dx[start:stop], W, g)

    columns = not _dW_by_offsets(g, W.C_out)
    return dx, sum(_run(task, g, _bytes_per_example(g, W.C_out, W2.itemsize, columns)))


def conv_pair_forward(x, first, second):
    """conv_2(conv_1(x)) in one pass over the chunks, or None where the pair does not fit.

    Each conv_i is (W2, b, (kernel_size, stride, padding), relu) and computes
    max(W2 @ im2col(.) + b, 0) if relu, else W2 @ im2col(.) + b; W2 and b in the dtype of
    the result. conv_1's output never goes back to NCHW: each chunk's output, still in the
    cache, is copied into conv_2's phase buffer (resnet_np.fuse's blocks, at inference).
    It fits when both run one product per kernel offset and conv_2 has stride 1 and the
    block width of conv_1's output; else the caller runs the two convolutions in turn.
    """
    (W2a, ba, window_a, relu_a), (W2b, bb, window_b, relu_b) = first, second
    g1 = _Geometry(x.shape, *window_a)
    g2 = _Geometry((g1.N, W2a.shape[0], g1.H_out, g1.W_out), *window_b)
    if not (_by_offsets(g1) and _by_offsets(g2) and g2.S == 1 and g2.B == g1.B
            and g2.H_out > 0 and g2.W_out > 0):
        return None
    W1, W2 = _Weights(W2a, g1), _Weights(W2b, g2)
    out = np.empty((g1.N, W2.C_out, g2.H_out, g2.W_out), dtype=W2b.dtype)
    per_example = (_bytes_per_example(g1, W1.C_out, W2b.itemsize, columns=False) +
                   _bytes_per_example(g2, W2.C_out, W2b.itemsize, columns=False))

    def task(start, stop):
        _pair_chunk(x[start:stop], out[start:stop], (W1, ba, g1, relu_a), (W2, bb, g2, relu_b))

    _run(task, g1, per_example)
    return out


# -- OpenBLAS through ctypes: its thread count, and gemm for what np.matmul cannot say ---
class _OpenBLAS:
    """get()/set(n) for the number of OpenBLAS threads; gemm, a dict from dtype to
    cblas_sgemm / cblas_dgemm (empty if this library does not export them); small_gemm,
    whether its kernels are ones measured to run small products faster unpacked."""

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
                    self.gemm = self._find_gemm(lib, prefix, suffix)
                    self.small_gemm = self._core(lib, prefix, suffix) in SMALL_GEMM_CORES
                    return
        raise OSError("no openblas_get/set_num_threads in this library")

    @staticmethod
    def _core(lib, prefix, suffix):
        """The name of the CPU kernels OpenBLAS chose ("SkylakeX", "Haswell", ...), or ""."""
        corename = getattr(lib, f"{prefix}get_corename{suffix}", None)
        if corename is None:
            return ""
        corename.restype = ctypes.c_char_p
        return (corename() or b"").decode("ascii", "replace")

    @staticmethod
    def _find_gemm(lib, prefix, suffix):
        """cblas_?gemm(order, transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc)
        with BLAS's integer width: 64 bits in NumPy's scipy_openblas64_, else as built."""
        config = getattr(lib, f"{prefix}get_config{suffix}", None)
        if config is not None:
            config.restype = ctypes.c_char_p
        wide_ints = suffix == "64_" or (config is not None and b"USE64BITINT" in config())
        blasint = ctypes.c_int64 if wide_ints else ctypes.c_int
        cblas = prefix.replace("openblas_", "") + "cblas_"            # scipy_cblas_, cblas_
        gemm = {}
        for dtype, letter, real in ((np.dtype(np.float32), "s", ctypes.c_float),
                                    (np.dtype(np.float64), "d", ctypes.c_double)):
            fn = getattr(lib, f"{cblas}{letter}gemm{suffix}", None)
            if fn is not None:
                fn.restype = None
                fn.argtypes = ([ctypes.c_int] * 3 + [blasint] * 3 + [real, ctypes.c_void_p,
                               blasint, ctypes.c_void_p, blasint, real, ctypes.c_void_p, blasint])
                gemm[dtype] = fn
        return gemm


_ROW_MAJOR, _NO_TRANS, _TRANS = 101, 111, 112          # CBLAS's enum values


def _find_openblas():
    """The OpenBLAS NumPy uses: the copy bundled in NumPy's wheel, else one already
    loaded (Linux /proc/self/maps), else None: then chunks run one after another on
    BLAS's own threads, and products through np.matmul."""
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


def _gemm_agrees_with_numpy():
    """Check each ctypes gemm found on a small case like the convolution's (a transposed
    operand, a row stride longer than the row, beta = 1) against NumPy; drop a gemm that
    disagrees (an unexpected integer width, say), so that NumPy computes instead."""
    rng = np.random.default_rng(0)
    for dtype, gemm in list(_blas.gemm.items()):
        a = rng.standard_normal((3, 5)).astype(dtype)                # used as a^T (5, 3)
        b = rng.standard_normal((3, 10)).astype(dtype)               # used as b[:, :7]
        out = rng.standard_normal((5, 7)).astype(dtype)
        expected = out + a.T @ b[:, :7]
        gemm(_ROW_MAJOR, _TRANS, _NO_TRANS, 5, 7, 3, 1.0, a.ctypes.data, 5, b.ctypes.data, 10,
             1.0, out.ctypes.data, 7)
        if not np.allclose(out, expected, rtol=1e-5, atol=1e-5):
            del _blas.gemm[dtype]


_blas = _find_openblas()
if _blas is not None:
    _gemm_agrees_with_numpy()


# -- threads: a pool of one worker per core, and OpenBLAS held to one thread meanwhile ---
_workers, _workers_pid = [], None
_CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def _pool_size():
    """One worker per core this process may run on (at most 8)."""
    return max(1, min(_CORES or 1, 8))


class _Worker:
    """A thread of the pool, running the tasks put on its own queue one after another.
    Its own queue, not one the pool shares, so that _share knows which thread a share
    wakes, and can hold that thread on a core first. home: the cores it may run on."""

    def __init__(self, name):
        self.tasks = queue.SimpleQueue()
        self.home = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
        self.thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self.thread.start()

    def submit(self, fn, *args):
        """A Future of fn(*args), run after the tasks submitted before it."""
        future = Future()
        self.tasks.put((future, fn, args))
        return future

    def _serve(self):
        while True:
            future, fn, args = self.tasks.get()
            try:
                future.set_result(fn(*args))
            except BaseException as error:      # raised again by future.result()
                future.set_exception(error)


def _pool(count):
    """The pool's first `count` workers (for shares beside the calling thread's: one per
    core but one), created on first use and again in a forked child (which inherits the
    list but not the threads)."""
    global _workers, _workers_pid
    if _workers_pid != os.getpid():
        _workers, _workers_pid = [], os.getpid()
    while len(_workers) < count:
        _workers.append(_Worker(f"conv_{len(_workers)}"))
    return _workers[:count]
