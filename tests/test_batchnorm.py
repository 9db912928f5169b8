import numpy as np
import pytest

from resnet_np import BatchNorm1d, BatchNorm2d, check_gradients
from resnet_np.layers.batchnorm import BatchNorm1d as BatchNorm1dFromModule


def naive_batchnorm(x, gamma, beta, eps, mean=None, var=None):
    """Channel by channel with explicit loops: the definition, nothing clever."""
    out = np.empty_like(x, dtype=np.float64)
    for c in range(x.shape[1]):
        values = x[:, c].ravel().astype(np.float64)
        m = values.mean() if mean is None else mean[c]
        v = ((values - values.mean()) ** 2).mean() if var is None else var[c]
        out[:, c] = gamma[c] * (x[:, c] - m) / np.sqrt(v + eps) + beta[c]
    return out


def randomise(bn, rng):
    """Non-trivial gamma, beta and running statistics, so every term is exercised."""
    C = bn.num_features
    bn.params["gamma"][:] = rng.uniform(0.5, 2.0, C)
    bn.params["beta"][:] = rng.normal(0.0, 1.0, C)
    bn.buffers["running_mean"][:] = rng.normal(0.0, 1.0, C)
    bn.buffers["running_var"][:] = rng.uniform(0.5, 2.0, C)
    return bn


def test_exports():
    assert BatchNorm1d is BatchNorm1dFromModule


def test_batchnorm1d_hand_computed():
    bn = BatchNorm1d(2, eps=0.0)
    x = np.array([[1.0, 10.0], [3.0, 30.0], [5.0, 20.0]])
    # column 0: mean 3, biased var 8/3; column 1: mean 20, biased var 200/3
    expected = np.array([[-2.0, -10.0], [0.0, 10.0], [2.0, 0.0]]) / np.sqrt([8 / 3, 200 / 3])
    np.testing.assert_allclose(bn(x), expected, rtol=1e-12)
    # running stats: 0.9 * init + 0.1 * (mean, unbiased var = biased * 3 / 2)
    np.testing.assert_allclose(bn.buffers["running_mean"], [0.3, 2.0], rtol=1e-6)
    np.testing.assert_allclose(bn.buffers["running_var"], [0.9 + 0.4, 0.9 + 10.0], rtol=1e-6)


@pytest.mark.parametrize("shape", [(5, 3, 4, 7), (2, 1, 3, 3), (7, 4, 1, 1)])
def test_batchnorm2d_matches_naive_loop(rng, shape):
    bn = randomise(BatchNorm2d(shape[1]), rng).astype(np.float64)
    x = rng.normal(3.0, 2.0, shape)
    expected = naive_batchnorm(x, bn.params["gamma"], bn.params["beta"], bn.eps)
    np.testing.assert_allclose(bn(x), expected, rtol=1e-10, atol=1e-12)


def test_batchnorm1d_matches_naive_loop(rng):
    bn = randomise(BatchNorm1d(6), rng).astype(np.float64)
    x = rng.normal(-1.0, 3.0, (9, 6))
    expected = naive_batchnorm(x, bn.params["gamma"], bn.params["beta"], bn.eps)
    np.testing.assert_allclose(bn(x), expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("make, shape", [(BatchNorm1d, (6, 4)), (BatchNorm2d, (4, 3, 5, 3))])
def test_running_statistics_after_several_steps(rng, make, shape):
    momentum = 0.3
    bn = make(shape[1], momentum=momentum).astype(np.float64)
    axes = (0,) if len(shape) == 2 else (0, 2, 3)
    running_mean, running_var = np.zeros(shape[1]), np.ones(shape[1])
    for _ in range(4):
        x = rng.normal(2.0, 3.0, shape)
        bn(x)
        running_mean = (1 - momentum) * running_mean + momentum * x.mean(axis=axes)
        running_var = (1 - momentum) * running_var + momentum * x.var(axis=axes, ddof=1)
    np.testing.assert_allclose(bn.buffers["running_mean"], running_mean, rtol=1e-12)
    np.testing.assert_allclose(bn.buffers["running_var"], running_var, rtol=1e-12)


@pytest.mark.parametrize("make, shape", [(BatchNorm1d, (5, 4)), (BatchNorm2d, (3, 4, 3, 2))])
def test_eval_uses_running_statistics(rng, make, shape):
    bn = randomise(make(shape[1]), rng).astype(np.float64).eval()
    before = {k: v.copy() for k, v in bn.buffers.items()}
    x = rng.normal(5.0, 4.0, shape)
    expected = naive_batchnorm(x, bn.params["gamma"], bn.params["beta"], bn.eps,
                               bn.buffers["running_mean"], bn.buffers["running_var"])
    np.testing.assert_allclose(bn(x), expected, rtol=1e-12)
    for key, value in before.items():                      # eval never updates them
        np.testing.assert_array_equal(bn.buffers[key], value)
    # a single example is fine in eval mode
    assert bn(x[:1]).shape == (1,) + shape[1:]


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("make, shape", [(BatchNorm1d, (5, 3)), (BatchNorm2d, (3, 2, 3, 5)),
                                         (BatchNorm2d, (3, 4, 1, 1))])
def test_gradients(rng, make, shape, training):
    bn = randomise(make(shape[1]), rng).train(training)
    x = rng.normal(1.0, 2.0, shape)
    report = check_gradients(bn, x)
    report.assert_ok()
    assert [row["name"] for row in report.rows] == ["dx", "gamma", "beta"]


def test_backward_follows_the_mode_of_forward(rng):
    x = rng.normal(size=(4, 3, 2, 2))
    dout = rng.normal(size=x.shape)
    bn = BatchNorm2d(3).astype(np.float64)
    bn(x)
    bn.eval()                                              # switching after forward ...
    dx_train_forward = bn.backward(dout)
    bn.train()
    bn(x)
    np.testing.assert_array_equal(bn.backward(dout), dx_train_forward)   # ... changes nothing


def test_eval_forward_copies_nothing_for_backward(rng):
    # eval: y = x * scale + shift, and the cache holds x itself and per-channel constants
    bn = randomise(BatchNorm2d(3), rng).astype(np.float64).eval()
    x = rng.normal(size=(2, 3, 4, 4))
    bn(x)
    assert bn.cache["x"] is x
    assert [k for k, v in bn.cache.items() if np.ndim(v) > 1] == ["x"]
    bn.train()
    bn(x)                                                  # training keeps x - mean instead
    assert "x" not in bn.cache and bn.cache["x_centered"].shape == x.shape


def test_eval_gradients_of_gamma_and_beta(rng):
    # eval keeps no x - mean: backward rebuilds xhat = (x - running_mean) / std from x
    bn = randomise(BatchNorm2d(3), rng).astype(np.float64).eval()
    x, dout = rng.normal(size=(2, 3, 4, 4)), rng.normal(size=(2, 3, 4, 4))
    bn(x)
    bn.backward(dout)
    std = np.sqrt(bn.buffers["running_var"] + bn.eps)[:, None, None]
    xhat = (x - bn.buffers["running_mean"][:, None, None]) / std
    np.testing.assert_allclose(bn.grads["gamma"], (dout * xhat).sum(axis=(0, 2, 3)), rtol=1e-12)
    np.testing.assert_allclose(bn.grads["beta"], dout.sum(axis=(0, 2, 3)), rtol=1e-12)


def test_eval_backward_is_affine(rng):
    bn = randomise(BatchNorm2d(3), rng).astype(np.float64).eval()
    x, dout = rng.normal(size=(2, 3, 4, 4)), rng.normal(size=(2, 3, 4, 4))
    bn(x)
    dx = bn.backward(dout)
    scale = bn.params["gamma"] / np.sqrt(bn.buffers["running_var"] + bn.eps)
    np.testing.assert_allclose(dx, dout * scale[:, None, None], rtol=1e-12)


def test_training_gradient_sums_to_zero_per_channel(rng):
    # y is invariant to shifting x by a constant per channel, so sum(dx) = 0 per channel
    bn = randomise(BatchNorm2d(4), rng).astype(np.float64)
    bn(rng.normal(size=(3, 4, 5, 5)))
    dx = bn.backward(rng.normal(size=(3, 4, 5, 5)))
    np.testing.assert_allclose(dx.sum(axis=(0, 2, 3)), 0.0, atol=1e-12)


def test_float32_stays_float32(rng):
    bn = BatchNorm2d(4)
    x = rng.normal(3.0, 2.0, (8, 4, 6, 6)).astype(np.float32)
    out = bn(x)
    dx = bn.backward(np.ones_like(out))
    arrays = [out, dx, *bn.grads.values(), *bn.buffers.values(), *bn.cache.values()][:-1]
    assert all(a.dtype == np.float32 for a in arrays)
    reference = naive_batchnorm(x, np.ones(4), np.zeros(4), bn.eps)
    np.testing.assert_allclose(out, reference, rtol=1e-5, atol=1e-5)


def test_shapes_params_buffers_and_cache(rng):
    bn = BatchNorm2d(3)
    assert {k: v.shape for k, v in bn.params.items()} == {"gamma": (3,), "beta": (3,)}
    assert set(bn.grads) == {"gamma", "beta"}
    np.testing.assert_array_equal(bn.params["gamma"], 1.0)
    np.testing.assert_array_equal(bn.params["beta"], 0.0)
    np.testing.assert_array_equal(bn.buffers["running_mean"], 0.0)
    np.testing.assert_array_equal(bn.buffers["running_var"], 1.0)
    x = rng.normal(size=(2, 3, 5, 4)).astype(np.float32)
    assert bn(x).shape == x.shape
    assert bn.cache["x_centered"].shape == x.shape and bn.cache["inv_std"].shape == (3,)
    assert bn.num_parameters() == 6
    assert [name for name, _ in bn.named_buffers()] == ["running_mean", "running_var"]


def test_repr():
    assert repr(BatchNorm2d(16)) == "BatchNorm2d(16)"
    assert repr(BatchNorm1d(4, momentum=0.01, eps=1e-3)) == "BatchNorm1d(4, momentum=0.01, eps=0.001)"


# -- errors ---------------------------------------------------------------------------

def test_error_wrong_ndim():
    with pytest.raises(ValueError, match=r"BatchNorm2d\(3\)\.forward: expected x of shape "
                                         r"\(N, 3, H, W\), got \(4, 3\)\. Use BatchNorm1d"):
        BatchNorm2d(3)(np.zeros((4, 3), dtype=np.float32))
    with pytest.raises(ValueError, match=r"BatchNorm1d\(3\)\.forward: expected x of shape "
                                         r"\(N, 3\), got \(4, 3, 2, 2\)\. Use BatchNorm2d"):
        BatchNorm1d(3)(np.zeros((4, 3, 2, 2), dtype=np.float32))
    with pytest.raises(ValueError, match=r"got \(3, 5, 5\)\. .*add a batch axis with x\[None\]"):
        BatchNorm2d(3)(np.zeros((3, 5, 5), dtype=np.float32))


def test_error_wrong_channel_count():
    with pytest.raises(ValueError, match=r"BatchNorm2d\(16\)\.forward: expected x of shape "
                                         r"\(N, 16, H, W\), got \(2, 8, 4, 4\)\. Set "
                                         r"num_features to .* \(8\)\."):
        BatchNorm2d(16)(np.zeros((2, 8, 4, 4), dtype=np.float32))


def test_error_batch_of_one_when_training():
    with pytest.raises(ValueError, match=r"BatchNorm1d\(3\)\.forward: expected more than 1 "
                                         r"value per channel when training, got x of shape "
                                         r"\(1, 3\)\. .*call eval\(\)"):
        BatchNorm1d(3)(np.zeros((1, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        BatchNorm2d(3)(np.zeros((1, 3, 1, 1), dtype=np.float32))
    assert BatchNorm2d(3)(np.zeros((1, 3, 2, 1), dtype=np.float32)).shape == (1, 3, 2, 1)


def test_error_integer_dtype():
    with pytest.raises(TypeError, match=r"BatchNorm2d\(2\)\.forward: expected a floating-point "
                                        r"array, got dtype int64\. Convert it"):
        BatchNorm2d(2)(np.zeros((2, 2, 3, 3), dtype=np.int64))


def test_error_backward_before_forward():
    with pytest.raises(RuntimeError, match=r"BatchNorm1d\.backward: expected forward to have run"):
        BatchNorm1d(3).backward(np.zeros((2, 3)))


def test_error_bad_constructor_arguments():
    with pytest.raises(ValueError, match=r"BatchNorm2d: expected momentum in \[0, 1\], "
                                         r"got momentum=1.5\."):
        BatchNorm2d(3, momentum=1.5)
    with pytest.raises(ValueError, match=r"BatchNorm1d: expected num_features >= 1, "
                                         r"got num_features=0\."):
        BatchNorm1d(0)
    with pytest.raises(TypeError, match=r"BatchNorm2d: expected num_features to be an int"):
        BatchNorm2d(3.0)


# -- PyTorch parity ------------------------------------------------------------------

@pytest.mark.torch
@pytest.mark.parametrize("dtype, rtol", [(np.float32, 1e-5), (np.float64, 1e-10)])
@pytest.mark.parametrize("make, shape", [(BatchNorm1d, (6, 5)), (BatchNorm2d, (4, 3, 5, 6))])
def test_matches_pytorch(rng, make, shape, dtype, rtol):
    torch = pytest.importorskip("torch")
    C = shape[1]
    ours = randomise(make(C, momentum=0.2), rng).astype(dtype)
    ours.buffers["running_mean"][:] = 0.0                  # torch starts from 0 and 1
    ours.buffers["running_var"][:] = 1.0
    theirs = (torch.nn.BatchNorm1d if make is BatchNorm1d else torch.nn.BatchNorm2d)(
        C, momentum=0.2).to(torch.float64 if dtype == np.float64 else torch.float32)
    with torch.no_grad():
        theirs.weight.copy_(torch.from_numpy(ours.params["gamma"]))
        theirs.bias.copy_(torch.from_numpy(ours.params["beta"]))

    def compare(x, dout):
        xt = torch.from_numpy(x).requires_grad_(True)
        out_t = theirs(xt)
        out_t.backward(torch.from_numpy(dout))
        out = ours(x)
        dx = ours.backward(dout)

        def scale(a):
            return max(1.0, float(np.abs(a).max()))

        for a, t in [(out, out_t), (dx, xt.grad), (ours.grads["gamma"], theirs.weight.grad),
                     (ours.grads["beta"], theirs.bias.grad)]:
            t = t.detach().numpy()
            assert a.dtype == dtype
            np.testing.assert_allclose(a, t, rtol=rtol, atol=rtol * scale(t))
        theirs.weight.grad, theirs.bias.grad = None, None

    for _ in range(3):
        compare(rng.normal(1.0, 2.0, shape).astype(dtype), rng.normal(size=shape).astype(dtype))
    np.testing.assert_allclose(ours.buffers["running_mean"], theirs.running_mean.numpy(), rtol=rtol)
    np.testing.assert_allclose(ours.buffers["running_var"], theirs.running_var.numpy(), rtol=rtol)
    ours.eval(), theirs.eval()
    compare(rng.normal(1.0, 2.0, shape).astype(dtype), rng.normal(size=shape).astype(dtype))


@pytest.mark.parametrize("training", [True, False])
def test_function_budget(rng, library_functions, training):
    """forward: itself, check_array, _rows (and Layer.__setattr__ for the cache), and in
    training the one question to the fast path, split (None: the batch is all here);
    backward: itself, _cached, _rows (split in training). The input check builds no repr
    on success."""
    bn = BatchNorm2d(8).train(training)
    x = rng.standard_normal((2, 8, 4, 4))
    forward = library_functions(bn.forward, x)
    backward = library_functions(bn.backward, np.ones_like(x))
    asked = {"split"} if training else set()
    assert forward == {"_BatchNorm.forward", "check_array", "_rows", "Layer.__setattr__"} | asked
    assert backward == {"_BatchNorm.backward", "Layer._cached", "_rows"} | asked
