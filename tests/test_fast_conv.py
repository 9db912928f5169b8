"""resnet_np.layers._fast_conv: the fast path of Conv2d (shifted columns, chunks,
threads) gives the numbers of the readable reference, im2col/col2im on the whole batch."""
import ctypes
import os
from types import SimpleNamespace

import numpy as np
import pytest

from resnet_np import rel_error
from resnet_np.layers import _fast_conv as fast
from resnet_np.layers.columns import col2im, im2col
from test_columns import CASES          # the reference's geometries (tests/ is on sys.path)

FAST_CASES = CASES + [
    ((7, 3, 8, 8), (3, 3), (2, 2), (1, 1)),      # odd batch, stride 2
    ((5, 2, 9, 9), (3, 3), (3, 3), (0, 0)),      # stride 3: nine phases
    ((3, 2, 6, 5), (5, 3), (1, 2), (2, 1)),      # kernel taller than the stride grid
]


def reference_conv(x, W2, kernel, stride, padding, dout):
    """out, dx, dW2 from the plain im2col/col2im on the whole batch."""
    cols = im2col(x, kernel, stride, padding)                    # (K, N*H_out*W_out)
    N, C_out = x.shape[0], W2.shape[0]
    H_out, W_out = dout.shape[2:]
    out = (W2 @ cols).reshape(C_out, N, H_out, W_out).transpose(1, 0, 2, 3)
    dout2 = dout.transpose(1, 0, 2, 3).reshape(C_out, -1)        # (C_out, N*H_out*W_out)
    return out, col2im(W2.T @ dout2, x.shape, kernel, stride, padding), dout2 @ cols.T


@pytest.mark.parametrize("route", ["offsets-blas", "offsets-blas-pieces", "offsets-blas-whole",
                                   "offsets-numpy", "columns", "columns-pieces"])
@pytest.mark.parametrize("C_out", [1, 5])
@pytest.mark.parametrize("chunk_bytes", [1, 4 << 20])          # one example per chunk, or one chunk
@pytest.mark.parametrize("shape, kernel, stride, padding", FAST_CASES)
def test_fast_path_matches_im2col(rng, monkeypatch, route, C_out, chunk_bytes, shape, kernel,
                                  stride, padding):
    """Each route of the chunks: one product per kernel offset (by BLAS's gemm as this CPU
    runs it, with dW by offsets in pieces of 7 columns, or with dW over the columns; by
    NumPy where no gemm is found), or products over the built columns (as this CPU runs
    them, or in pieces of 7 columns)."""
    monkeypatch.setattr(fast, "CHUNK_BYTES", chunk_bytes)
    monkeypatch.setattr(fast, "MIN_CHANNELS_BY_OFFSETS",
                        10**9 if route.startswith("columns") else 1)
    if route == "offsets-numpy":
        _without_blas_gemm(monkeypatch)
    elif route.startswith("offsets-blas") and (fast._blas is None or
                                               np.dtype(np.float64) not in fast._blas.gemm):
        pytest.skip("no BLAS gemm found: the NumPy route is the only one")
    if route == "offsets-blas-pieces":
        _small_gemm_pieces(monkeypatch, 7, C_out, shape[1])
        g = fast._Geometry(shape, kernel, stride, padding)
        assert fast._dW_by_offsets(g, C_out) is (g.S == 1)
    elif route == "columns-pieces":
        _small_gemm_pieces(monkeypatch, 7, C_out, shape[1] * kernel[0] * kernel[1])
    elif route == "offsets-blas-whole":
        monkeypatch.setattr(fast._blas, "small_gemm", False)
        assert not fast._dW_by_offsets(fast._Geometry(shape, kernel, stride, padding), C_out)
    x = rng.standard_normal(shape)
    W2 = rng.standard_normal((C_out, shape[1] * kernel[0] * kernel[1]))
    out = fast.conv_forward(x, W2, kernel, stride, padding)
    dout = rng.standard_normal(out.shape)
    for name in ("dphases", "phases", "dwide", "pieces", "cols"):   # garbage: none may leak
        fast._scratch(name, (1 << 16,), x.dtype)[...] = np.nan
    dx, dW2 = fast.conv_backward(x, dout, W2, kernel, stride, padding)
    ref_out, ref_dx, ref_dW2 = reference_conv(x, W2, kernel, stride, padding, dout)
    np.testing.assert_allclose(out, ref_out, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dx, ref_dx, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dW2, ref_dW2, rtol=1e-12, atol=1e-12)


def test_fast_path_without_threads_agrees_with_the_reference(rng, monkeypatch):
    """The fallback when OpenBLAS's thread setting is not found (chunks in sequence), and
    the threaded route, each against the reference im2col/col2im: an independent route."""
    x = rng.standard_normal((9, 3, 8, 8)).astype(np.float32)
    W2 = rng.standard_normal((5, 27)).astype(np.float32)
    monkeypatch.setattr(fast, "CHUNK_BYTES", 1)                  # one example per chunk
    threaded = fast.conv_forward(x, W2, (3, 3), (1, 1), (1, 1))
    monkeypatch.setattr(fast, "_blas", None)
    sequential = fast.conv_forward(x, W2, (3, 3), (1, 1), (1, 1))
    dout = rng.standard_normal(sequential.shape).astype(np.float32)
    dx, dW2 = fast.conv_backward(x, dout, W2, (3, 3), (1, 1), (1, 1))
    ref_out, ref_dx, ref_dW2 = reference_conv(x, W2, (3, 3), (1, 1), (1, 1), dout)
    for result, reference in ((sequential, ref_out), (threaded, ref_out), (dx, ref_dx),
                              (dW2, ref_dW2)):
        assert result.dtype == np.float32
        assert rel_error(result, reference) <= 1e-5


def test_route_follows_the_input_channels():
    assert not fast._by_offsets(fast._Geometry((2, 3, 8, 8), (3, 3), (1, 1), (1, 1)))   # stem
    assert fast._by_offsets(fast._Geometry((2, 16, 8, 8), (3, 3), (2, 2), (1, 1)))


def _without_blas_gemm(monkeypatch):
    """_product falls back to np.matmul (as where NumPy's OpenBLAS is not found)."""
    if fast._blas is not None:
        monkeypatch.setattr(fast._blas, "gemm", {})


def _small_gemm_pieces(monkeypatch, columns, M, K):
    """Products in pieces of `columns` columns, as on CPUs with small-matrix kernels,
    whatever this CPU is: those of an (M x K) factor over built columns
    (_piece_columns), and dW by offsets for every weight size (_dW_by_offsets; stride 1)."""
    if fast._blas is None:
        pytest.skip("OpenBLAS not found: no pieces")
    monkeypatch.setattr(fast._blas, "small_gemm", True)
    monkeypatch.setattr(fast, "MIN_PIECE_COLUMNS", 1)
    monkeypatch.setattr(fast, "SMALL_GEMM_MNK", columns * M * K)
    monkeypatch.setattr(fast, "DW_PIECE_COLUMNS", columns)
    monkeypatch.setattr(fast, "DW_BY_OFFSETS_WEIGHTS", 10**9)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("stride", [1, 2])
def test_offset_products_blas_and_numpy_agree(rng, monkeypatch, dtype, stride):
    """_offset_products' branches (BLAS's gemm adding in place; NumPy with temporaries)
    give the same sums, forward and dx; dx writes only inside the windows, and sets the
    shift-0 ones (each phase's first) before adding."""
    g = fast._Geometry((3, 4, 7, 6), (3, 3), (stride, stride), (1, 1))
    n, C_out = 3, 5
    Wk = rng.standard_normal((9, C_out, 4)).astype(dtype)
    xq = rng.standard_normal((4, g.S, g.Hq * n * g.B + g.tail)).astype(dtype)
    dense = rng.standard_normal((C_out, n * g.L)).astype(dtype)
    results = {}
    for route in ("blas", "numpy"):
        if route == "numpy":
            _without_blas_gemm(monkeypatch)
        forward = np.full_like(dense, np.nan)           # forward overwrites: no NaN survives
        fast._offset_products(Wk, xq, forward, g, n, "forward")
        backward = xq.copy()
        fast._offset_products(Wk, backward, dense, g, n, "dx")
        results[route] = forward, backward
    windows = [xq[:, p, s:s + n * g.L] for p, s in g.shifts(n)]
    expected_forward = sum(Wk[k] @ window for k, window in enumerate(windows))
    expected_backward = xq.copy()
    for k, (p, s) in enumerate(g.shifts(n)):          # a phase's first window (shift 0) is set
        window = expected_backward[:, p, s:s + n * g.L]
        window[...] = (window if s else 0) + Wk[k].T @ dense
    tolerance = 1e-5 if dtype == np.float32 else 1e-12
    for forward, backward in results.values():
        assert rel_error(forward, expected_forward) <= tolerance
        assert rel_error(backward, expected_backward) <= tolerance


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("stride", [1, 2, 3])
@pytest.mark.parametrize("piece", [7, 10**6])         # pieces and a rest; only the rest
def test_offset_dW_is_each_offsets_product(rng, monkeypatch, dtype, stride, piece):
    """_offset_dW gives dWk[k] = dense @ window_k^T for every offset, in the order of
    g.shifts (k = i * kW + j), whatever the stride and however the columns are cut."""
    monkeypatch.setattr(fast, "DW_PIECE_COLUMNS", piece)
    g = fast._Geometry((3, 4, 7, 6), (3, 3), (stride, stride), (1, 1))
    n, C_out = 3, 5
    xq = rng.standard_normal((4, g.S, g.Hq * n * g.B + g.tail)).astype(dtype)
    dense = rng.standard_normal((C_out, n * g.L)).astype(dtype)
    dWk = fast._offset_dW(dense, xq, g, n)
    windows = [xq[:, p, s:s + n * g.L] for p, s in g.shifts(n)]
    expected = np.stack([dense @ window.T for window in windows])
    assert dWk.shape == (9, C_out, 4) and dWk.dtype == dtype
    assert rel_error(dWk, expected) <= (1e-5 if dtype == np.float32 else 1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("width", [6, 13, 14, 15, 70])   # whole; 1 piece + 6; 2; 2 + 1; 10
def test_products_in_pieces_of_the_columns(rng, monkeypatch, dtype, width):
    """The built columns' products, cut in pieces of 7 columns and one more product for
    the rest (none for 14 and 70), equal the whole products; under two pieces, whole."""
    _small_gemm_pieces(monkeypatch, 7, 4, 9)
    left, right = rng.standard_normal((4, 9)).astype(dtype), rng.standard_normal((9, width))
    right = right.astype(dtype)
    assert fast._piece_columns(4, 9) == 7
    tolerance = 1e-5 if dtype == np.float32 else 1e-12
    out = np.full((4, width), np.nan, dtype=dtype)                # every column written
    assert fast._product_in_pieces(left, right, out) is out
    assert rel_error(out, left @ right) <= tolerance
    dense = rng.standard_normal((4, width)).astype(dtype)
    assert rel_error(fast._product_over_pieces(dense, right), dense @ right.T) <= tolerance
    backward = np.full((9, width), np.nan, dtype=dtype)
    fast._product_in_pieces(left.T, dense, backward)              # W2^T @ dout: (9 x 4) left
    assert rel_error(backward, left.T @ dense) <= tolerance


def test_column_pieces_only_where_they_pay(monkeypatch):
    """Pieces of fewer than MIN_PIECE_COLUMNS columns, or no small kernels: whole."""
    if fast._blas is None:
        pytest.skip("OpenBLAS not found: every product is whole")
    monkeypatch.setattr(fast._blas, "small_gemm", True)
    assert fast._piece_columns(16, 27) == 2314                    # the stem: 3 -> 16
    assert fast._piece_columns(64, 27) is None                    # 578 columns: too thin
    monkeypatch.setattr(fast._blas, "small_gemm", False)
    assert fast._piece_columns(16, 27) is None


class _FakeFunction:
    """Stands in for a ctypes function of a BLAS library: accepts restype/argtypes."""

    def __init__(self, result=None):
        self.result = result

    def __call__(self, *args):
        return self.result


@pytest.mark.parametrize("prefix, suffix, config, width", [
    ("scipy_openblas_", "64_", b"OpenBLAS 0.3.30 USE64BITINT DYNAMIC_ARCH", ctypes.c_int64),
    ("openblas_", "", b"OpenBLAS 0.3.21 DYNAMIC_ARCH", ctypes.c_int),    # a system OpenBLAS
    ("openblas_", "", b"OpenBLAS 0.3.21 USE64BITINT", ctypes.c_int64),   # built ILP64, no suffix
])
def test_find_gemm_names_and_integer_width(prefix, suffix, config, width):
    cblas = prefix.replace("openblas_", "") + "cblas_"
    lib = SimpleNamespace(**{f"{prefix}get_config{suffix}": _FakeFunction(config),
                             f"{cblas}sgemm{suffix}": _FakeFunction()})   # no dgemm
    gemm = fast._OpenBLAS._find_gemm(lib, prefix, suffix)
    assert list(gemm) == [np.dtype(np.float32)]           # float64 then goes to NumPy
    argtypes = gemm[np.dtype(np.float32)].argtypes
    assert argtypes[3:6] == [width] * 3 and argtypes[6] is ctypes.c_float
    assert fast._OpenBLAS._find_gemm(SimpleNamespace(), prefix, suffix) == {}


@pytest.mark.parametrize("corename, small", [(b"SkylakeX", True), (b"SapphireRapids", True),
                                              (b"Haswell", False), (None, False)])
def test_small_matrix_pieces_only_on_the_measured_kernels(monkeypatch, corename, small):
    """dW runs by offsets in pieces only where OpenBLAS names kernels that were measured
    (and where the library says nothing, over the columns, as before), and only for
    weights of up to 32 x 32 (C_out x C_in) and stride 1."""
    names = {"openblas_get_num_threads": _FakeFunction(1), "openblas_set_num_threads":
             _FakeFunction()}
    if corename is not None:
        names["openblas_get_corename"] = _FakeFunction(corename)
    blas = fast._OpenBLAS(SimpleNamespace(**names))
    assert blas.small_gemm is small
    monkeypatch.setattr(fast, "_blas", blas)
    g = fast._Geometry((2, 16, 32, 32), (3, 3), (1, 1), (1, 1))
    assert fast._dW_by_offsets(g, 16) is small
    g32 = fast._Geometry((2, 32, 16, 16), (3, 3), (1, 1), (1, 1))
    assert fast._dW_by_offsets(g32, 32) is small
    assert fast._dW_by_offsets(g32, 64) is False                  # 32 -> 64: slower so
    assert fast._dW_by_offsets(fast._Geometry((2, 16, 32, 32), (3, 3), (2, 2), (1, 1)), 32) \
        is False                                                  # stride 2: not faster
    assert fast._dW_by_offsets(fast._Geometry((2, 64, 8, 8), (3, 3), (1, 1), (1, 1)), 64) \
        is False


def test_gemm_self_check_drops_a_gemm_that_disagrees(monkeypatch):
    if fast._blas is None or not fast._blas.gemm:
        pytest.skip("no BLAS gemm found")
    wrong = dict(fast._blas.gemm)
    real = wrong[np.dtype(np.float32)]
    wrong[np.dtype(np.float32)] = lambda *args: real(*args[:6], 2.0, *args[7:])   # alpha 2
    assert np.dtype(np.float64) in wrong
    monkeypatch.setattr(fast._blas, "gemm", wrong)
    fast._gemm_agrees_with_numpy()
    assert np.dtype(np.float32) not in fast._blas.gemm
    assert np.dtype(np.float64) in fast._blas.gemm


def test_chunks_cover_the_batch_exactly_once():
    g = fast._Geometry((13, 16, 32, 32), (3, 3), (1, 1), (1, 1))
    for workers in (1, 2, 4):
        chunks = fast._chunks(g, 4 * g.K * g.L, workers)
        covered = np.concatenate([np.arange(a, b) for a, b in chunks])
        np.testing.assert_array_equal(covered, np.arange(13))


def test_chunks_run_in_turn_are_not_rounded_up_to_the_cores(monkeypatch):
    g = fast._Geometry((6, 2, 5, 5), (3, 3), (1, 1), (1, 1))
    monkeypatch.setattr(fast, "CHUNK_BYTES", 6 * 100)              # all six in one chunk
    monkeypatch.setattr(fast, "_pool_size", lambda: 2)
    for in_turn, expected in ((True, [(0, 6)]), (False, [(0, 3), (3, 6)])):
        monkeypatch.setattr(fast, "_in_sequence", lambda count, in_turn=in_turn: in_turn)
        monkeypatch.setattr(fast, "_parallel", lambda task, items: [task(i) for i in items])
        assert fast._run(lambda start, stop: (start, stop), g, 100) == expected


def test_blas_thread_setting_is_restored(rng, monkeypatch):
    if fast._blas is None:
        pytest.skip("OpenBLAS thread control not found; the sequential fallback is used")
    before = fast._blas.get()
    monkeypatch.setattr(fast, "CHUNK_BYTES", 1)
    fast.conv_forward(rng.standard_normal((4, 2, 5, 5)), rng.standard_normal((3, 18)),
                      (3, 3), (1, 1), (1, 1))
    assert fast._blas.get() == before


def test_fast_path_accepts_non_contiguous_and_float16_input(rng, monkeypatch):
    monkeypatch.setattr(fast, "CHUNK_BYTES", 1)
    x = rng.standard_normal((5, 3, 7, 6))
    W2 = rng.standard_normal((4, 27)).astype(np.float32)
    view = np.asfortranarray(x)[:, :, ::-1]                       # strided, reversed rows
    expected = fast.conv_forward(np.ascontiguousarray(view), W2, (3, 3), (1, 1), (1, 1))
    np.testing.assert_array_equal(fast.conv_forward(view, W2, (3, 3), (1, 1), (1, 1)), expected)
    half = fast.conv_forward(x.astype(np.float16), W2, (3, 3), (1, 1), (1, 1))
    assert half.dtype == np.float32
    np.testing.assert_allclose(half, fast.conv_forward(x.astype(np.float16).astype(np.float32),
                                                       W2, (3, 3), (1, 1), (1, 1)))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_thread_pool_works_in_a_forked_child(rng, monkeypatch):
    """A forked child inherits the pool object but not its threads: it must make its own."""
    import multiprocessing
    monkeypatch.setattr(fast, "CHUNK_BYTES", 1)
    x = rng.standard_normal((4, 2, 5, 5))
    W2 = rng.standard_normal((3, 18))
    expected = fast.conv_forward(x, W2, (3, 3), (1, 1), (1, 1))   # the parent's pool exists now
    with multiprocessing.get_context("fork").Pool(1) as pool:
        result = pool.apply_async(fast.conv_forward, (x, W2, (3, 3), (1, 1), (1, 1)))
        np.testing.assert_array_equal(result.get(timeout=30), expected)


def _fake_cache(root, index, level, size, kind):
    folder = root / f"index{index}"
    folder.mkdir()
    for name, value in (("level", level), ("size", size), ("type", kind)):
        (folder / name).write_text(value + "\n")


def test_chunk_size_follows_the_l2_cache(tmp_path, monkeypatch):
    _fake_cache(tmp_path, 0, "1", "48K", "Data")
    _fake_cache(tmp_path, 1, "1", "32K", "Instruction")
    _fake_cache(tmp_path, 2, "2", "1280K", "Unified")
    _fake_cache(tmp_path, 3, "3", "32M", "Unified")
    real_glob = fast.glob.glob
    monkeypatch.setattr(fast.glob, "glob", lambda pattern: real_glob(
        str(tmp_path / "index*")) if pattern.startswith("/sys/") else real_glob(pattern))
    assert fast._l2_cache_bytes() == 1280 << 10


def test_chunk_size_falls_back_without_sysfs(tmp_path, monkeypatch):
    monkeypatch.setattr(fast.glob, "glob", lambda pattern: [])
    assert fast._l2_cache_bytes() == 2 << 20
    assert fast._l2_cache_bytes(default=123) == 123


# -- where the shares run ----------------------------------------------------------------
can_place = pytest.mark.skipif(
    fast._sched_getcpu is None or not hasattr(os, "sched_setaffinity")
    or len(os.sched_getaffinity(0)) < 2,
    reason="needs Linux's sched_getcpu/sched_setaffinity and two allowed cores")


@pytest.fixture
def allowed(monkeypatch):
    """This thread's allowed cores, with _cores_for choosing the first of them, one per
    share (what it chooses when the shares take every allowed core, here on any machine)."""
    cores = os.sched_getaffinity(0)
    monkeypatch.setattr(fast, "_cores_for", lambda workers: _first_cores(workers, cores))
    return cores


def _first_cores(workers, allowed):
    """The first `workers` allowed cores, one per share."""
    return sorted(allowed)[:workers]


def _worker_mask():
    """The allowed cores of the pool's first worker, read in that thread."""
    return fast._pool(1)[0].submit(os.sched_getaffinity, 0).result()


@can_place
def test_each_share_runs_on_a_core_of_its_own_and_the_masks_come_back(allowed):
    seen = fast._share(lambda item: (item, os.sched_getaffinity(0)), [0, 1, 2, 3], 2)
    masks = dict(seen)
    assert all(len(mask) == 1 and mask <= allowed for mask in masks.values())
    assert masks[0] == masks[2] and masks[1] == masks[3]           # share 0: items 0, 2
    assert masks[0] != masks[1]                                    # the two shares: two cores
    assert os.sched_getaffinity(0) == allowed                      # the caller's mask is back
    assert _worker_mask() == allowed                               # and the workers'


@can_place
@pytest.mark.parametrize("failing", [0, 1])          # the caller's share, the worker's
def test_the_masks_come_back_when_a_share_fails(allowed, failing):
    def task(item):
        if item == failing:
            raise ValueError("planted")
        return item

    with pytest.raises(ValueError, match="planted"):
        fast._share(task, [0, 1], 2)
    assert os.sched_getaffinity(0) == allowed
    assert _worker_mask() == allowed


@can_place
def test_cores_chosen_only_when_the_shares_take_every_allowed_core(monkeypatch):
    allowed = os.sched_getaffinity(0)
    cores = fast._cores_for(len(allowed))
    assert None not in cores and set(cores) == allowed                  # one core per share
    assert fast._cores_for(len(allowed) + 1) == [None] * (len(allowed) + 1)   # too few
    real = os.sched_getaffinity
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: real(pid) | {10_000})
    assert fast._cores_for(len(allowed)) == [None] * len(allowed)       # a core to spare
    monkeypatch.undo()
    os.sched_setaffinity(0, {min(allowed)})                       # this thread: one core
    try:
        assert fast._cores_for(2) == [None, None]
        assert fast._share(lambda item: item, [0, 1], 2) == [0, 1]  # still runs
        assert os.sched_getaffinity(0) == {min(allowed)}          # and leaves the mask alone
    finally:
        os.sched_setaffinity(0, allowed)
    monkeypatch.setattr(fast, "_sched_getcpu", None)               # not Linux
    assert fast._cores_for(2) == [None, None]


def test_a_thread_not_held_runs_where_it_is():
    assert fast._hold(0, None) is None
    assert fast._then_release(None, lambda a, b: a + b, 2, 3) == 5


@can_place
def test_each_worker_is_held_on_its_core_before_it_is_woken(allowed, monkeypatch):
    submitted = fast._Worker.submit
    masks = []

    def submit(worker, fn, *args):      # the worker's mask as its share is handed over
        masks.append(os.sched_getaffinity(worker.thread.native_id))
        return submitted(worker, fn, *args)

    monkeypatch.setattr(fast._Worker, "submit", submit)
    fast._share(lambda item: item, [0, 1], 2)
    assert masks == [{_first_cores(2, allowed)[1]}]
    monkeypatch.undo()
    assert _worker_mask() == allowed


@can_place
def test_a_core_the_system_refuses_runs_the_share_where_it_is(allowed, monkeypatch):
    def refuse(pid, cores):
        raise OSError(22, "Invalid argument")

    monkeypatch.setattr(os, "sched_setaffinity", refuse)
    assert fast._share(lambda item: item * 2, [0, 1, 2, 3], 2) == [0, 4, 2, 6]
    monkeypatch.undo()
    assert os.sched_getaffinity(0) == allowed
