"""Gradient checks: they pass on correct layers and FAIL on wrong ones."""
import numpy as np
import pytest

from resnet_np import (Dense, Identity, LeakyReLU, MSELoss, ReLU, Sequential, Sigmoid,
                       SoftmaxCrossEntropy, Tanh, check_gradients, numerical_gradient,
                       rel_error)


# -- numerical_gradient ----------------------------------------------------------------

def test_numerical_gradient_of_a_known_function(rng):
    x = rng.standard_normal((3, 4))
    original = x.copy()
    grad = numerical_gradient(lambda: float(np.sum(np.sin(x) * x ** 2)), x)
    np.testing.assert_allclose(grad, np.cos(x) * x ** 2 + 2 * x * np.sin(x), rtol=1e-7,
                               atol=1e-9)
    np.testing.assert_array_equal(x, original)            # restored after every perturbation
    assert grad.shape == x.shape and grad.dtype == np.float64


def test_numerical_gradient_is_exact_for_a_quadratic():
    x = np.array([1.0, -2.0, 3.0])
    grad = numerical_gradient(lambda: float(x[0] ** 2 + 3 * x[1] * x[2]), x, eps=1e-3)
    np.testing.assert_allclose(grad, [2.0, 9.0, -6.0], rtol=1e-9)


def test_numerical_gradient_rejects_non_contiguous_views():
    x = np.zeros((4, 4))[:, ::2]
    with pytest.raises(ValueError, match=r"^numerical_gradient: expected a C-contiguous array "
                                         r"x, got a non-contiguous view\. Pass "
                                         r"np\.ascontiguousarray\(x\)\.$"):
        numerical_gradient(lambda: 0.0, x)


# -- rel_error -------------------------------------------------------------------------

@pytest.mark.parametrize("a, b, expected", [
    ([1.0, 2.0], [1.0, 2.2], 0.2 / 2.2),
    ([1.0, 2.0], [1.0, 2.0], 0.0),
    ([0.0, 0.0], [0.0, 0.0], 0.0),
    ([3.0, -4.0], [-3.0, 4.0], 8.0 / 4.0),
    ([100.0, 1e-10], [100.0, 2e-10], 1e-12),          # a tiny entry does not dominate
    ([1e-20], [0.0], 1e-20 / 1e-12),                  # both ~0: divided by tiny, not by 0
    ([[1.0, 2.0], [3.0, 4.0]], [[1.0, 2.0], [3.0, 5.0]], 1.0 / 5.0),
])
def test_rel_error_on_known_arrays(a, b, expected):
    assert rel_error(np.array(a), np.array(b)) == pytest.approx(expected, rel=1e-12, abs=0)
    assert rel_error(np.array(b), np.array(a)) == pytest.approx(expected, rel=1e-12, abs=0)


def test_rel_error_is_scale_invariant():
    a, b = np.array([1.0, -2.0, 0.5]), np.array([1.1, -2.0, 0.4])
    assert rel_error(1e6 * a, 1e6 * b) == pytest.approx(rel_error(a, b), rel=1e-12)


# -- check_gradients passes on correct modules -----------------------------------------

def away_from_kink(rng, shape):
    x = rng.standard_normal(shape)
    return np.sign(x) * (0.1 + np.abs(x))


MODULES = {
    "dense": (lambda: Dense(4, 3, rng=0), ["dx", "W", "b"]),
    "relu": (ReLU, ["dx"]),
    "leaky_relu": (lambda: LeakyReLU(0.2), ["dx"]),
    "sigmoid": (Sigmoid, ["dx"]),
    "tanh": (Tanh, ["dx"]),
    "identity": (Identity, ["dx"]),
    "sequential": (lambda: Sequential(Dense(4, 5, rng=0), Tanh(), Dense(5, 3, rng=1)),
                   ["dx", "0.W", "0.b", "2.W", "2.b"]),
}


@pytest.mark.parametrize("name", MODULES)
def test_check_gradients_passes_on_correct_layers(name, rng):
    make, rows = MODULES[name]
    report = check_gradients(make(), away_from_kink(rng, (5, 4)))
    assert report.passed, str(report)
    assert report.assert_ok() is report
    assert [row["name"] for row in report.rows] == rows
    assert report.max_error < 1e-7
    assert all(row["analytic"] > 0 for row in report.rows)   # a real signal was compared


def test_check_gradients_passes_on_a_relu_network(rng):
    net = Sequential(Dense(4, 6, rng=0), ReLU(), Dense(6, 3, rng=1))
    check_gradients(net, rng.standard_normal((5, 4))).assert_ok()


@pytest.mark.parametrize("loss, target", [
    (SoftmaxCrossEntropy, lambda rng: rng.integers(0, 4, 5)),
    (MSELoss, lambda rng: rng.standard_normal((5, 4))),
])
def test_check_gradients_passes_on_both_losses(loss, target, rng):
    report = check_gradients(loss(), rng.standard_normal((5, 4)), target=target(rng))
    assert report.passed, str(report)
    assert [row["name"] for row in report.rows] == ["dx"]


def test_check_gradients_leaves_the_callers_module_untouched(rng):
    layer = Dense(4, 3, rng=0)
    before = {k: v.copy() for k, v in layer.params.items()}
    check_gradients(layer, rng.standard_normal((5, 4)))
    assert layer.cache == {}
    for key, value in layer.params.items():
        assert value.dtype == np.float32
        np.testing.assert_array_equal(value, before[key])


def test_check_gradients_is_deterministic_for_a_seed_and_varies_with_it(rng):
    x = rng.standard_normal((5, 4))
    first = check_gradients(Dense(4, 3, rng=0), x, seed=1)
    again = check_gradients(Dense(4, 3, rng=0), x, seed=1)
    other = check_gradients(Dense(4, 3, rng=0), x, seed=2)
    assert [r["analytic"] for r in first.rows] == [r["analytic"] for r in again.rows]
    assert [r["analytic"] for r in first.rows] != [r["analytic"] for r in other.rows]


def test_report_table_and_lookup(rng):
    report = check_gradients(Dense(4, 3, rng=0), rng.standard_normal((5, 4)))
    lines = str(report).splitlines()
    assert lines[0] == "gradient check: Dense (float64, pass if rel error < 1e-07)"
    assert lines[1].split() == ["tensor", "shape", "max|analytic|", "max|numeric|", "rel",
                                "error", "ok"]
    assert lines[3].split()[:3] == ["dx", "(5,", "4)"] and lines[3].endswith("yes")
    assert lines[4].startswith("W ") and "(3, 4)" in lines[4]
    assert lines[5].startswith("b ") and "(3,)" in lines[5]
    assert lines[-1] == "PASSED"
    assert report["W"] == report.rows[1]["rel_error"]
    with pytest.raises(KeyError):
        report["gamma"]


def test_a_stricter_threshold_fails(rng):
    report = check_gradients(Dense(4, 3, rng=0), rng.standard_normal((5, 4)), threshold=1e-30)
    assert not report.passed and str(report).endswith("FAILED")


# -- check_gradients FAILS on wrong backward passes -------------------------------------

class DoubledDx(Dense):
    """Bug: dx is twice what it should be."""

    def backward(self, dout):
        return 2 * super().backward(dout)


class TransposedDW(Dense):
    """Bug: dW = A^T dZ (D_in, D_out) instead of dZ^T A (D_out, D_in)."""

    def backward(self, dout):
        dx = super().backward(dout)
        self.grads["W"] = self.cache["x"].T @ dout
        return dx


class TransposedSquareDW(Dense):
    """Bug: dW transposed, on a square W, where the shape cannot give it away."""

    def backward(self, dout):
        dx = super().backward(dout)
        self.grads["W"] = self.grads["W"].T
        return dx


class HalvedDb(Dense):
    """Bug: db divided by the batch size a second time."""

    def backward(self, dout):
        dx = super().backward(dout)
        self.grads["b"] = self.grads["b"] / len(dout)
        return dx


@pytest.mark.parametrize("layer, bad_row", [
    (DoubledDx(4, 3, rng=0), "dx"),
    (TransposedDW(4, 3, rng=0), "W"),
    (TransposedSquareDW(4, 4, rng=0), "W"),
    (HalvedDb(4, 3, rng=0), "b"),
], ids=["doubled-dx", "transposed-dW", "transposed-square-dW", "halved-db"])
def test_check_gradients_fails_on_a_wrong_backward(layer, bad_row, rng):
    report = check_gradients(layer, rng.standard_normal((5, 4)))
    assert not report.passed
    failed = [row["name"] for row in report.rows if not row["ok"]]
    assert failed == [bad_row]
    assert report[bad_row] > 1e-2
    with pytest.raises(AssertionError) as info:
        report.assert_ok()
    text = str(info.value)
    assert str(report) in text and text.rstrip().endswith("FAILED")
    bad_line = next(line for line in text.splitlines() if line.startswith(bad_row + " "))
    assert bad_line.endswith("NO")


def test_doubled_dx_gives_a_relative_error_of_one_half(rng):
    report = check_gradients(DoubledDx(4, 3, rng=0), rng.standard_normal((5, 4)))
    assert report["dx"] == pytest.approx(0.5, rel=1e-6)      # |2a - a| / |2a|


def test_a_wrongly_shaped_gradient_is_reported_not_crashed_on(rng):
    report = check_gradients(TransposedDW(4, 3, rng=0), rng.standard_normal((5, 4)))
    assert report["W"] == np.inf
    assert "W: gradient has shape (4, 3), the tensor has shape (3, 4)" in str(report)


# -- a student's own class -------------------------------------------------------------

class StudentAffine:
    """Only the interface: params, grads, forward, backward. No Layer base class."""

    def __init__(self, W, b, bug=1.0):
        self.params = {"W": W, "b": b}
        self.grads = {"W": np.zeros_like(W), "b": np.zeros_like(b)}
        self.bug = bug

    def forward(self, x):
        self.x = x
        return x @ self.params["W"].T + self.params["b"]

    def backward(self, dout):
        self.grads["W"] = self.bug * dout.T @ self.x
        self.grads["b"] = dout.sum(axis=0)
        return dout @ self.params["W"]


class StudentSquare:
    """No parameters at all: out = x ** 2."""

    def forward(self, x):
        self.x = x
        return x ** 2

    def backward(self, dout):
        return 2 * self.x * dout


def test_works_on_a_students_class_without_the_layer_base(rng):
    W = rng.standard_normal((3, 4)).astype(np.float32)
    layer = StudentAffine(W, np.zeros(3, dtype=np.float32))
    report = check_gradients(layer, rng.standard_normal((5, 4)))
    assert report.passed, str(report)
    assert [row["name"] for row in report.rows] == ["dx", "W", "b"]
    assert layer.params["W"].dtype == np.float32 and not hasattr(layer, "x")   # untouched


def test_fails_on_a_students_wrong_class(rng):
    layer = StudentAffine(rng.standard_normal((3, 4)), np.zeros(3), bug=3.0)
    report = check_gradients(layer, rng.standard_normal((5, 4)))
    assert [row["name"] for row in report.rows if not row["ok"]] == ["W"]
    with pytest.raises(AssertionError, match=r"StudentAffine"):
        report.assert_ok()


def test_works_on_a_students_class_without_params(rng):
    report = check_gradients(StudentSquare(), rng.standard_normal((3, 2)))
    assert report.passed and [row["name"] for row in report.rows] == ["dx"]


def test_upstream_gradient_never_equals_data_drawn_from_the_same_seed():
    """Regression: with x from default_rng(0) and seed=0 the upstream gradient used to
    equal x, so dW = x^T x was symmetric and a transposed square dW passed."""
    x = np.random.default_rng(0).standard_normal((5, 4))
    report = check_gradients(TransposedSquareDW(4, 4, rng=1), x, seed=0)
    assert not report.passed and report["W"] > 1e-2
