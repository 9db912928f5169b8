import numpy as np
import pytest

from resnet_np import check_gradients
from resnet_np.layers.activations import Identity
from resnet_np.shortcuts import Projection, ZeroPadShortcut, make_shortcut


def test_zero_pad_subsamples_and_appends_zero_channels(rng):
    x = rng.standard_normal((2, 3, 5, 5))
    out = ZeroPadShortcut(3, 7, stride=2)(x)
    assert out.shape == (2, 7, 3, 3)
    np.testing.assert_array_equal(out[:, :3], x[:, :, ::2, ::2])
    assert not out[:, 3:].any()


def test_zero_pad_backward_routes_to_sampled_pixels(rng):
    layer = ZeroPadShortcut(2, 4, stride=2)
    x = rng.standard_normal((1, 2, 4, 4))
    dout = rng.standard_normal(layer(x).shape)
    dx = layer.backward(dout)
    assert dx.shape == x.shape
    np.testing.assert_array_equal(dx[:, :, ::2, ::2], dout[:, :2])
    assert np.count_nonzero(dx) == 2 * 4
    check_gradients(layer, x).assert_ok()


@pytest.mark.parametrize("kind,c_in,c_out,stride,expected", [
    ("identity", 4, 4, 1, Identity), ("A", 4, 4, 1, Identity), ("B", 4, 4, 1, Identity),
    ("A", 4, 8, 2, ZeroPadShortcut), ("B", 4, 8, 2, Projection), ("C", 4, 4, 1, Projection),
])
def test_make_shortcut_chooses_the_option(kind, c_in, c_out, stride, expected):
    assert isinstance(make_shortcut(kind, c_in, c_out, stride, "test", rng=0), expected)
    assert make_shortcut(None, c_in, c_out, stride, "test") is None


def test_projection_has_conv_and_bn_parameters():
    names = [name for name, _ in Projection(4, 8, stride=2, rng=0).named_parameters()]
    assert names == ["conv.W", "bn.gamma", "bn.beta"]


def test_shortcut_errors():
    with pytest.raises(ValueError, match=r"test: expected the same shape in and out .* "
                                         r"got in_channels=4, out_channels=8, stride=1"):
        make_shortcut("identity", 4, 8, 1, "test")
    with pytest.raises(ValueError, match="shortcut one of 'identity', 'A', 'B', 'C', None"):
        make_shortcut("projection", 4, 8, 1, "test")
    with pytest.raises(ValueError, match=r"ZeroPadShortcut: expected out_channels >= in_channels"):
        ZeroPadShortcut(8, 4)
    with pytest.raises(ValueError, match=r"expected x of shape \(N, 2, H, W\), got \(1, 3, 4, 4\)"):
        ZeroPadShortcut(2, 4)(np.zeros((1, 3, 4, 4)))
    with pytest.raises(RuntimeError, match="forward to have run first"):
        ZeroPadShortcut(2, 4).backward(np.zeros((1, 4, 2, 2)))
