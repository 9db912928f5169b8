"""Dense: Z = A @ W.T + b, checked on hand-computed values, shapes and gradients."""
import numpy as np
import pytest

from resnet_np import Dense, check_gradients

# Hand-computed reference: W (2, 3), b (2,), x (2, 3), dout (2, 2).
W = np.array([[1.0, 2.0, 3.0], [-1.0, 0.0, 2.0]])
B = np.array([0.5, -1.0])
X = np.array([[1.0, 0.0, -1.0], [2.0, 1.0, 0.0]])
DOUT = np.array([[1.0, 2.0], [0.0, -1.0]])
Z = np.array([[-1.5, -4.0], [4.5, -3.0]])      # row 0: 1-3+.5, -1-2-1; row 1: 2+2+.5, -2-1
DW = np.array([[1.0, 0.0, -1.0], [0.0, -1.0, -2.0]])   # dout^T x
DB = np.array([1.0, 1.0])                              # column sums of dout
DX = np.array([[-1.0, 2.0, 7.0], [1.0, 0.0, -2.0]])    # dout @ W


def reference_layer(bias=True):
    layer = Dense(3, 2, bias=bias).astype(np.float64)
    layer.params["W"][...] = W
    if bias:
        layer.params["b"][...] = B
    return layer


def test_forward_matches_hand_computed_values():
    np.testing.assert_array_equal(reference_layer()(X), Z)


def test_backward_matches_hand_computed_values():
    layer = reference_layer()
    layer(X)
    np.testing.assert_array_equal(layer.backward(DOUT), DX)
    np.testing.assert_array_equal(layer.grads["W"], DW)
    np.testing.assert_array_equal(layer.grads["b"], DB)


def test_without_bias_there_is_no_b():
    layer = reference_layer(bias=False)
    assert list(layer.params) == ["W"] and list(layer.grads) == ["W"]
    np.testing.assert_array_equal(layer(X), Z - B)
    np.testing.assert_array_equal(layer.backward(DOUT), DX)
    np.testing.assert_array_equal(layer.grads["W"], DW)
    assert layer.num_parameters() == 6


def test_backward_sets_gradients_instead_of_accumulating():
    layer = reference_layer()
    layer(X)
    layer.backward(DOUT)
    layer.backward(DOUT)
    np.testing.assert_array_equal(layer.grads["W"], DW)
    np.testing.assert_array_equal(layer.grads["b"], DB)


@pytest.mark.parametrize("N, D_in, D_out", [(1, 1, 1), (7, 5, 3), (4, 3, 9)])
def test_shapes_and_float32_default(N, D_in, D_out, rng):
    layer = Dense(D_in, D_out, rng=0)
    assert layer.params["W"].shape == (D_out, D_in) and layer.params["b"].shape == (D_out,)
    assert layer.params["W"].dtype == np.float32 and layer.params["b"].dtype == np.float32
    x = rng.standard_normal((N, D_in)).astype(np.float32)
    out = layer(x)
    assert out.shape == (N, D_out) and out.dtype == np.float32
    assert layer.cache["x"] is x
    dx = layer.backward(np.ones((N, D_out), dtype=np.float32))
    assert dx.shape == (N, D_in) and dx.dtype == np.float32
    assert layer.grads["W"].shape == (D_out, D_in) and layer.grads["b"].shape == (D_out,)
    assert layer.num_parameters() == D_out * D_in + D_out


def test_he_normal_initialisation_and_zero_bias():
    layer = Dense(200, 300, rng=0)
    std = layer.params["W"].std()
    assert abs(std - np.sqrt(2.0 / 200)) < 0.02 * np.sqrt(2.0 / 200)
    assert abs(layer.params["W"].mean()) < 0.005
    np.testing.assert_array_equal(layer.params["b"], 0.0)


def test_rng_seed_and_generator_are_reproducible():
    a = Dense(4, 3, rng=7).params["W"]
    b = Dense(4, 3, rng=np.random.default_rng(7)).params["W"]
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, Dense(4, 3, rng=8).params["W"])


@pytest.mark.parametrize("bias", [True, False])
def test_gradient_check(bias, rng):
    layer = Dense(5, 3, bias=bias, rng=rng)
    report = check_gradients(layer, rng.standard_normal((7, 5)))
    report.assert_ok()
    assert [row["name"] for row in report.rows] == ["dx", "W", "b"][:3 if bias else 2]
    assert report.max_error < 1e-7


def test_repr_mirrors_constructor():
    assert repr(Dense(3, 4)) == "Dense(3, 4)"
    assert repr(Dense(3, 4, bias=False)) == "Dense(3, 4, bias=False)"


# -- errors ------------------------------------------------------------------------------

@pytest.mark.parametrize("args, error, pattern", [
    ((0, 2), ValueError, r"^Dense: expected in_features >= 1, got in_features=0\.$"),
    ((3, -1), ValueError, r"^Dense: expected out_features >= 1, got out_features=-1\.$"),
    ((2.5, 2), TypeError, r"^Dense: expected in_features to be an int, got 2\.5\.$"),
    ((3, "4"), TypeError, r"^Dense: expected out_features to be an int, got '4'\.$"),
    ((True, 2), TypeError, r"^Dense: expected in_features to be an int, got True\.$"),
])
def test_constructor_errors(args, error, pattern):
    with pytest.raises(error, match=pattern):
        Dense(*args)


def test_bad_rng_is_a_type_error():
    with pytest.raises(TypeError, match=r"^rng: expected None, an int seed or "
                                        r"np\.random\.Generator, got str\.$"):
        Dense(3, 2, rng="seed")


@pytest.mark.parametrize("x, error, pattern", [
    (np.zeros((4, 5)), ValueError,
     r"^Dense\(in_features=3\)\.forward: expected x of shape \(N, 3\), got \(4, 5\)\. "
     r"Check in_features against the previous layer's output\.$"),
    (np.zeros((2, 3, 4, 4)), ValueError,
     r"^Dense\(in_features=3\)\.forward: expected x of shape \(N, 3\), got \(2, 3, 4, 4\)\. "
     r"Did you forget Flatten\(\) before Dense\?$"),
    (np.zeros(3), ValueError, r"expected x of shape \(N, 3\), got \(3,\)\."),
    (np.zeros((0, 3)), ValueError, r"expected a non-empty batch, got shape \(0, 3\)\."),
    (np.zeros((2, 3), dtype=np.int64), TypeError,
     r"expected a floating-point array, got dtype int64\. Convert it with x\.astype"),
    ([[1.0, 2.0, 3.0]], TypeError,
     r"^Dense\(in_features=3\)\.forward: expected x to be a NumPy array of shape \(N, 3\), "
     r"got list\."),
], ids=["features", "4d", "1d", "empty", "int", "list"])
def test_forward_errors(x, error, pattern):
    with pytest.raises(error, match=pattern):
        Dense(3, 2, rng=0).forward(x)
