"""PyTorch parity: whole resnet_cifar models, every block type and shortcut, SGD
trajectories on a real model, and the layers whose own test file has no torch test
(Dense, the activations, the losses).

Every torch twin is written here, with torchvision's module names; our weights reach it
through resnet_np.io.to_torch_state_dict and torch's strict load_state_dict, so the name
mapping is exercised by every test. Errors are rel_error (max |a - b| / max |b|, over a
whole tensor): below 1e-5 in float32 and 1e-10 in float64.
"""
import numpy as np
import pytest

from resnet_np import (SGD, BasicBlock, Bottleneck, Dense, LeakyReLU, MSELoss, PreActBlock,
                       ReLU, Sigmoid, SoftmaxCrossEntropy, Tanh, resnet_cifar)
from resnet_np.gradcheck import rel_error
from resnet_np.io import to_torch_state_dict, torch_names

pytestmark = pytest.mark.torch
torch = pytest.importorskip("torch")
nn, F = torch.nn, torch.nn.functional

TOL = {np.float32: 1e-5, np.float64: 1e-10}
DTYPES = pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])


# -- torch twins, written with torchvision's names -------------------------------------
class TorchConvBlock(nn.Module):
    """torchvision's BasicBlock / Bottleneck (post) or He et al. 2016's pre-activation block.

    specs: [(c_in, c_out, kernel, stride)] per conv; shortcut "identity", "A" (subsample
    and append zero channels), "B" (downsample = 1x1 conv + BN where the shape changes),
    "C" (downsample everywhere) or None (no addition).
    """

    def __init__(self, specs, shortcut, variant):
        super().__init__()
        self.k, self.kind, self.variant = len(specs), shortcut, variant
        for i, (c_in, c_out, kernel, stride) in enumerate(specs, start=1):
            setattr(self, f"conv{i}", nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2,
                                                bias=False))
            setattr(self, f"bn{i}", nn.BatchNorm2d(c_in if variant == "pre" else c_out))
        c_in, c_out = specs[0][0], specs[-1][1]
        self.stride = max(spec[3] for spec in specs)
        self.changes, self.extra = self.stride != 1 or c_in != c_out, c_out - c_in
        if shortcut == "C" or (shortcut == "B" and self.changes):
            self.downsample = nn.Sequential(nn.Conv2d(c_in, c_out, 1, self.stride, bias=False),
                                            nn.BatchNorm2d(c_out))
        else:
            self.downsample = None

    def shortcut(self, x):
        if self.kind is None:
            return 0
        if self.downsample is not None:
            return self.downsample(x)
        if self.kind == "A" and self.changes:
            s = self.stride
            return F.pad(x[:, :, ::s, ::s], (0, 0, 0, 0, 0, self.extra))
        return x

    def forward(self, x):
        conv, bn = (lambda i: getattr(self, f"conv{i}")), (lambda i: getattr(self, f"bn{i}"))
        if self.variant == "post":
            out = x
            for i in range(1, self.k + 1):
                out = bn(i)(conv(i)(out))
                out = F.relu(out) if i < self.k else out
            return F.relu(out + self.shortcut(x))
        h = out = F.relu(self.bn1(x))
        for i in range(1, self.k + 1):
            out = conv(i)(out if i == 1 else F.relu(bn(i)(out)))
        return out + self.shortcut(h if self.changes else x)


def basic_specs(c_in, c_out, stride):
    return [(c_in, c_out, 3, stride), (c_out, c_out, 3, 1)]


class TorchResNetCifar(nn.Module):
    """resnet_cifar in the common CIFAR layout: conv1, bn1 (post), layer1..layer3,
    bn (pre: the final BN before the pooling), fc."""

    def __init__(self, n, width, variant, shortcut, num_classes=10):
        super().__init__()
        self.variant = variant
        self.conv1 = nn.Conv2d(3, width, 3, 1, 1, bias=False)
        if variant == "post":
            self.bn1 = nn.BatchNorm2d(width)
        c_in = width
        for s, c_out in enumerate((width, 2 * width, 4 * width), start=1):
            setattr(self, f"layer{s}", nn.Sequential(*[
                TorchConvBlock(basic_specs(c_in if b == 0 else c_out, c_out,
                                           2 if (b == 0 and s > 1) else 1), shortcut, variant)
                for b in range(n)]))
            c_in = c_out
        if variant == "pre":
            self.bn = nn.BatchNorm2d(c_in)
        self.fc = nn.Linear(c_in, num_classes)

    def forward(self, x):
        out = self.conv1(x)
        out = F.relu(self.bn1(out)) if self.variant == "post" else out
        out = self.layer3(self.layer2(self.layer1(out)))
        out = F.relu(self.bn(out)) if self.variant == "pre" else out
        return self.fc(out.mean(dim=(2, 3)))


# -- helpers --------------------------------------------------------------------------
def randomize_batchnorm(model, rng):
    """gamma near 1 and beta near 0 but not equal, so BN's affine part is exercised."""
    for name, p in model.named_parameters():
        if name.endswith(("gamma", "beta")):
            p[...] = (name.endswith("gamma") + 0.2 * rng.standard_normal(p.shape)).astype(p.dtype)
    return model


def twin_of(model, module, dtype):
    """Give `module` our model's weights (strict torch load), dtype and mode."""
    module = module.to(torch.float64 if dtype == np.float64 else torch.float32)
    module.load_state_dict({k: torch.from_numpy(v.copy())
                            for k, v in to_torch_state_dict(model).items()}, strict=True)
    return module.train(model.training)


def torch_grads(module):
    return {name: p.grad.numpy() for name, p in module.named_parameters()}


def our_grads(model):
    names = torch_names(model)
    return {names[name]: g for name, g in model.named_grads()}


def torch_buffers(module):
    return {name: b.numpy() for name, b in module.named_buffers()
            if not name.endswith("num_batches_tracked")}


def our_buffers(model):
    names = torch_names(model)
    return {names[name]: b for name, b in model.named_buffers()}


def worst(ours, theirs):
    """(name, rel_error) of the worst-matching tensor; the names must agree exactly."""
    assert sorted(ours) == sorted(theirs)
    errors = {name: rel_error(ours[name], theirs[name]) for name in ours}
    name = max(errors, key=errors.get)
    return name, errors[name]


def assert_parity(ours, theirs, dtype):
    name, error = worst(ours, theirs)
    assert error < TOL[dtype], f"{name}: rel_error {error:.2e} >= {TOL[dtype]:.0e}"


# -- blocks -----------------------------------------------------------------------------
BOTTLENECK_DOWN = [(4, 2, 1, 1), (2, 2, 3, 2), (2, 8, 1, 1)]   # 1x1 reduce, 3x3/2, 1x1 expand
BOTTLENECK_SAME = [(8, 2, 1, 1), (2, 2, 3, 1), (2, 8, 1, 1)]
BLOCKS = {   # id: (our class, its channel/stride arguments, torch specs, shortcut, variant)
    "basic-A-down": (BasicBlock, (4, 8, 2), basic_specs(4, 8, 2), "A", "post"),
    "basic-A-same": (BasicBlock, (4, 4, 1), basic_specs(4, 4, 1), "A", "post"),
    "basic-B-down": (BasicBlock, (4, 8, 2), basic_specs(4, 8, 2), "B", "post"),
    "basic-B-same": (BasicBlock, (4, 4, 1), basic_specs(4, 4, 1), "B", "post"),
    "basic-C": (BasicBlock, (4, 4, 1), basic_specs(4, 4, 1), "C", "post"),
    "basic-identity": (BasicBlock, (4, 4, 1), basic_specs(4, 4, 1), "identity", "post"),
    "basic-none": (BasicBlock, (4, 8, 2), basic_specs(4, 8, 2), None, "post"),
    "preact-A-down": (PreActBlock, (4, 8, 2), basic_specs(4, 8, 2), "A", "pre"),
    "preact-B-down": (PreActBlock, (4, 8, 2), basic_specs(4, 8, 2), "B", "pre"),
    "preact-C-same": (PreActBlock, (4, 4, 1), basic_specs(4, 4, 1), "C", "pre"),
    "preact-identity": (PreActBlock, (4, 4, 1), basic_specs(4, 4, 1), "identity", "pre"),
    "preact-none": (PreActBlock, (4, 8, 2), basic_specs(4, 8, 2), None, "pre"),
    "bottleneck-B-down": (Bottleneck, (4, 2, 8, 2), BOTTLENECK_DOWN, "B", "post"),
    "bottleneck-identity": (Bottleneck, (8, 2, 8, 1), BOTTLENECK_SAME, "identity", "post"),
    "bottleneck-pre-B-down": (Bottleneck, (4, 2, 8, 2), BOTTLENECK_DOWN, "B", "pre"),
    "bottleneck-pre-identity": (Bottleneck, (8, 2, 8, 1), BOTTLENECK_SAME, "identity", "pre"),
}


def make_block(Block, args, shortcut, variant, rng):
    kwargs = {"variant": variant} if Block is Bottleneck else {}
    return Block(*args, shortcut=shortcut, rng=rng, **kwargs)


@DTYPES
@pytest.mark.parametrize("case", list(BLOCKS))
def test_block_forward_and_every_gradient_match_torch(case, dtype, rng):
    Block, args, specs, shortcut, variant = BLOCKS[case]
    block = randomize_batchnorm(make_block(Block, args, shortcut, variant, rng).astype(dtype), rng)
    module = twin_of(block, TorchConvBlock(specs, shortcut, variant), dtype)
    x = rng.standard_normal((3, block.in_channels, 7, 7)).astype(dtype)   # odd: ceil at stride 2
    out = block.forward(x)
    dout = rng.standard_normal(out.shape).astype(dtype)
    dx = block.backward(dout)
    tx = torch.tensor(x, requires_grad=True)
    tout = module(tx)
    tout.backward(torch.from_numpy(dout))
    assert_parity({"out": out, "dx": dx, **our_grads(block), **our_buffers(block)},
                  {"out": tout.detach().numpy(), "dx": tx.grad.numpy(), **torch_grads(module),
                   **torch_buffers(module)}, dtype)


def test_parity_check_can_fail(rng):
    """A wrong twin (option A appending zeros in front) is caught."""
    block = BasicBlock(4, 8, 2, shortcut="A", rng=0).astype(np.float64)
    module = twin_of(block, TorchConvBlock(basic_specs(4, 8, 2), "A", "post"), np.float64)
    module.shortcut = lambda x: F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, 4, 0))
    x = rng.standard_normal((2, 4, 6, 6))
    with pytest.raises(AssertionError, match="out: rel_error"):
        assert_parity({"out": block.forward(x)}, {"out": module(torch.from_numpy(x)).detach().numpy()},
                      np.float64)


# -- a whole resnet_cifar ---------------------------------------------------------------
def check_zero_gradients(ours, theirs, dtype):
    """Check and remove the projection BN biases of a pre-activation model.

    In training mode a per-channel constant added just before a BatchNorm changes
    nothing. In the pre-activation model everything after a block's addition goes
    through BatchNorms (the next block's bn1, the final bn), so downsample.1.bias has
    gradient exactly 0 and both sides hold rounding noise, ~1e-9 in float32; relative to
    itself that noise differs by 100%. Check it is tiny next to the weight's gradient.
    """
    biases = [name for name in ours if name.endswith("downsample.1.bias")]
    assert biases
    for name in biases:
        scale = np.abs(theirs[name.replace(".bias", ".weight")]).max()
        assert np.abs(ours.pop(name)).max() < TOL[dtype] * scale, name
        assert np.abs(theirs.pop(name)).max() < TOL[dtype] * scale, name


@DTYPES
@pytest.mark.parametrize("variant, shortcut", [("post", "A"), ("pre", "B")])
def test_resnet_cifar_train_and_eval_match_torch(variant, shortcut, dtype, rng):
    model = randomize_batchnorm(
        resnet_cifar(20, variant=variant, shortcut=shortcut, rng=rng).astype(dtype), rng)
    module = twin_of(model, TorchResNetCifar(3, 16, variant, shortcut), dtype)
    loss = SoftmaxCrossEntropy()
    for step in range(2):                         # two steps: running statistics move twice
        x = rng.standard_normal((4, 3, 16, 16)).astype(dtype)
        y = rng.integers(0, 10, size=4)
        logits = model.forward(x)
        value = loss.forward(logits, y)
        dx = model.backward(loss.backward())
        tx = torch.tensor(x, requires_grad=True)
        tlogits = module(tx)
        tloss = F.cross_entropy(tlogits, torch.from_numpy(y))
        module.zero_grad()
        tloss.backward()
        ours, theirs = our_grads(model), torch_grads(module)
        if variant == "pre":
            check_zero_gradients(ours, theirs, dtype)
        assert_parity({"logits": logits, "loss": np.array(value), "dx": dx,
                       **ours, **our_buffers(model)},
                      {"logits": tlogits.detach().numpy(), "loss": tloss.detach().numpy(),
                       "dx": tx.grad.numpy(), **theirs, **torch_buffers(module)}, dtype)
    model.eval(), module.eval()
    x = rng.standard_normal((4, 3, 16, 16)).astype(dtype)
    with torch.no_grad():
        expected = module(torch.from_numpy(x)).numpy()
    assert_parity({"eval logits": model.forward(x)}, {"eval logits": expected}, dtype)


# -- SGD on a real model ------------------------------------------------------------------
@pytest.mark.parametrize("momentum, weight_decay, nesterov", [
    (0.0, 0.0, False), (0.9, 0.0, False), (0.9, 5e-4, False), (0.9, 5e-4, True),
    (0.0, 1e-2, False)])
def test_sgd_trajectory_on_a_resnet_matches_torch(momentum, weight_decay, nesterov, rng):
    dtype = np.float64
    model = resnet_cifar(8, width=4, shortcut="B", rng=rng).astype(dtype)
    module = twin_of(model, TorchResNetCifar(1, 4, "post", "B"), dtype)
    kwargs = dict(lr=0.05, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov)
    opt, ref, loss = SGD(model, **kwargs), torch.optim.SGD(module.parameters(), **kwargs), \
        SoftmaxCrossEntropy()
    x = rng.standard_normal((8, 3, 8, 8))
    y = rng.integers(0, 10, size=8)
    losses, ref_losses = [], []
    for step in range(20):
        losses.append(loss.forward(model.forward(x), y))
        model.backward(loss.backward())
        opt.step()
        ref.zero_grad()
        tloss = F.cross_entropy(module(torch.from_numpy(x)), torch.from_numpy(y))
        tloss.backward()
        ref.step()
        ref_losses.append(float(tloss.detach()))
    assert losses[-1] < losses[0]                  # it trained
    names = torch_names(model)
    assert_parity({names[n]: p for n, p in model.named_parameters()} | our_buffers(model),
                  {n: p.detach().numpy() for n, p in module.named_parameters()}
                  | torch_buffers(module), dtype)
    assert_parity({"losses": np.array(losses)}, {"losses": np.array(ref_losses)}, dtype)


# -- layers without a torch test in their own file ------------------------------------------
@DTYPES
@pytest.mark.parametrize("bias", [True, False])
def test_dense_matches_torch_linear(bias, dtype, rng):
    layer = Dense(5, 3, bias=bias, rng=rng).astype(dtype)
    if bias:
        layer.params["b"][...] = rng.standard_normal(3)
    linear = twin_of(layer, nn.Linear(5, 3, bias=bias), dtype)
    x = rng.standard_normal((4, 5)).astype(dtype)
    out = layer.forward(x)
    dout = rng.standard_normal(out.shape).astype(dtype)
    dx = layer.backward(dout)
    tx = torch.tensor(x, requires_grad=True)
    tout = linear(tx)
    tout.backward(torch.from_numpy(dout))
    assert_parity({"out": out, "dx": dx, **our_grads(layer)},
                  {"out": tout.detach().numpy(), "dx": tx.grad.numpy(), **torch_grads(linear)},
                  dtype)


ACTIVATIONS = {"relu": (ReLU, F.relu), "leaky_relu": (lambda: LeakyReLU(0.2),
                                                      lambda t: F.leaky_relu(t, 0.2)),
               "sigmoid": (Sigmoid, torch.sigmoid), "tanh": (Tanh, torch.tanh)}


@DTYPES
@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_activation_matches_torch(name, dtype, rng):
    make, reference = ACTIVATIONS[name]
    layer = make()
    x = (3 * rng.standard_normal((4, 3, 5))).astype(dtype)
    out = layer.forward(x)
    dout = rng.standard_normal(out.shape).astype(dtype)
    dx = layer.backward(dout)
    tx = torch.tensor(x, requires_grad=True)
    tout = reference(tx)
    tout.backward(torch.from_numpy(dout))
    assert_parity({"out": out, "dx": dx}, {"out": tout.detach().numpy(), "dx": tx.grad.numpy()},
                  dtype)


@DTYPES
@pytest.mark.parametrize("name", ["cross_entropy", "mse"])
def test_loss_value_and_gradient_match_torch(name, dtype, rng):
    x = (3 * rng.standard_normal((6, 5))).astype(dtype)
    target = rng.integers(0, 5, size=6) if name == "cross_entropy" else \
        rng.standard_normal((6, 5)).astype(dtype)
    loss = SoftmaxCrossEntropy() if name == "cross_entropy" else MSELoss()
    value = loss.forward(x, target)
    dx = loss.backward()
    tx = torch.tensor(x, requires_grad=True)
    reference = F.cross_entropy if name == "cross_entropy" else F.mse_loss
    tvalue = reference(tx, torch.from_numpy(target))
    tvalue.backward()
    assert_parity({"loss": np.array(value), "dx": dx},
                  {"loss": tvalue.detach().numpy(), "dx": tx.grad.numpy()}, dtype)
