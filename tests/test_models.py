"""residual_mlp and its plain twin."""
import numpy as np
import pytest

from resnet_np import (SGD, Dense, DenseResidualBlock, Identity, SoftmaxCrossEntropy, Tanh,
                       check_gradients, numerical_gradient, rel_error, residual_mlp)
from resnet_np.models import UNetTiny, resnet18, resnet34, resnet_cifar, unet_tiny


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


# -- resnet_cifar ----------------------------------------------------------------------



def test_resnet20_option_a_has_the_papers_parameter_count():
    assert resnet_cifar(20, shortcut="A", rng=0).num_parameters() == 269_722


@pytest.mark.parametrize("depth,blocks", [(8, 1), (20, 3), (56, 9)])
def test_resnet_cifar_layout(depth, blocks):
    model = resnet_cifar(depth, rng=0)
    assert [len(model[f"stage{s}"]) for s in (1, 2, 3)] == [blocks] * 3
    convs = [name for name, _ in model.named_parameters() if name.endswith("conv1.W")
             or name.endswith("conv2.W") or name == "stem.conv.W"]
    assert len(convs) + 1 == depth          # weight layers: convs + fc
    assert model.stage2[0].stride == 2 and model.stage3[0].stride == 2


@pytest.mark.parametrize("variant", ["post", "pre"])
def test_resnet_cifar_forward_backward_shapes(variant, rng):
    model = resnet_cifar(8, num_classes=5, in_channels=1, width=4, variant=variant, rng=0)
    x = rng.standard_normal((2, 1, 12, 12)).astype(np.float32)
    out = model(x)
    assert out.shape == (2, 5) and out.dtype == np.float32
    assert model.backward(np.ones_like(out)).shape == x.shape
    assert ("final" in dict(model.children())) == (variant == "pre")


@pytest.mark.parametrize("variant", ["post", "pre"])
@pytest.mark.parametrize("shortcut", ["A", "B"])
def test_resnet_cifar_plain_twin_has_same_names_and_initial_weights(variant, shortcut):
    residual = resnet_cifar(8, width=4, variant=variant, shortcut=shortcut, rng=7)
    plain = resnet_cifar(8, width=4, variant=variant, shortcut=shortcut, residual=False, rng=7)
    res_params = dict(residual.named_parameters())
    plain_params = dict(plain.named_parameters())
    assert set(plain_params) <= set(res_params)
    if shortcut == "A":
        assert set(plain_params) == set(res_params)
    for name, value in plain_params.items():
        np.testing.assert_array_equal(value, res_params[name], err_msg=name)
    for block in plain.stage2:
        assert block.shortcut is None


def test_resnet_cifar_gradient_check(rng):
    model = resnet_cifar(8, num_classes=3, width=2, variant="pre", rng=0)
    check_gradients(model, rng.standard_normal((2, 3, 8, 8))).assert_ok()


@pytest.mark.parametrize("kwargs,error,pattern", [
    ({"depth": 21}, ValueError, r"resnet_cifar: expected depth = 6n \+ 2 \(8, 14, 20, .*got depth=21"),
    ({"variant": "mid"}, ValueError, "resnet_cifar: expected variant one of 'post', 'pre'"),
    ({"shortcut": "D"}, ValueError, "resnet_cifar: expected shortcut one of"),
    ({"width": 0}, ValueError, "resnet_cifar: expected width >= 1"),
])
def test_resnet_cifar_errors(kwargs, error, pattern):
    with pytest.raises(error, match=pattern):
        resnet_cifar(**kwargs)


# -- unet_tiny -----------------------------------------------------------------------------


def test_unet_tiny_layout_and_shapes(rng):
    net = unet_tiny(3, 2, width=4, levels=2, rng=0)
    assert [name for name, _ in net.children()] == [
        "enc0", "pool0", "enc1", "pool1", "bottleneck", "up1", "cat1", "dec1", "up0", "cat0",
        "dec0", "head"]
    widths = {name: layer.conv2.params["W"].shape[0] for name, layer in net.children()
              if name.startswith(("enc", "dec", "bottle"))}
    assert widths == {"enc0": 4, "enc1": 8, "bottleneck": 16, "dec1": 8, "dec0": 4}
    assert net.dec1.conv1.params["W"].shape == (8, 16 + 8, 3, 3)      # upsampled + skip
    x = rng.random((2, 3, 8, 12))
    out = net(x)
    assert out.shape == (2, 2, 8, 12)
    assert net.backward(np.ones_like(out)).shape == x.shape
    names = [name for name, _ in net.named_parameters()]
    assert names[:3] == ["enc0.conv1.W", "enc0.bn1.gamma", "enc0.bn1.beta"]
    assert names[-2:] == ["head.W", "head.b"]
    assert "enc0.bn1.running_mean" in net.state_dict()
    assert repr(net).startswith("UNetTiny(3, 2, width=4, levels=2\n  (enc0): Sequential(")


def test_unet_tiny_without_long_skips_shares_all_but_the_decoders_first_convs():
    net, twin = unet_tiny(3, 2, rng=5), unet_tiny(3, 2, long_skips=False, rng=5)
    assert [n for n, _ in twin.children()] == [
        "enc0", "pool0", "enc1", "pool1", "bottleneck", "up1", "dec1", "up0", "dec0", "head"]
    a, b = dict(net.named_parameters()), dict(twin.named_parameters())
    assert list(a) == list(b)
    differ = [k for k in a if a[k].shape != b[k].shape or not np.array_equal(a[k], b[k])]
    assert differ == ["dec1.conv1.W", "dec0.conv1.W"]
    assert twin.dec0.conv1.params["W"].shape == (8, 16, 3, 3)
    assert repr(twin).startswith("UNetTiny(3, 2, width=8, levels=2, long_skips=False")


def test_unet_tiny_gradient_check(rng):
    # every parameter and dx, one level (Concat's split and the added skip gradient)
    net = unet_tiny(2, 2, width=2, levels=1, long_skips=True, rng=1)
    report = check_gradients(net, rng.normal(size=(3, 2, 4, 4)))
    report.assert_ok()
    assert report.max_error < 1e-7


@pytest.mark.parametrize("long_skips", [True, False])
def test_unet_tiny_two_levels_dx_matches_central_differences(rng, long_skips):
    # dx depends on every path, so a level whose skip gradient went to the wrong
    # encoder shows here; checking dx alone keeps the two-level check fast.
    net = unet_tiny(1, 2, width=2, levels=2, long_skips=long_skips, rng=1).astype(np.float64)
    x = rng.normal(size=(2, 1, 8, 8))
    upstream = rng.normal(size=(2, 2, 8, 8))
    net(x)
    dx = net.backward(upstream)
    numeric = numerical_gradient(lambda: float(np.sum(net(x) * upstream)), x)
    assert rel_error(dx, numeric) < 1e-7


def test_unet_tiny_gradient_check_catches_a_dropped_skip_gradient(rng):
    class DropsSkipGradient(UNetTiny):
        def backward(self, dout):
            self.cat0.backward = lambda d: (np.zeros_like(d[:, :1]), d[:, 1:])
            return super().backward(dout)
    net = DropsSkipGradient(1, 2, width=1, levels=1, rng=1)
    assert not check_gradients(net, rng.normal(size=(2, 1, 4, 4))).passed


def test_unet_tiny_trains_on_a_few_masks(rng):
    from resnet_np import load_builtin
    (X, _, M), _ = load_builtin(with_masks=True, n_train=32, n_test=1)
    net = unet_tiny(3, 2, width=4, rng=0)
    loss, opt = SoftmaxCrossEntropy(), SGD(net, lr=0.1, momentum=0.9)
    first = loss(net(X), M)
    for _ in range(10):
        loss(net(X), M)
        net.backward(loss.backward())
        opt.step()
    assert loss(net(X), M) < 0.7 * first


def test_unet_tiny_errors():
    net = unet_tiny(3, 2, levels=2)
    with pytest.raises(ValueError, match=r"^UNetTiny\(3, 2, width=8, levels=2\)\.forward: expected "
                                         r"H and W divisible by 2\^levels = 4, got 6 x 8\. "):
        net(np.zeros((1, 3, 6, 8)))
    with pytest.raises(ValueError, match=r"UNetTiny\(.*\)\.forward: expected x of shape "
                                         r"\(N, 3, H, W\), got \(1, 1, 8, 8\)\. Images are NCHW"):
        net(np.zeros((1, 1, 8, 8)))
    with pytest.raises(ValueError, match=r"^UNetTiny: expected levels >= 1, got levels=0\."):
        unet_tiny(3, 2, levels=0)
    with pytest.raises(RuntimeError, match=r"^UNetTiny\.backward: expected forward to have run"):
        unet_tiny(3, 2).backward(np.zeros((1, 2, 4, 4)))


# -- resnet18 / resnet34 (torchvision's layout) ------------------------------------------


@pytest.mark.parametrize("build, params, blocks", [(resnet18, 11689512, [2, 2, 2, 2]),
                                                   (resnet34, 21797672, [3, 4, 6, 3])])
def test_imagenet_resnets_have_torchvisions_parameter_counts(build, params, blocks):
    model = build(rng=0)
    assert model.num_parameters() == params       # torchvision.models.resnet18() / resnet34()
    assert [name for name, _ in model.children()] == [
        "conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4", "avgpool", "fc"]
    assert [len(model[f"layer{i}"]) for i in range(1, 5)] == blocks
    assert build(num_classes=10, rng=0).num_parameters() == params - 990 * 513


def test_resnet18_layout_and_shapes(rng):
    model = resnet18(num_classes=7, in_channels=1, rng=rng)
    assert repr(model.conv1) == "Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)"
    assert [type(b.shortcut).__name__ for i in range(1, 5) for b in model[f"layer{i}"]] == \
        ["Identity"] * 2 + ["Projection", "Identity"] * 3
    assert [b.stride for i in range(1, 5) for b in model[f"layer{i}"]] == [1, 1] + [2, 1] * 3
    names = dict(model.named_parameters())
    assert names["layer2.0.shortcut.conv.W"].shape == (128, 64, 1, 1)
    assert names["fc.W"].shape == (7, 512)
    x = rng.standard_normal((2, 1, 40, 36)).astype(np.float32)
    out = model.forward(x)
    assert out.shape == (2, 7) and out.dtype == np.float32
    assert model.backward(np.ones_like(out)).shape == x.shape


def test_resnet18_rng_reproducibility():
    a, b = resnet18(num_classes=3, rng=5), resnet18(num_classes=3, rng=5)
    assert all(np.array_equal(p, q) for (_, p), (_, q) in
               zip(a.named_parameters(), b.named_parameters()))
    assert not np.array_equal(a.fc.params["W"], resnet18(num_classes=3, rng=6).fc.params["W"])


@pytest.mark.parametrize("build, kwargs, error, pattern", [
    (resnet18, {"num_classes": 0}, ValueError, r"^resnet18: expected num_classes >= 1, got num_classes=0\."),
    (resnet34, {"in_channels": 2.0}, TypeError, r"^resnet34: expected in_channels to be an int, got 2\.0\."),
])
def test_imagenet_resnet_errors(build, kwargs, error, pattern):
    with pytest.raises(error, match=pattern):
        build(**kwargs)
