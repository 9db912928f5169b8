import numpy as np
import pytest

from resnet_np import Concat, Flatten, Layer, Upsample2d, check_gradients


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


# -- Concat ----------------------------------------------------------------------------


class SplitTransformConcat(Layer):
    """Test wrapper with check_gradients' one-input interface: split x's channels at
    `cut` into x_a, x_b and concatenate (tanh(x_b), 3 x_a), so each piece's gradient
    must come back to its own channels."""

    def __init__(self, cut):
        super().__init__()
        self.cut, self.concat = cut, Concat()

    def forward(self, x):
        x_a, x_b = x[:, :self.cut], x[:, self.cut:]
        self.cache = {"t": np.tanh(x_b)}
        return self.concat(self.cache["t"], 3.0 * x_a)

    def backward(self, dout):
        dt, dx_a = self.concat.backward(dout)
        dx_b = dt * (1 - self.cache["t"] ** 2)
        return np.concatenate([3.0 * dx_a, dx_b], axis=1)


def test_concat_values_and_split_backward(rng):
    xs = [rng.normal(size=(2, c, 3, 5)) for c in (1, 4, 2)]
    concat = Concat()
    out = concat(*xs)
    assert out.shape == (2, 7, 3, 5)
    np.testing.assert_array_equal(out[:, 1:5], xs[1])
    np.testing.assert_array_equal(out[:, 5:], xs[2])
    dout = rng.normal(size=out.shape)
    dxs = concat.backward(dout)
    assert isinstance(dxs, tuple) and [d.shape for d in dxs] == [x.shape for x in xs]
    np.testing.assert_array_equal(np.concatenate(dxs, axis=1), dout)
    np.testing.assert_array_equal(dxs[0], dout[:, :1])
    assert concat.cache["sizes"] == [1, 4, 2]
    assert concat.params == {} and repr(concat) == "Concat()"


@pytest.mark.parametrize("cut", [1, 3])
def test_concat_gradient_check(rng, cut):
    x = rng.normal(size=(2, 4, 3, 3))
    report = check_gradients(SplitTransformConcat(cut), x)
    report.assert_ok()
    assert report["dx"] < 1e-7


def test_concat_gradient_check_catches_pieces_cut_from_the_wrong_end(rng):
    class CutFromTheEnd(Concat):            # shapes right, channels wrong
        def backward(self, dout):
            first = dout.shape[1] - self.cache["sizes"][0]
            return dout[:, first:], dout[:, :first]
    layer = SplitTransformConcat(1)
    layer.concat = CutFromTheEnd()
    assert not check_gradients(layer, rng.normal(size=(2, 4, 3, 3))).passed


def test_concat_errors():
    concat = Concat()
    with pytest.raises(ValueError, match=r"^Concat\(\)\.forward: expected two or more inputs, "
                                         r"as concat\(x_0, x_1\), got 1 input\. "):
        concat(np.zeros((1, 2, 3, 3)))
    with pytest.raises(ValueError, match=r"^Concat\(\)\.forward: expected inputs that agree on "
                                         r"every axis but the channels \(1\), got shapes "
                                         r"\(1, 2, 4, 4\), \(1, 1, 4, 5\)\. Upsample or crop"):
        concat(np.zeros((1, 2, 4, 4)), np.zeros((1, 1, 4, 5)))
    with pytest.raises(ValueError, match=r"Concat\(\)\.forward input 1: expected x of shape "
                                         r"\(N, C, \.\.\.\) like input 0, got \(1, 4, 4\)\."):
        concat(np.zeros((1, 2, 4, 4)), np.zeros((1, 4, 4)))
    with pytest.raises(RuntimeError, match=r"^Concat\.backward: expected forward to have run"):
        Concat().backward(np.zeros((1, 2, 3, 3)))


def test_upsample_gradient_check_odd_sizes_float64(rng):
    report = check_gradients(Upsample2d((3, 2)), rng.normal(size=(2, 3, 3, 5)))
    assert report.passed and report["dx"] < 1e-7
