import numpy as np
import pytest

from resnet_np import Flatten, Upsample2d, check_gradients


def naive_upsample(x, sH, sW):
    N, C, H, W = x.shape
    out = np.empty((N, C, H * sH, W * sW))
    for h in range(H * sH):
        for w in range(W * sW):
            out[:, :, h, w] = x[:, :, h // sH, w // sW]
    return out


def test_flatten_values_and_backward(rng):
    x = rng.normal(size=(2, 3, 4, 5))
    flatten = Flatten()
    out = flatten(x)
    assert out.shape == (2, 60)
    assert out[1, (2 * 4 + 3) * 5 + 1] == x[1, 2, 3, 1]          # C order, as torch.flatten
    dout = rng.normal(size=out.shape)
    np.testing.assert_array_equal(flatten.backward(dout), dout.reshape(x.shape))
    assert flatten.cache["x_shape"] == x.shape
    assert Flatten()(np.zeros((4, 7))).shape == (4, 7)           # already flat: unchanged
    check_gradients(Flatten(), rng.normal(size=(2, 3, 2))).assert_ok()


@pytest.mark.parametrize("scale, shape", [(2, (2, 3, 3, 5)), (3, (1, 2, 2, 2)),
                                          ((2, 1), (2, 1, 3, 4)), (1, (1, 1, 2, 3))])
def test_upsample_matches_naive_loop(rng, scale, shape):
    up = Upsample2d(scale)
    x = rng.normal(size=shape)
    out = up(x)
    np.testing.assert_array_equal(out, naive_upsample(x, *up.scale_factor))
    # backward: each input pixel collects the sum of its block of output gradients
    dout = rng.normal(size=out.shape)
    sH, sW = up.scale_factor
    expected = np.zeros_like(x)
    for h in range(out.shape[2]):
        for w in range(out.shape[3]):
            expected[:, :, h // sH, w // sW] += dout[:, :, h, w]
    np.testing.assert_allclose(up.backward(dout), expected, rtol=1e-12)
    check_gradients(up, x).assert_ok()


def test_upsample_output_is_writable_and_float32_stays_float32(rng):
    x = rng.normal(size=(2, 2, 3, 3)).astype(np.float32)
    up = Upsample2d()
    out = up(x)
    out += 1.0                                                  # a real array, not a view
    assert out.dtype == np.float32 and out.shape == (2, 2, 6, 6)
    assert up.backward(out).dtype == np.float32


def test_repr():
    assert repr(Flatten()) == "Flatten()"
    assert repr(Upsample2d()) == "Upsample2d()"
    assert repr(Upsample2d(3)) == "Upsample2d(scale_factor=3)"
    assert repr(Upsample2d((2, 1))) == "Upsample2d(scale_factor=(2, 1))"


def test_errors():
    with pytest.raises(ValueError, match=r"Flatten\(\)\.forward: expected an array of shape "
                                         r"\(N, \.\.\.\) with at least 2 dimensions, got shape "
                                         r"\(5,\)\. .*x\[None\]"):
        Flatten()(np.zeros(5))
    with pytest.raises(ValueError, match=r"Upsample2d\(\)\.forward: expected x of shape "
                                         r"\(N, C, H, W\), got \(3, 4, 4\)\. .*x\[None\]"):
        Upsample2d()(np.zeros((3, 4, 4)))
    with pytest.raises(ValueError, match=r"Upsample2d: expected scale_factor >= 1, "
                                         r"got scale_factor=0\."):
        Upsample2d(0)
    with pytest.raises(TypeError, match=r"Upsample2d: expected scale_factor to be an int"):
        Upsample2d(1.5)
    for layer in (Flatten(), Upsample2d()):
        with pytest.raises(RuntimeError, match=r"\.backward: expected forward to have run"):
            layer.backward(np.zeros((1, 1, 2, 2)))


@pytest.mark.torch
def test_upsample_matches_pytorch(rng):
    torch = pytest.importorskip("torch")
    x = rng.normal(size=(2, 3, 4, 5))
    xt = torch.from_numpy(x).requires_grad_(True)
    out_t = torch.nn.Upsample(scale_factor=2, mode="nearest")(xt)
    dout = rng.normal(size=tuple(out_t.shape))
    out_t.backward(torch.from_numpy(dout))
    up = Upsample2d(2)
    np.testing.assert_allclose(up(x), out_t.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(up.backward(dout), xt.grad.numpy(), rtol=1e-12)
