"""PyTorch names: to_torch_state_dict, load_torch_state_dict and torch_names (resnet_np.io).

The first half needs no torch: names, shapes, round trips and error messages. The second
half (marked torch) builds torchvision's resnet18 in torch, module for module with
torchvision's names (the torchvision package does not install beside the local torch),
and checks that its weights give the same logits and gradients in our resnet18.
"""
import numpy as np
import pytest

from resnet_np import (BasicBlock, SoftmaxCrossEntropy, load_torch_state_dict, resnet18,
                       resnet34, resnet_cifar, to_torch_state_dict, torch_names)
from resnet_np.gradcheck import rel_error


def randomize(model, rng):
    """Non-trivial BN gamma/beta and running statistics, so every array is distinct."""
    for name, array in list(model.named_parameters()) + list(model.named_buffers()):
        if not name.endswith(("W", "b")):
            positive = name.endswith(("gamma", "running_var"))
            array[...] = positive + (0.5 if positive else 1) * rng.uniform(0.1, 1, array.shape)
    return model


# -- names and shapes, no torch needed --------------------------------------------------
def test_resnet18_keys_are_torchvisions(rng):
    state = to_torch_state_dict(resnet18(rng=rng))
    assert len(state) == 122                      # torchvision resnet18().state_dict()
    assert list(state)[:6] == ["conv1.weight", "bn1.weight", "bn1.bias", "bn1.running_mean",
                               "bn1.running_var", "bn1.num_batches_tracked"]
    assert list(state)[-2:] == ["fc.weight", "fc.bias"]
    expected = {"layer1.0.conv1.weight": (64, 64, 3, 3), "layer1.1.bn2.running_var": (64,),
                "layer2.0.downsample.0.weight": (128, 64, 1, 1),
                "layer2.0.downsample.1.weight": (128,), "layer4.1.conv2.weight": (512, 512, 3, 3),
                "fc.weight": (1000, 512), "fc.bias": (1000,)}
    assert {k: state[k].shape for k in expected} == expected
    assert not [k for k in state if "shortcut" in k or "relu" in k or k.endswith(("W", "gamma"))]
    assert "layer1.0.downsample.0.weight" not in state          # identity where shapes match
    assert len(to_torch_state_dict(resnet34(rng=rng))) == 218


def test_num_batches_tracked_is_a_zero_int64_scalar_per_batchnorm(rng):
    state = to_torch_state_dict(resnet_cifar(8, rng=rng))
    counters = {k: v for k, v in state.items() if k.endswith("num_batches_tracked")}
    bn_count = sum(1 for k in state if k.endswith("running_mean"))
    assert len(counters) == bn_count == 7          # stem + 2 per block, option A: no projection
    assert all(v.dtype == np.int64 and v.shape == () and v == 0 for v in counters.values())


@pytest.mark.parametrize("variant, shortcut, present, absent", [
    ("post", "A", ["conv1.weight", "bn1.weight", "layer3.2.bn2.bias", "fc.weight"],
     ["bn.weight", "layer2.0.downsample.0.weight"]),
    ("pre", "B", ["conv1.weight", "bn.running_var", "layer2.0.downsample.0.weight",
                  "layer2.0.downsample.1.running_mean", "layer1.0.bn1.weight"],
     ["bn1.weight", "layer1.0.downsample.0.weight"]),
])
def test_resnet_cifar_layout(variant, shortcut, present, absent, rng):
    state = to_torch_state_dict(resnet_cifar(20, variant=variant, shortcut=shortcut, rng=rng))
    assert all(k in state for k in present), [k for k in present if k not in state]
    assert not [k for k in absent if k in state]
    assert state["layer1.0.bn1.weight"].shape == (16,)


def test_torch_names_is_one_to_one_and_covers_state_dict(rng):
    model = resnet_cifar(8, variant="pre", shortcut="C", rng=rng)
    names = torch_names(model)
    assert sorted(names) == sorted(model.state_dict())
    assert len(set(names.values())) == len(names)
    assert names["stage2.0.shortcut.bn.gamma"] == "layer2.0.downsample.1.weight"
    assert names["final.bn.beta"] == "bn.bias"
    assert set(names.values()) | {k for k in to_torch_state_dict(model)
                                  if k.endswith("num_batches_tracked")} \
        == set(to_torch_state_dict(model))


@pytest.mark.parametrize("build", [lambda rng: resnet18(num_classes=5, rng=rng),
                                   lambda rng: resnet_cifar(8, variant="pre", shortcut="B", rng=rng),
                                   lambda rng: BasicBlock(4, 8, stride=2, shortcut="C", rng=rng)],
                         ids=["resnet18", "resnet_cifar-pre-B", "block"])
def test_round_trip_copies_every_parameter_and_buffer(build, rng):
    source, target = randomize(build(rng), rng), build(rng)
    state = to_torch_state_dict(source)
    assert load_torch_state_dict(target, state) is target
    for (name, a), (_, b) in zip(source.state_dict().items(), target.state_dict().items()):
        np.testing.assert_array_equal(a, b, err_msg=name)
    state[next(iter(state))][...] += 1            # the state holds copies
    assert not np.array_equal(state[next(iter(state))],
                              next(iter(source.named_parameters()))[1])


def test_dtype_kept_on_export_and_cast_on_load(rng):
    model = resnet_cifar(8, rng=rng).astype(np.float64)
    assert to_torch_state_dict(model)["fc.weight"].dtype == np.float64
    target = resnet_cifar(8, rng=1)
    load_torch_state_dict(target, to_torch_state_dict(model))
    assert target.fc.params["W"].dtype == np.float32
    np.testing.assert_allclose(target.fc.params["W"], model.fc.params["W"], rtol=1e-6)


def test_num_batches_tracked_of_any_value_is_accepted_and_optional(rng):
    source, target = resnet_cifar(8, rng=rng), resnet_cifar(8, rng=1)
    state = to_torch_state_dict(source)
    state["bn1.num_batches_tracked"] = np.array(391, dtype=np.int64)
    load_torch_state_dict(target, state)
    without = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    load_torch_state_dict(target, without)       # strict, and still complete
    np.testing.assert_array_equal(target.fc.params["W"], source.fc.params["W"])


def test_every_bad_key_is_reported_by_its_torch_name_and_nothing_changes(rng):
    model = resnet_cifar(8, rng=rng)
    before = model.state_dict()
    state = to_torch_state_dict(resnet_cifar(8, rng=1))
    del state["fc.bias"]
    state["linear.weight"] = state.pop("fc.weight")
    state["layer1.0.conv1.weight"] = np.zeros((16, 16, 1, 1), dtype=np.float32)
    state["fc.num_batches_tracked"] = np.array(0)   # fc is no BatchNorm: unexpected
    with pytest.raises(ValueError, match=r"resnet_np.io.load_torch_state_dict: .*expected the "
                       r"keys and shapes.*missing keys \['fc.weight', 'fc.bias'\]; unexpected keys "
                       r"\['linear.weight', 'fc.num_batches_tracked'\]; wrong shapes "
                       r"\[layer1.0.conv1.weight: expected \(16, 16, 3, 3\), got \(16, 16, 1, 1\)\]"):
        load_torch_state_dict(model, state)
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(value, before[name], err_msg=name)


def test_strict_false_loads_what_matches_but_not_wrong_shapes(rng):
    model, source = resnet_cifar(8, rng=rng), resnet_cifar(8, rng=1)
    state = {k: v for k, v in to_torch_state_dict(source).items() if k.startswith("fc.")}
    state["extra.weight"] = np.zeros(3)
    load_torch_state_dict(model, state, strict=False)
    np.testing.assert_array_equal(model.fc.params["W"], source.fc.params["W"])
    assert not np.array_equal(model.stem.conv.params["W"], source.stem.conv.params["W"])
    state["fc.bias"] = np.zeros(11, dtype=np.float32)
    with pytest.raises(ValueError, match=r"wrong shapes \[fc.bias: expected \(10,\), got \(11,\)\]"):
        load_torch_state_dict(model, state, strict=False)


def test_our_own_names_are_not_torch_names(rng):
    model = resnet_cifar(8, rng=rng)
    with pytest.raises(ValueError, match=r"missing keys \['conv1.weight'.*unexpected keys "
                       r"\['stem.conv.W'"):
        load_torch_state_dict(model, model.state_dict())


def test_state_must_be_a_mapping(rng):
    with pytest.raises(TypeError, match=r"resnet_np.io.load_torch_state_dict: expected a dict of "
                       r"PyTorch name -> array, got list. Pass \{k: v.numpy\(\)"):
        load_torch_state_dict(resnet_cifar(8, rng=rng), list(to_torch_state_dict(resnet_cifar(8))))


# -- torchvision's resnet18, written in torch ---------------------------------------------
def torchvision_resnet(torch, layers, num_classes=1000):
    """torchvision.models.resnet.ResNet with BasicBlock: same modules, names, init."""
    nn = torch.nn

    class TVBasicBlock(nn.Module):
        def __init__(self, inplanes, planes, stride=1, downsample=None):
            super().__init__()
            self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(planes)
            self.relu = nn.ReLU(inplace=True)
            self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(planes)
            self.downsample = downsample

        def forward(self, x):
            identity = x if self.downsample is None else self.downsample(x)
            out = self.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            return self.relu(out + identity)

    class TVResNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.inplanes = 64
            self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
            self.bn1 = nn.BatchNorm2d(64)
            self.relu = nn.ReLU(inplace=True)
            self.maxpool = nn.MaxPool2d(3, 2, 1)
            self.layer1 = self._make_layer(64, layers[0])
            self.layer2 = self._make_layer(128, layers[1], stride=2)
            self.layer3 = self._make_layer(256, layers[2], stride=2)
            self.layer4 = self._make_layer(512, layers[3], stride=2)
            self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
            self.fc = nn.Linear(512, num_classes)
            for m in self.modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

        def _make_layer(self, planes, blocks, stride=1):
            downsample = None
            if stride != 1 or self.inplanes != planes:
                downsample = nn.Sequential(nn.Conv2d(self.inplanes, planes, 1, stride, bias=False),
                                           nn.BatchNorm2d(planes))
            layers_ = [TVBasicBlock(self.inplanes, planes, stride, downsample)]
            self.inplanes = planes
            layers_ += [TVBasicBlock(planes, planes) for _ in range(1, blocks)]
            return nn.Sequential(*layers_)

        def forward(self, x):
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            return self.fc(torch.flatten(self.avgpool(x), 1))

    return TVResNet()


def trained_torch_resnet18(torch, num_classes=10):
    """Random weights, random BN affine parameters, running statistics from 3 batches."""
    torch.manual_seed(0)
    net = torchvision_resnet(torch, [2, 2, 2, 2], num_classes)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
        for _ in range(3):
            net(torch.randn(4, 3, 32, 32))
    return net


@pytest.mark.torch
def test_torchvision_resnet18_has_our_parameter_count_and_names():
    torch = pytest.importorskip("torch")
    net = torchvision_resnet(torch, [2, 2, 2, 2])
    assert sum(p.numel() for p in net.parameters()) == 11689512
    assert list(net.state_dict()) == list(to_torch_state_dict(resnet18(rng=0)))
    net34 = torchvision_resnet(torch, [3, 4, 6, 3])
    assert sum(p.numel() for p in net34.parameters()) == 21797672


@pytest.mark.torch
def test_torch_resnet18_weights_give_the_same_eval_logits(rng):
    torch = pytest.importorskip("torch")
    net = trained_torch_resnet18(torch)
    state = {k: v.numpy() for k, v in net.state_dict().items()}
    assert int(state["bn1.num_batches_tracked"]) == 3
    model = load_torch_state_dict(resnet18(num_classes=10, rng=rng), state)
    x = rng.standard_normal((2, 3, 64, 64)).astype(np.float32)
    with torch.no_grad():
        expected = net.eval()(torch.from_numpy(x)).numpy()
    assert rel_error(model.eval().forward(x), expected) < 1e-4    # measured 1.7e-6


@pytest.mark.torch
def test_torch_resnet18_weights_give_the_same_train_mode_gradients(rng):
    """In float64. (In float32, torch's CPU gradients of this net sit up to 3e-2 from its
    own float64 ones, ours 1e-5: a float32 comparison would measure torch's rounding.)"""
    torch = pytest.importorskip("torch")
    net = trained_torch_resnet18(torch).double().train()
    model = resnet18(num_classes=10, rng=rng).astype(np.float64)
    load_torch_state_dict(model, {k: v.numpy() for k, v in net.state_dict().items()})
    x, y = rng.standard_normal((2, 3, 48, 48)), np.array([3, 7])   # layer4 sees 2x2 pixels
    loss = SoftmaxCrossEntropy()
    loss.forward(model.forward(x), y)
    model.backward(loss.backward())
    torch.nn.functional.cross_entropy(net(torch.from_numpy(x)), torch.from_numpy(y)).backward()
    theirs = {name: p.grad.numpy() for name, p in net.named_parameters()}
    names = torch_names(model)
    errors = {names[n]: rel_error(g, theirs[names[n]]) for n, g in model.named_grads()}
    assert len(errors) == len(theirs) == 62
    assert max(errors.values()) < 1e-10, max(errors, key=errors.get)   # measured 4e-14


@pytest.mark.torch
def test_our_resnet18_exported_loads_strictly_into_torch_with_the_same_logits(rng):
    torch = pytest.importorskip("torch")
    model = randomize(resnet18(num_classes=10, rng=rng), rng).eval()
    net = torchvision_resnet(torch, [2, 2, 2, 2], num_classes=10)
    net.load_state_dict({k: torch.from_numpy(v) for k, v in to_torch_state_dict(model).items()},
                        strict=True)
    x = rng.standard_normal((2, 3, 32, 32)).astype(np.float32)
    with torch.no_grad():
        expected = net.eval()(torch.from_numpy(x)).numpy()
    assert rel_error(model.forward(x), expected) < 1e-4           # measured 1.5e-7
