"""Residual blocks that keep every intermediate by name.

Andrew Ng's two-layer residual block, one example as a column:

    z^[l+1] = W^[l+1] a^[l] + b^[l+1]          a^[l+1] = g(z^[l+1])
    z^[l+2] = W^[l+2] a^[l+1] + b^[l+2]        a^[l+2] = g(z^[l+2] + a^[l])

Every block here runs that recipe with k = `skip` layers. What a "layer" is
depends on the block: a Dense (DenseResidualBlock), conv + BatchNorm (BasicBlock,
Bottleneck). After `forward`, `block.intermediates()` returns the arrays under the
keys a_l, z_l1, a_l1, z_l2, shortcut, a_l2 (`block.LABELS` maps each key to the
notation). After `backward`, `block.gradients()` returns da_l2, dz_l2, ... and the
gradient reaching a^[l] split into the part that came along the shortcut and the
part that came through the branch: da_l = da_l_shortcut + da_l_branch.

Pre-activation blocks (He et al. 2016) move g and BN in front of each weight
layer and put nothing after the addition:

    h^[l]   = g(BN(a^[l]))          z^[l+1] = conv1(h^[l])
    h^[l+1] = g(BN(z^[l+1]))        z^[l+2] = conv2(h^[l+1])
    a^[l+2] = z^[l+2] + shortcut    (no g: the identity path stays linear)

Their keys are a_l, h_l, z_l1, h_l1, z_l2, shortcut, a_l2.
"""
from collections import OrderedDict

import numpy as np

from ._checks import as_generator, check_array, check_choice, check_int, message
from .layers.activations import Identity, ReLU, get_activation
from .layers.base import Layer, Sequential
from .layers.batchnorm import BatchNorm2d
from .layers.conv import Conv2d
from .layers.dense import Dense
from .shortcuts import make_shortcut


def _labels(skip, variant):
    """Keys and labels for a block of `skip` layers, forward and backward."""
    k, labels = skip, OrderedDict(a_l="a^[l]")
    for i in range(1, k + 1):
        if variant == "pre":
            prev = "a^[l]" if i == 1 else f"z^[l+{i - 1}]"
            labels["h_l" if i == 1 else f"h_l{i - 1}"] = f"g(BN({prev}))"
            labels[f"z_l{i}"] = f"z^[l+{i}]"
        else:
            labels[f"z_l{i}"] = f"z^[l+{i}]"
            if i < k:
                labels[f"a_l{i}"] = f"a^[l+{i}] = g(z^[l+{i}])"
    labels["shortcut"] = "shortcut(a^[l])"
    labels[f"a_l{k}"] = (f"a^[l+{k}] = z^[l+{k}] + shortcut" if variant == "pre"
                         else f"a^[l+{k}] = g(z^[l+{k}] + shortcut)")
    for key, text in list(labels.items()):
        if key != "shortcut":
            labels["d" + key] = "dL/d" + text.split(" =")[0]
    labels.update(da_l_shortcut="dL/da^[l] via the shortcut",
                  da_l_branch="dL/da^[l] via the branch",
                  da_l="dL/da^[l] = via shortcut + via branch")
    return labels


def _forward(layers, x):
    for layer in layers:
        x = layer.forward(x)
    return x


def _backward(layers, dout):
    for layer in reversed(layers):
        dout = layer.backward(dout)
    return dout


class ResidualBlock(Layer):
    """a^[l+k] = g(z^[l+k] + shortcut(a^[l])) for k weight layers; "pre": no g at the end.

    Subclasses build, for i = 1..k, `weight(i)` (the layers that make z^[l+i]:
    [fc_i] or [conv_i, bn_i]; [conv_i] when pre-activated) and `act(i)` (the
    layers after it: [relu_i]; [bn_i, relu_i] in front of conv_i when pre-activated),
    plus `self.shortcut` (a layer, or None for the plain twin).
    """

    variant = "post"
    shortcut_from_h = False   # pre-activation: feed the shortcut g(BN(a^[l])) instead of a^[l]

    def _setup(self, skip, variant):
        self.skip, self.variant = skip, variant
        self.LABELS = _labels(skip, variant)
        self._forward_values, self._backward_values = OrderedDict(), OrderedDict()

    def weight(self, i):
        raise NotImplementedError

    def act(self, i):
        raise NotImplementedError

    def check_input(self, a_l):
        return a_l

    # -- forward: a^[l] -> a^[l+k] ----------------------------------------------
    def forward(self, a_l):
        self.check_input(a_l)
        k, v = self.skip, OrderedDict(a_l=a_l)
        if self.variant == "post":
            a = a_l
            for i in range(1, k + 1):
                z = v[f"z_l{i}"] = _forward(self.weight(i), a)          # z^[l+i]
                if i < k:
                    a = v[f"a_l{i}"] = _forward(self.act(i), z)         # a^[l+i] = g(z^[l+i])
        else:
            z = a_l
            for i in range(1, k + 1):
                h = v["h_l" if i == 1 else f"h_l{i - 1}"] = _forward(self.act(i), z)  # g(BN(.))
                z = v[f"z_l{i}"] = _forward(self.weight(i), h)          # z^[l+i] = conv_i(h)
        if self.shortcut is not None:
            source = v["h_l"] if self.shortcut_from_h else a_l
            v["shortcut"] = self.shortcut.forward(source)               # a^[l], padded, or W_s a^[l]
            z = z + v["shortcut"]
        v[f"a_l{k}"] = z if self.variant == "pre" else _forward(self.act(k), z)
        self._forward_values, self._backward_values = v, OrderedDict()
        return v[f"a_l{k}"]

    # -- backward: da^[l+k] -> da^[l], split into shortcut and branch ---------
    def backward(self, dout):
        if not self._forward_values:
            raise RuntimeError(message(f"{type(self).__name__}.backward", "forward to have run first",
                                       "an empty cache", "Call forward(x) before backward(dout)."))
        k, d = self.skip, OrderedDict()
        d[f"da_l{k}"] = dout
        if self.variant == "post":
            dsum = d[f"dz_l{k}"] = _backward(self.act(k), dout)       # through g after the add
            dz = dsum
            for i in range(k, 0, -1):
                da = _backward(self.weight(i), dz)                     # dL/da^[l+i-1]
                if i > 1:
                    d[f"da_l{i - 1}"] = da
                    dz = d[f"dz_l{i - 1}"] = _backward(self.act(i - 1), da)
            da_branch = da
        else:
            dsum = d[f"dz_l{k}"] = dout                                 # nothing after the add
            dz = dsum
            for i in range(k, 0, -1):
                dh = d["dh_l" if i == 1 else f"dh_l{i - 1}"] = _backward(self.weight(i), dz)
                if i > 1:
                    dz = d[f"dz_l{i - 1}"] = _backward(self.act(i), dh)
        dshort = self.shortcut.backward(dsum) if self.shortcut is not None else None
        if self.variant == "pre" and self.shortcut_from_h and dshort is not None:
            # Both paths pass through g(BN(a^[l])). Its backward is linear in the upstream
            # gradient, so the split is exact; the second call sets bn1's grads for the sum.
            d["dh_l"] = d["dh_l"] + dshort
            dshort = _backward(self.act(1), dshort)
            da_branch = _backward(self.act(1), d["dh_l"]) - dshort
        elif self.variant == "pre":
            da_branch = _backward(self.act(1), d["dh_l"])
        d["da_l_shortcut"] = dshort if dshort is not None else np.zeros_like(da_branch)
        d["da_l_branch"] = da_branch
        d["da_l"] = d["da_l_shortcut"] + da_branch
        self._backward_values = d
        return d["da_l"]

    # -- reading the pass ---------------------------------------------------------
    def intermediates(self):
        """Ordered dict key -> array of the last forward pass, in forward order."""
        if not self._forward_values:
            raise RuntimeError(message(f"{type(self).__name__}.intermediates",
                                       "forward to have run first", "nothing recorded",
                                       "Call block.forward(x) first."))
        return OrderedDict(self._forward_values)

    def gradients(self):
        """Ordered dict key -> gradient of the last backward pass, output first."""
        if not self._backward_values:
            raise RuntimeError(message(f"{type(self).__name__}.gradients",
                                       "backward to have run first", "nothing recorded",
                                       "Call block.backward(dout) after forward."))
        return OrderedDict(self._backward_values)

    def astype(self, dtype):
        self._forward_values, self._backward_values = OrderedDict(), OrderedDict()
        return super().astype(dtype)


class DenseResidualBlock(ResidualBlock):
    """a^[l+k] = g(z^[l+k] + shortcut(a^[l])): k dense layers with a skip around them.

    Math
    ----
    Branch, for i = 1..k:  z^[l+i] = a^[l+i-1] W_i^T + b_i,  a^[l+i] = g(z^[l+i]) (i < k).
    Output: a^[l+k] = g(z^[l+k] + s),  s = a^[l] (identity), a^[l] W_s^T (projection),
    or nothing (shortcut=None: the plain twin, same branch, no addition).
    Backward: dz^[l+k] = da^[l+k] * g'(.), which flows both ways: through the branch
    (da_l_branch) and, unchanged for identity, along the shortcut (da_l_shortcut).

    With skip=1 the block is g(a W^T + b + a) = g(a (W + I)^T + b): one layer with
    weight W + I. `collapse()` builds that layer.

    Parameters
    ----------
    features : int, width of a^[l]
    skip : {1, 2, 3}, number of dense layers the shortcut skips (Ng's block: 2)
    activation : "relu", "leaky_relu", "sigmoid", "tanh" or "identity"
    shortcut : "identity", "projection" (W_s, a Dense without bias) or None
    out_features : int, width of a^[l+k]; defaults to features (needs "projection"
        when different)
    zero_init : bool, start the last layer at W = 0, b = 0, so the block begins as
        g(shortcut(a^[l]))
    rng : None, int or np.random.Generator

    Shape
    -----
    a_l: (N, features)   every z and a: (N, out_features)

    Children: fc1..fck (Dense), act1..actk (act_k after the addition), shortcut.

    Example
    -------
    >>> block = DenseResidualBlock(4, skip=2, rng=0)
    >>> a_l = np.random.default_rng(1).standard_normal((3, 4))
    >>> a_l2 = block(a_l)
    >>> list(block.intermediates())
    ['a_l', 'z_l1', 'a_l1', 'z_l2', 'shortcut', 'a_l2']
    >>> v = block.intermediates()
    >>> bool(np.allclose(v["a_l2"], np.maximum(v["z_l2"] + v["a_l"], 0)))
    True
    """

    def __init__(self, features, skip=2, activation="relu", shortcut="identity",
                 out_features=None, zero_init=False, rng=None):
        super().__init__()
        where = "DenseResidualBlock"
        self.features = check_int(features, "features", where)
        self.out_features = check_int(out_features if out_features is not None else features,
                                      "out_features", where)
        self._setup(check_choice(check_int(skip, "skip", where, minimum=None), "skip", where, (1, 2, 3)), "post")
        self.activation = check_choice(activation, "activation", where,
                                       ("relu", "leaky_relu", "sigmoid", "tanh", "identity"))
        self.shortcut_kind = check_choice(shortcut, "shortcut", where,
                                          ("identity", "projection", None))
        if shortcut == "identity" and self.out_features != self.features:
            raise ValueError(message(
                where, "out_features == features for an identity shortcut",
                f"features={self.features}, out_features={self.out_features}",
                'Use shortcut="projection" to map a^[l] to the new width with W_s.'))
        rng = as_generator(rng)
        shortcut_rng = np.random.default_rng(rng.integers(2**63))  # drawn for every kind,
        for i in range(1, self.skip + 1):                          # so twins share branches
            fan_in = self.features if i == 1 else self.out_features
            setattr(self, f"fc{i}", Dense(fan_in, self.out_features, rng=rng))
            setattr(self, f"act{i}", get_activation(activation, where))
        self.shortcut = {"identity": Identity, None: lambda: None,
                         "projection": lambda: Dense(self.features, self.out_features,
                                                     bias=False, rng=shortcut_rng)}[shortcut]()
        if zero_init:
            last = getattr(self, f"fc{self.skip}")
            last.params["W"][...] = 0
            last.params["b"][...] = 0

    def weight(self, i):
        return [getattr(self, f"fc{i}")]

    def act(self, i):
        return [getattr(self, f"act{i}")]

    def check_input(self, a_l):
        check_array(a_l, f"DenseResidualBlock({self.extra_repr()}).forward", 2,
                    f"(N, {self.features})", {1: self.features})

    def collapse(self):
        """The single layer g(a (W + I)^T + b) equal to this skip=1 block.

        With a projection shortcut the weight is W + W_s; for the plain twin, W.
        Returns Sequential({"fc": Dense, "act": activation}).

        >>> block = DenseResidualBlock(3, skip=1, rng=0)
        >>> x = np.random.default_rng(1).standard_normal((5, 3)).astype(np.float32)
        >>> bool(np.allclose(block(x), block.collapse()(x), atol=1e-6))
        True
        """
        if self.skip != 1:
            raise ValueError(message(
                "DenseResidualBlock.collapse", "skip=1", f"skip={self.skip}",
                "With two or more layers the branch has a nonlinearity inside, so the "
                "block is not one layer; that is the point of skipping two."))
        W, b = self.fc1.params["W"], self.fc1.params["b"]
        if self.shortcut_kind == "identity":
            W = W + np.eye(self.features, dtype=W.dtype)
        elif self.shortcut_kind == "projection":
            W = W + self.shortcut.params["W"]
        fc = Dense(self.features, self.out_features)
        fc.params["W"], fc.params["b"] = W.copy(), b.copy()
        fc.grads = {key: np.zeros_like(v) for key, v in fc.params.items()}
        return Sequential({"fc": fc, "act": get_activation(self.activation)})

    def extra_repr(self):
        args = [str(self.features), f"skip={self.skip}", f"activation={self.activation!r}",
                f"shortcut={self.shortcut_kind!r}"]
        if self.out_features != self.features:
            args.append(f"out_features={self.out_features}")
        return ", ".join(args)


class _ConvBlock(ResidualBlock):
    """Conv + BN layers with a shortcut: shared by BasicBlock and Bottleneck.

    `specs` lists (in_channels, out_channels, kernel_size, stride) per layer.
    Post-activation layer i: conv_i -> bn_i, then relu_i. Pre-activation: bn_i ->
    relu_i in front of conv_i (bn_i then normalises the layer's input channels).
    """

    def _build(self, name, specs, shortcut, variant, zero_init_residual, rng):
        self.where = name
        self.in_channels, self.out_channels = specs[0][0], specs[-1][1]
        self.stride = max(spec[3] for spec in specs)
        self.shortcut_kind = check_choice(shortcut, "shortcut", name, ("identity", "A", "B", "C", None))
        self._setup(len(specs), check_choice(variant, "variant", name, ("post", "pre")))
        rng = as_generator(rng)
        shortcut_rng = np.random.default_rng(rng.integers(2**63))  # drawn for every kind
        for i, (c_in, c_out, kernel, stride) in enumerate(specs, start=1):
            setattr(self, f"conv{i}", Conv2d(c_in, c_out, kernel, stride=stride,
                                             padding=kernel // 2, bias=False, rng=rng))
            setattr(self, f"bn{i}", BatchNorm2d(c_in if variant == "pre" else c_out))
            setattr(self, f"relu{i}", ReLU())
        self.shortcut = make_shortcut(shortcut, self.in_channels, self.out_channels,
                                      self.stride, name, rng=shortcut_rng)
        changes_shape = self.stride != 1 or self.in_channels != self.out_channels
        self.shortcut_from_h = variant == "pre" and changes_shape
        if zero_init_residual:
            getattr(self, f"bn{self.skip}").params["gamma"][...] = 0

    def weight(self, i):
        conv = getattr(self, f"conv{i}")
        return [conv] if self.variant == "pre" else [conv, getattr(self, f"bn{i}")]

    def act(self, i):
        relu = getattr(self, f"relu{i}")
        return [getattr(self, f"bn{i}"), relu] if self.variant == "pre" else [relu]

    def check_input(self, a_l):
        check_array(a_l, f"{type(self).__name__}({self.extra_repr()}).forward", 4,
                    f"(N, {self.in_channels}, H, W)", {1: self.in_channels},
                    "Images are NCHW: check the previous layer's out_channels.")


class BasicBlock(_ConvBlock):
    """a^[l+2] = relu(bn2(conv2(relu(bn1(conv1(a^[l]))))) + shortcut(a^[l])).

    He et al. 2015, post-activation. conv1 is 3x3 with `stride`, conv2 3x3 stride 1;
    both without bias (the BN beta plays that role).

    Keys: a_l, z_l1 = bn1(conv1(a_l)), a_l1 = relu(z_l1), z_l2 = bn2(conv2(a_l1)),
    shortcut, a_l2 = relu(z_l2 + shortcut).

    Parameters
    ----------
    in_channels, out_channels : int
    stride : int, 1 or 2 (2 halves H and W at a stage boundary)
    shortcut : "identity", "A" (subsample + zero channels, no parameters),
        "B" (identity where shapes match, else 1x1 conv + BN), "C" (1x1 conv + BN
        always) or None (the plain twin)
    zero_init_residual : bool, bn2's gamma starts at 0 so the block starts as relu(shortcut)
    rng : None, int or np.random.Generator

    Shape
    -----
    a_l: (N, in_channels, H, W)   a_l2: (N, out_channels, ceil(H/stride), ceil(W/stride))

    Example
    -------
    >>> block = BasicBlock(4, 8, stride=2, shortcut="A", rng=0)
    >>> out = block(np.random.default_rng(0).standard_normal((2, 4, 6, 6)))
    >>> out.shape, block.intermediates()["shortcut"].shape
    ((2, 8, 3, 3), (2, 8, 3, 3))
    """

    def __init__(self, in_channels, out_channels, stride=1, shortcut="B",
                 zero_init_residual=False, variant="post", rng=None):
        super().__init__()
        where = type(self).__name__                  # PreActBlock reports its own name
        c_in = check_int(in_channels, "in_channels", where)
        c_out = check_int(out_channels, "out_channels", where)
        stride = check_int(stride, "stride", where)
        self._build(where, [(c_in, c_out, 3, stride), (c_out, c_out, 3, 1)],
                    shortcut, variant, zero_init_residual, rng)

    def extra_repr(self):
        args = [str(self.in_channels), str(self.out_channels)]
        args += [f"stride={self.stride}"] if self.stride != 1 else []
        args += [f"shortcut={self.shortcut_kind!r}"]
        return ", ".join(args + ([f"variant={self.variant!r}"] if self.variant != "post" else []))


class PreActBlock(BasicBlock):
    """a^[l+2] = z^[l+2] + shortcut,  z^[l+2] = conv2(relu(bn2(conv1(relu(bn1(a^[l])))))).

    He et al. 2016, full pre-activation: BN and ReLU come before each conv and
    nothing follows the addition, so within a stage a^[l] reaches the next block
    unchanged. Where the shape changes, the shortcut (projection or zero-pad) is fed
    h_l = relu(bn1(a^[l])), as in the authors' reference code, not a^[l].

    Keys: a_l, h_l = relu(bn1(a_l)), z_l1 = conv1(h_l), h_l1 = relu(bn2(z_l1)),
    z_l2 = conv2(h_l1), shortcut, a_l2 = z_l2 + shortcut.
    Arguments as BasicBlock.

    >>> block = PreActBlock(4, 4, shortcut="identity", rng=0)
    >>> x = np.random.default_rng(0).standard_normal((2, 4, 5, 5))
    >>> v = block.intermediates() if block(x) is not None else None
    >>> list(v)
    ['a_l', 'h_l', 'z_l1', 'h_l1', 'z_l2', 'shortcut', 'a_l2']
    >>> bool(np.allclose(v["a_l2"], v["z_l2"] + v["a_l"]))
    True
    """

    def __init__(self, in_channels, out_channels, stride=1, shortcut="B",
                 zero_init_residual=False, rng=None):
        super().__init__(in_channels, out_channels, stride, shortcut, zero_init_residual,
                         variant="pre", rng=rng)

    def extra_repr(self):
        return super().extra_repr().replace(", variant='pre'", "")


class Bottleneck(_ConvBlock):
    """a^[l+3] = g(z^[l+3] + shortcut): 1x1 (reduce) -> 3x3 (stride here) -> 1x1 (expand).

    He et al. 2015's block for deep nets: the 3x3 conv works on mid_channels, the
    1x1s change the width. variant="pre" puts BN-ReLU before each conv as PreActBlock.
    Keys (post): a_l, z_l1, a_l1, z_l2, a_l2, z_l3, shortcut, a_l3.

    Shape
    -----
    a_l: (N, in_channels, H, W)   a_l3: (N, out_channels, ceil(H/stride), ceil(W/stride))

    >>> block = Bottleneck(8, 2, 8, rng=0)
    >>> block(np.ones((1, 8, 4, 4))).shape
    (1, 8, 4, 4)
    """

    def __init__(self, in_channels, mid_channels, out_channels, stride=1, shortcut="B",
                 variant="post", zero_init_residual=False, rng=None):
        super().__init__()
        where = "Bottleneck"
        c_in = check_int(in_channels, "in_channels", where)
        mid = check_int(mid_channels, "mid_channels", where)
        c_out = check_int(out_channels, "out_channels", where)
        stride = check_int(stride, "stride", where)
        self.mid_channels = mid
        self._build(where, [(c_in, mid, 1, 1), (mid, mid, 3, stride), (mid, c_out, 1, 1)],
                    shortcut, variant, zero_init_residual, rng)

    def extra_repr(self):
        args = [str(self.in_channels), str(self.mid_channels), str(self.out_channels)]
        args += [f"stride={self.stride}"] if self.stride != 1 else []
        args += [f"shortcut={self.shortcut_kind!r}"]
        return ", ".join(args + ([f"variant={self.variant!r}"] if self.variant != "post" else []))
