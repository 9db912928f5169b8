"""residual_mlp and its plain twin."""
import numpy as np
import pytest

from resnet_np import (SGD, Dense, DenseResidualBlock, Identity, SoftmaxCrossEntropy, Tanh,
                       check_gradients, residual_mlp)


def expected_names(num_blocks, skip):
    names = ["stem.W", "stem.b"]
    for j in range(num_blocks):
        names += [f"blocks.{j}.fc{i}.{p}" for i in range(1, skip + 1) for p in "Wb"]
    return names + ["head.W", "head.b"]


@pytest.mark.parametrize("num_blocks", [0, 1, 3])
@pytest.mark.parametrize("skip", [1, 2, 3])
def test_shapes_names_and_depth(num_blocks, skip, rng):
    net = residual_mlp(5, width=6, num_blocks=num_blocks, num_classes=4, skip=skip, rng=0)
    out = net(rng.standard_normal((7, 5)).astype(np.float32))
    assert out.shape == (7, 4) and out.dtype == np.float32
    assert [name for name, _ in net.children()] == ["stem", "stem_act", "blocks", "head"]
    assert [name for name, _ in net.named_parameters()] == expected_names(num_blocks, skip)
    dense = [layer for _, layer in net.named_layers() if isinstance(layer, Dense)]
    assert len(dense) == 2 + num_blocks * skip
    blocks = list(net.blocks)
    assert len(blocks) == num_blocks
    assert all(isinstance(b, DenseResidualBlock) and b.skip == skip for b in blocks)
    assert all(isinstance(b.shortcut, Identity) for b in blocks)
    assert net.num_parameters() == (5 * 6 + 6) + num_blocks * skip * (6 * 6 + 6) + (6 * 4 + 4)
    dx = net.backward(np.ones_like(out))
    assert dx.shape == (7, 5)


@pytest.mark.parametrize("skip", [1, 2, 3])
@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid"])
def test_plain_twin_has_the_same_names_and_initial_weights(skip, activation, rng):
    kwargs = dict(width=6, num_blocks=3, num_classes=4, skip=skip, activation=activation)
    net = residual_mlp(5, rng=3, **kwargs)
    twin = residual_mlp(5, residual=False, rng=3, **kwargs)
    assert [n for n, _ in net.named_parameters()] == [n for n, _ in twin.named_parameters()]
    for (name, p), (_, q) in zip(net.named_parameters(), twin.named_parameters()):
        np.testing.assert_array_equal(p, q, err_msg=name)
    assert all(block.shortcut is None for block in twin.blocks)
    # only the addition differs, so the outputs do
    x = rng.standard_normal((4, 5)).astype(np.float32)
    assert not np.allclose(net(x), twin(x))


def test_activation_is_used_everywhere():
    net = residual_mlp(5, 6, 2, 3, activation="tanh", rng=0)
    assert isinstance(net.stem_act, Tanh)
    assert all(block.activation == "tanh" for block in net.blocks)


def test_rng_reproducibility():
    a = residual_mlp(5, 6, 2, 3, rng=1).state_dict()
    b = residual_mlp(5, 6, 2, 3, rng=np.random.default_rng(1)).state_dict()
    c = residual_mlp(5, 6, 2, 3, rng=2).state_dict()
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not all(np.array_equal(a[k], c[k]) for k in a)


@pytest.mark.parametrize("residual", [True, False])
def test_whole_model_gradient_check(residual, rng):
    net = residual_mlp(3, width=4, num_blocks=2, num_classes=3, activation="tanh",
                       residual=residual, rng=0)
    report = check_gradients(net, rng.standard_normal((4, 3)))
    assert report.passed, str(report)
    assert [row["name"] for row in report.rows] == ["dx"] + expected_names(2, 2)


def test_a_few_sgd_steps_reduce_the_loss(rng):
    x = rng.standard_normal((32, 5)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    net, loss = residual_mlp(5, 8, 2, 2, rng=0), SoftmaxCrossEntropy()
    opt = SGD(net, lr=0.1, momentum=0.9)
    first = loss(net(x), y)
    for _ in range(30):
        loss(net(x), y)
        net.backward(loss.backward())
        opt.step()
    assert loss(net(x), y) < 0.5 * first


@pytest.mark.parametrize("args, kwargs, error, pattern", [
    ((0, 4, 1, 2), {}, ValueError, r"^residual_mlp: expected in_features >= 1, "
                                   r"got in_features=0\.$"),
    ((3, "4", 1, 2), {}, TypeError, r"^residual_mlp: expected width to be an int, got '4'\.$"),
    ((3, 4, -1, 2), {}, ValueError, r"^residual_mlp: expected num_blocks >= 0, "
                                    r"got num_blocks=-1\.$"),
    ((3, 4, 1, 0), {}, ValueError, r"^residual_mlp: expected num_classes >= 1, "
                                   r"got num_classes=0\.$"),
    ((3, 4, 1, 2), {"activation": "gelu"}, ValueError,
     r"^residual_mlp: expected activation one of 'relu', 'leaky_relu', 'sigmoid', 'tanh', "
     r"'identity', got 'gelu'\.$"),
    ((3, 4, 1, 2), {"skip": 0}, ValueError, r"expected skip one of 1, 2, 3, got 0\.$"),
    ((3, 4, 1, 2), {"rng": 1.5}, TypeError, r"^rng: expected None, an int seed"),
], ids=["in_features", "width-type", "num_blocks", "num_classes", "activation", "skip", "rng"])
def test_builder_errors(args, kwargs, error, pattern):
    with pytest.raises(error, match=pattern):
        residual_mlp(*args, **kwargs)


def test_forward_with_the_wrong_feature_count():
    with pytest.raises(ValueError, match=r"^Dense\(in_features=5\)\.forward: expected x of "
                                         r"shape \(N, 5\), got \(2, 4\)\."):
        residual_mlp(5, 6, 1, 3, rng=0)(np.zeros((2, 4), dtype=np.float32))
