"""Elementwise activations: reference values, derivatives, gradient checks, stability."""
import re
import warnings

import numpy as np
import pytest

from resnet_np import (Identity, LeakyReLU, ReLU, Sigmoid, Tanh, check_gradients,
                       get_activation)

LN2, LN3 = np.log(2.0), np.log(3.0)

# (layer factory, z, g(z), g'(z)), every value worked out by hand:
# sigmoid(+-ln 3) = 3/4, 1/4 and a(1 - a) = 3/16; tanh(+-ln 2) = +-(2 - 1/2)/(2 + 1/2) = +-0.6.
REFERENCE = {
    "relu": (ReLU, [-2.0, -0.5, 0.5, 3.0], [0.0, 0.0, 0.5, 3.0], [0.0, 0.0, 1.0, 1.0]),
    "leaky_relu": (lambda: LeakyReLU(0.1), [-2.0, -0.5, 0.5, 3.0],
                   [-0.2, -0.05, 0.5, 3.0], [0.1, 0.1, 1.0, 1.0]),
    "sigmoid": (Sigmoid, [-LN3, 0.0, LN3], [0.25, 0.5, 0.75], [0.1875, 0.25, 0.1875]),
    "tanh": (Tanh, [-LN2, 0.0, LN2], [-0.6, 0.0, 0.6], [0.64, 1.0, 0.64]),
    "identity": (Identity, [-2.0, 0.0, 3.5], [-2.0, 0.0, 3.5], [1.0, 1.0, 1.0]),
}
FACTORIES = {name: ref[0] for name, ref in REFERENCE.items()}


@pytest.mark.parametrize("name", REFERENCE)
def test_forward_and_backward_reference_values(name):
    make, z, a, slope = (np.array(v) if isinstance(v, list) else v
                         for v in REFERENCE[name])
    layer = make()
    np.testing.assert_allclose(layer(z), a, rtol=1e-12, atol=1e-15)
    da = np.arange(1.0, len(z) + 1)                    # 1, 2, 3, ...
    np.testing.assert_allclose(layer.backward(da), da * slope, rtol=1e-12, atol=1e-15)


def test_relu_derivative_at_the_kink_is_zero():
    relu = ReLU()
    relu(np.array([0.0]))
    np.testing.assert_array_equal(relu.backward(np.array([5.0])), [0.0])


def test_leaky_relu_derivative_at_the_kink_is_the_slope():
    """As PyTorch: z > 0 takes slope 1, z <= 0 (the kink included) negative_slope."""
    leaky = LeakyReLU(0.25)
    leaky(np.array([0.0]))
    np.testing.assert_array_equal(leaky.backward(np.array([4.0])), [1.0])


def test_leaky_relu_default_slope():
    assert LeakyReLU().negative_slope == 0.01
    np.testing.assert_allclose(LeakyReLU()(np.array([-3.0, 2.0])), [-0.03, 2.0], rtol=1e-12)


def away_from_kink(rng, shape):
    """Random values with |x| >= 0.1, so eps = 1e-6 never crosses ReLU's kink."""
    x = rng.standard_normal(shape)
    return np.sign(x) * (0.1 + np.abs(x))


@pytest.mark.parametrize("name", FACTORIES)
@pytest.mark.parametrize("shape", [(4, 5), (2, 3, 4, 3)], ids=["2d", "4d"])
def test_gradient_check(name, shape, rng):
    report = check_gradients(FACTORIES[name](), away_from_kink(rng, shape))
    report.assert_ok()
    assert [row["name"] for row in report.rows] == ["dx"]


@pytest.mark.parametrize("name", FACTORIES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_and_shape_are_kept(name, dtype, rng):
    layer = FACTORIES[name]()
    x = rng.standard_normal((2, 3, 4)).astype(dtype)
    out = layer(x)
    dx = layer.backward(np.ones_like(x))
    assert out.shape == dx.shape == x.shape
    assert out.dtype == dx.dtype == dtype


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_is_stable_at_plus_minus_1000(dtype):
    x = np.array([-1000.0, -50.0, 0.0, 50.0, 1000.0], dtype=dtype)
    sigmoid = Sigmoid()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = sigmoid(x)
        dx = sigmoid.backward(np.ones_like(x))
    assert np.all(np.isfinite(out)) and np.all(np.isfinite(dx))
    assert out[0] == 0.0 or out[0] < 1e-20
    assert out[-1] == 1.0 and out[2] == 0.5
    np.testing.assert_allclose(out[1], np.exp(-50.0), rtol=1e-5)
    np.testing.assert_allclose(dx[[0, -1]], [0.0, 0.0], atol=1e-20)


def test_tanh_saturates_without_warnings():
    tanh = Tanh()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = tanh(np.array([-1000.0, 1000.0]))
    np.testing.assert_array_equal(out, [-1.0, 1.0])


@pytest.mark.parametrize("name", FACTORIES)
def test_get_activation_makes_a_fresh_layer_of_the_right_class(name):
    expected = type(FACTORIES[name]())
    first, second = get_activation(name), get_activation(name)
    assert type(first) is expected and first is not second


def test_repr():
    assert repr(ReLU()) == "ReLU()"
    assert repr(LeakyReLU(0.2)) == "LeakyReLU(negative_slope=0.2)"


# -- errors --------------------------------------------------------------------------

@pytest.mark.parametrize("args, where", [((), "get_activation"),
                                         (("DenseResidualBlock",), "DenseResidualBlock")])
def test_get_activation_unknown_name(args, where):
    """The default `where` is get_activation; callers pass their own name."""
    with pytest.raises(ValueError, match=rf"^{where}: expected activation one of 'relu', "
                                         r"'leaky_relu', 'sigmoid', 'tanh', 'identity', "
                                         r"got 'softmax'\.$"):
        get_activation("softmax", *args)


@pytest.mark.parametrize("slope, error, pattern", [
    (-0.1, ValueError, r"^LeakyReLU: expected a finite negative_slope >= 0\.0, "
                       r"got negative_slope=-0\.1\.$"),
    (float("nan"), ValueError, r"^LeakyReLU: expected a finite negative_slope"),
    ("0.1", TypeError, r"^LeakyReLU: expected negative_slope to be a number, got '0\.1'\.$"),
])
def test_leaky_relu_bad_slope(slope, error, pattern):
    with pytest.raises(error, match=pattern):
        LeakyReLU(slope)


@pytest.mark.parametrize("name", FACTORIES)
@pytest.mark.parametrize("x, text", [
    (np.array([1, 2]), r"expected a floating-point array, got dtype int64\. Convert it with "
                       r"x\.astype\(np\.float32\)\."),
    ([1.0, 2.0], r"expected x to be a NumPy array, got list\. Convert it with np\.asarray"),
], ids=["int", "list"])
def test_forward_rejects_non_float_input(name, x, text):
    layer = FACTORIES[name]()
    with pytest.raises(TypeError, match=rf"^{re.escape(repr(layer))}\.forward: {text}"):
        layer(x)


@pytest.mark.parametrize("name", FACTORIES)
def test_backward_before_forward(name):
    layer = FACTORIES[name]()
    cls = type(layer).__name__
    with pytest.raises(RuntimeError, match=rf"^{cls}\.backward: expected forward to have run"):
        layer.backward(np.ones(3))


@pytest.mark.parametrize("layer", [ReLU(), Identity()], ids=["ReLU", "Identity"])
def test_function_budget(rng, library_functions, layer):
    """forward: itself, check_array (no repr built) and Layer.__setattr__ for the cache;
    backward: itself and Layer._cached."""
    name = type(layer).__name__
    x = rng.standard_normal((2, 3))
    assert library_functions(layer.forward, x) == {f"{name}.forward", "check_array",
                                                   "Layer.__setattr__"}
    assert library_functions(layer.backward, x) == {f"{name}.backward", "Layer._cached"}


def test_relu_keeps_its_output_not_a_mask(rng):
    # the output is positive exactly where the input is: no separate mask is stored
    relu = ReLU()
    x = rng.standard_normal((3, 4))
    out = relu(x)
    assert list(relu.cache) == ["out"] and relu.cache["out"] is out
    dout = rng.standard_normal((3, 4))
    np.testing.assert_array_equal(relu.backward(dout), np.where(x > 0, dout, 0.0))
