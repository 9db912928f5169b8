"""resnet_np.layers._fast_conv: the fast path of Conv2d (shifted columns, chunks,
threads) gives the numbers of the readable reference, im2col/col2im on the whole batch."""
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


@pytest.mark.parametrize("flipped", [True, False])              # stride-1 backward route
@pytest.mark.parametrize("C_out", [1, 5])
@pytest.mark.parametrize("chunk_bytes", [1, 4 << 20])          # one example per chunk, or one chunk
@pytest.mark.parametrize("shape, kernel, stride, padding", FAST_CASES)
def test_fast_path_matches_im2col(rng, monkeypatch, flipped, C_out, chunk_bytes, shape, kernel,
                                  stride, padding):
    monkeypatch.setattr(fast, "CHUNK_BYTES", chunk_bytes)
    monkeypatch.setattr(fast, "FLIPPED_BACKWARD", flipped)
    x = rng.standard_normal(shape)
    W2 = rng.standard_normal((C_out, shape[1] * kernel[0] * kernel[1]))
    out = fast.conv_forward(x, W2, kernel, stride, padding)
    dout = rng.standard_normal(out.shape)
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


def test_flipped_route_is_taken_where_it_applies():
    g = fast._Geometry((2, 16, 8, 8), (3, 3), (1, 1), (1, 1))
    assert fast._flipped_route(g, 16) and not fast._flipped_route(g, 32)
    assert not fast._flipped_route(fast._Geometry((2, 16, 8, 8), (3, 3), (2, 2), (1, 1)), 16)
    assert not fast._flipped_route(fast._Geometry((1, 2, 4, 4), (3, 3), (1, 1), (3, 3)), 2)


def test_chunks_cover_the_batch_exactly_once():
    g = fast._Geometry((13, 16, 32, 32), (3, 3), (1, 1), (1, 1))
    for workers in (1, 2, 4):
        chunks = fast._chunks(g, 4, workers)
        covered = np.concatenate([np.arange(a, b) for a, b in chunks])
        np.testing.assert_array_equal(covered, np.arange(13))


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


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs os.fork")
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
