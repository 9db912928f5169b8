"""SoftmaxCrossEntropy and MSELoss: values, stability, gradients, errors."""
import warnings

import numpy as np
import pytest

from resnet_np import MSELoss, SoftmaxCrossEntropy, check_gradients

LN2, LN3, LN4 = np.log(2.0), np.log(3.0), np.log(4.0)
# Row 0: exp -> (1, 2, 1), softmax (1/4, 1/2, 1/4), label 1: loss ln 2.
# Row 1: exp -> (3, 1, 4), softmax (3/8, 1/8, 1/2), label 0: loss ln(8/3).
LOGITS = np.array([[0.0, LN2, 0.0], [LN3, 0.0, LN4]])
LABELS = np.array([1, 0])
LOSS = (LN2 + np.log(8.0 / 3.0)) / 2
DLOGITS = np.array([[1 / 4, 1 / 2 - 1, 1 / 4], [3 / 8 - 1, 1 / 8, 1 / 2]]) / 2


def softmax_reference(z):
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def test_cross_entropy_value_on_fixed_logits():
    loss = SoftmaxCrossEntropy()
    value = loss(LOGITS, LABELS)
    assert isinstance(value, float)
    assert value == pytest.approx(LOSS, rel=1e-14)


def test_cross_entropy_backward_on_fixed_logits():
    loss = SoftmaxCrossEntropy()
    loss(LOGITS, LABELS)
    np.testing.assert_allclose(loss.backward(), DLOGITS, rtol=1e-13, atol=1e-16)
    np.testing.assert_allclose(loss.backward(3.0), 3.0 * DLOGITS, rtol=1e-13, atol=1e-16)


def test_cross_entropy_backward_is_softmax_minus_onehot_over_n(rng):
    N, C = 7, 5
    logits, y = rng.standard_normal((N, C)), rng.integers(0, C, N)
    loss = SoftmaxCrossEntropy()
    value = loss(logits, y)
    probs = softmax_reference(logits)
    assert value == pytest.approx(-np.mean(np.log(probs[np.arange(N), y])), rel=1e-12)
    np.testing.assert_allclose(loss.backward(), (probs - np.eye(C)[y]) / N, rtol=1e-12,
                               atol=1e-15)


def test_cross_entropy_is_stable_for_logits_of_1e4():
    logits = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, 1e4], [1e4, 1e4, 1e4]])
    y = np.array([0, 0, 2])
    loss = SoftmaxCrossEntropy()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        value = loss(logits, y)
        dlogits = loss.backward()
    # row 0: ~0; row 1: 1e4 - (-1e4) = 2e4; row 2: three equal logits, ln 3.
    assert np.isfinite(value)
    assert value == pytest.approx((0.0 + 2e4 + LN3) / 3, rel=1e-14)
    expected = np.array([[0.0, 0.0, 0.0], [-1.0, 0.0, 1.0], [1 / 3, 1 / 3, 1 / 3 - 1]]) / 3
    np.testing.assert_allclose(dlogits, expected, rtol=1e-12, atol=1e-300)


def test_cross_entropy_is_shift_invariant(rng):
    logits, y = rng.standard_normal((4, 3)), np.array([0, 1, 2, 1])
    assert SoftmaxCrossEntropy()(logits + 1e4, y) == pytest.approx(
        SoftmaxCrossEntropy()(logits, y), rel=1e-9)


def test_cross_entropy_gradient_check(rng):
    logits, y = rng.standard_normal((6, 4)), rng.integers(0, 4, 6)
    report = check_gradients(SoftmaxCrossEntropy(), logits, target=y)
    report.assert_ok()
    assert [row["name"] for row in report.rows] == ["dx"]


def test_cross_entropy_accepts_labels_as_a_list():
    assert SoftmaxCrossEntropy()(LOGITS, [1, 0]) == pytest.approx(LOSS, rel=1e-14)


@pytest.mark.parametrize("y, error, pattern", [
    (np.array([0, 3]), ValueError,
     r"^SoftmaxCrossEntropy\.forward: expected labels in \[0, 2\], got values from 0 to 3\. "
     r"Check num_classes of the last layer\.$"),
    (np.array([-1, 1]), ValueError, r"expected labels in \[0, 2\], got values from -1 to 1\."),
    (np.array([[1], [0]]), ValueError,
     r"^SoftmaxCrossEntropy\.forward: expected labels of shape \(2,\), one per example, "
     r"got shape \(2, 1\)\.$"),
    (np.array([1, 0, 2]), ValueError, r"expected labels of shape \(2,\), one per example, "
                                      r"got shape \(3,\)\."),
    (np.array([1.0, 0.0]), TypeError,
     r"^SoftmaxCrossEntropy\.forward: expected integer class labels, got dtype float64\. "
     r"Convert them with y\.astype\(np\.int64\)\.$"),
    (np.array([True, False]), TypeError, r"expected integer class labels, got dtype bool\."),
], ids=["too-big", "negative", "column", "too-many", "float", "bool"])
def test_cross_entropy_bad_labels(y, error, pattern):
    with pytest.raises(error, match=pattern):
        SoftmaxCrossEntropy()(LOGITS, y)


@pytest.mark.parametrize("logits, error, pattern", [
    (np.zeros(3), ValueError,
     r"^SoftmaxCrossEntropy\.forward: expected x of shape \(N, C\) logits, got \(3,\)\. "
     r"For a single example add a batch axis with x\[None\]\.$"),
    (np.zeros((2, 3), dtype=np.int64), TypeError,
     r"^SoftmaxCrossEntropy\.forward: expected a floating-point array, got dtype int64\."),
    ([[0.0, 1.0]], TypeError, r"^SoftmaxCrossEntropy\.forward: expected x to be a NumPy array"),
])
def test_cross_entropy_bad_logits(logits, error, pattern):
    with pytest.raises(error, match=pattern):
        SoftmaxCrossEntropy()(logits, np.array([0, 1]))


@pytest.mark.parametrize("loss, call", [(SoftmaxCrossEntropy, r"forward\(logits, y\)"),
                                        (MSELoss, r"forward\(prediction, target\)")])
def test_backward_before_forward(loss, call):
    with pytest.raises(RuntimeError, match=rf"^{loss.__name__}\.backward: expected forward to "
                                           rf"have run first, got an empty cache\. Call {call}"):
        loss().backward()


# -- MSELoss -------------------------------------------------------------------------

def test_mse_value_and_gradient_by_hand():
    prediction = np.array([[1.0, 2.0], [3.0, 4.0]])
    target = np.array([[0.0, 2.0], [5.0, 1.0]])          # diff 1, 0, -2, 3
    mse = MSELoss()
    assert mse(prediction, target) == 14.0 / 4
    np.testing.assert_array_equal(mse.backward(), [[0.5, 0.0], [-1.0, 1.5]])
    np.testing.assert_array_equal(mse.backward(2.0), [[1.0, 0.0], [-2.0, 3.0]])


@pytest.mark.parametrize("shape", [(5,), (4, 3), (2, 3, 2)])
def test_mse_gradient_check(shape, rng):
    prediction, target = rng.standard_normal(shape), rng.standard_normal(shape)
    check_gradients(MSELoss(), prediction, target=target).assert_ok()


@pytest.mark.parametrize("prediction, target, error, pattern", [
    (np.zeros((2, 2)), np.zeros(2), ValueError,
     r"^MSELoss\.forward: expected target of the prediction's shape \(2, 2\), "
     r"got shape \(2,\)\.$"),
    (np.zeros((2, 2)), np.zeros((2, 2, 1)), ValueError,
     r"expected target of the prediction's shape \(2, 2\), got shape \(2, 2, 1\)\."),
    (np.zeros(2, dtype=np.int64), np.zeros(2), TypeError,
     r"^MSELoss\.forward: expected a floating-point array, got dtype int64\."),
    (np.array(1.0), np.array(0.0), ValueError,
     r"^MSELoss\.forward: expected x of shape \(N, \.\.\.\), got \(\)\.$"),
], ids=["fewer-dims", "more-dims", "int", "0-d"])
def test_mse_errors(prediction, target, error, pattern):
    with pytest.raises(error, match=pattern):
        MSELoss()(prediction, target)


def test_repr():
    assert repr(SoftmaxCrossEntropy()) == "SoftmaxCrossEntropy()"
    assert repr(MSELoss()) == "MSELoss()"


# -- SoftmaxCrossEntropy over (N, C, H, W) logits: one classification per pixel ------------
def test_cross_entropy_per_pixel_equals_rows_loss(rng):
    logits = rng.normal(size=(2, 3, 4, 5))
    masks = rng.integers(0, 3, size=(2, 4, 5))
    rows = np.moveaxis(logits, 1, -1).reshape(-1, 3)          # reference: one row per pixel
    by_rows = SoftmaxCrossEntropy()
    expected = by_rows(rows, masks.reshape(-1))
    loss = SoftmaxCrossEntropy()
    assert loss(logits, masks) == pytest.approx(expected, rel=1e-14)
    dlogits = loss.backward()
    assert dlogits.shape == logits.shape and dlogits.flags.c_contiguous
    np.testing.assert_allclose(np.moveaxis(dlogits, 1, -1).reshape(-1, 3), by_rows.backward(),
                               rtol=1e-14)
    # mean over all 40 pixels, as torch.nn.CrossEntropyLoss: each pixel's softmax - onehot / 40
    p = softmax_reference(rows[:1])
    p[0, masks[0, 0, 0]] -= 1
    np.testing.assert_allclose(dlogits[0, :, 0, 0], p[0] / 40, rtol=1e-12)


def test_cross_entropy_per_pixel_gradient_check(rng):
    logits = rng.normal(size=(2, 2, 3, 3))
    masks = rng.integers(0, 2, size=(2, 3, 3))
    report = check_gradients(SoftmaxCrossEntropy(), logits, target=masks)
    assert report.passed and report["dx"] < 1e-7


def test_cross_entropy_2d_after_per_pixel_forgets_the_pixel_shape(rng):
    loss = SoftmaxCrossEntropy()
    loss(rng.normal(size=(1, 2, 2, 2)), np.zeros((1, 2, 2), dtype=np.int64))
    loss(np.zeros((2, 4)), np.array([0, 3]))
    assert loss.backward().shape == (2, 4)


def test_cross_entropy_per_pixel_float32_stays_float32(rng):
    loss = SoftmaxCrossEntropy()
    loss(rng.normal(size=(2, 2, 3, 3)).astype(np.float32), np.ones((2, 3, 3), dtype=np.int64))
    assert loss.backward().dtype == np.float32


@pytest.mark.parametrize("y, error, pattern", [
    (np.zeros((2, 4, 4), dtype=np.int64), ValueError,
     r"^SoftmaxCrossEntropy\.forward: expected labels of shape \(2, 3, 3\), one per position of "
     r"logits \(2, 2, 3, 3\), got shape \(2, 4, 4\)\. Labels hold class indices"),
    (np.zeros((2, 2, 3, 3), dtype=np.int64), ValueError, r"got shape \(2, 2, 3, 3\)\."),
    (np.full((2, 3, 3), 2), ValueError, r"expected labels in \[0, 1\], got values from 2 to 2\."),
    (np.zeros((2, 3, 3)), TypeError, r"expected integer class labels, got dtype float64\."),
], ids=["wrong-size", "one-hot", "too-big", "float"])
def test_cross_entropy_per_pixel_bad_labels(y, error, pattern):
    with pytest.raises(error, match=pattern):
        SoftmaxCrossEntropy()(np.zeros((2, 2, 3, 3)), y)
