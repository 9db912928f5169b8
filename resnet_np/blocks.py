"""Residual blocks that keep every intermediate by name.

Andrew Ng's two-layer residual block, one example as a column:

    z^[l+1] = W^[l+1] a^[l] + b^[l+1]          a^[l+1] = g(z^[l+1])
    z^[l+2] = W^[l+2] a^[l+1] + b^[l+2]        a^[l+2] = g(z^[l+2] + a^[l])

After `forward`, `block.intermediates()` returns these arrays under the keys
a_l, z_l1, a_l1, z_l2, shortcut, a_l2 (`block.LABELS` maps each key to the
notation). After `backward`, `block.gradients()` returns da_l2, dz_l2, ... and the
gradient reaching a^[l] split into the part that came along the shortcut and the
part that came through the branch: da_l = da_l_shortcut + da_l_branch.
"""
from collections import OrderedDict

import numpy as np

from ._checks import as_generator, check_array, check_choice, check_int, message
from .layers.activations import Identity, get_activation
from .layers.base import Layer, Sequential
from .layers.dense import Dense


class ResidualBlock(Layer):
    """Shared bookkeeping: the named intermediates and gradients of one pass."""

    LABELS = {}

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


def _layer_labels(skip):
    """Keys and Ng labels for a block of `skip` layers: a_l, z_l1, a_l1, ..."""
    labels = OrderedDict(a_l="a^[l]")
    for i in range(1, skip + 1):
        labels[f"z_l{i}"] = f"z^[l+{i}]"
        if i < skip:
            labels[f"a_l{i}"] = f"a^[l+{i}] = g(z^[l+{i}])"
    labels["shortcut"] = "shortcut(a^[l])"
    labels[f"a_l{skip}"] = f"a^[l+{skip}] = g(z^[l+{skip}] + shortcut)"
    for key, text in list(labels.items()):
        labels["d" + key] = f"dL/d{text.split(' =')[0]}"
    labels.update(da_l_shortcut="dL/da^[l] via the shortcut",
                  da_l_branch="dL/da^[l] via the branch",
                  da_l="dL/da^[l] = via shortcut + via branch")
    return labels


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
        self.skip = check_choice(skip, "skip", where, (1, 2, 3))
        self.activation = check_choice(activation, "activation", where,
                                       ("relu", "leaky_relu", "sigmoid", "tanh", "identity"))
        self.shortcut_kind = check_choice(shortcut, "shortcut", where, ("identity", "projection", None))
        if shortcut == "identity" and self.out_features != self.features:
            raise ValueError(message(
                where, "out_features == features for an identity shortcut",
                f"features={self.features}, out_features={self.out_features}",
                'Use shortcut="projection" to map a^[l] to the new width with W_s.'))
        rng = as_generator(rng)
        shortcut_rng = np.random.default_rng(rng.integers(2**63))  # drawn for every kind,
        self.LABELS = _layer_labels(self.skip)                     # so branches match twins
        for i in range(1, self.skip + 1):
            fan_in = self.features if i == 1 else self.out_features
            setattr(self, f"fc{i}", Dense(fan_in, self.out_features, rng=rng))
            setattr(self, f"act{i}", get_activation(activation, where))
        if shortcut == "identity":
            self.shortcut = Identity()
        elif shortcut == "projection":
            self.shortcut = Dense(self.features, self.out_features, bias=False, rng=shortcut_rng)
        else:
            self.shortcut = None
        if zero_init:
            last = getattr(self, f"fc{self.skip}")
            last.params["W"][...] = 0
            last.params["b"][...] = 0
        self._forward_values, self._backward_values = OrderedDict(), OrderedDict()

    def _layers(self, i):
        return getattr(self, f"fc{i}"), getattr(self, f"act{i}")

    def forward(self, a_l):
        k = self.skip
        check_array(a_l, f"DenseResidualBlock({self.extra_repr()}).forward", 2, f"(N, {self.features})", {1: self.features})
        values = OrderedDict(a_l=a_l)
        a = a_l
        for i in range(1, k + 1):
            fc, act = self._layers(i)
            z = values[f"z_l{i}"] = fc.forward(a)              # z^[l+i] = a W^T + b
            if i < k:
                a = values[f"a_l{i}"] = act.forward(z)         # a^[l+i] = g(z^[l+i])
        if self.shortcut is not None:
            values["shortcut"] = self.shortcut.forward(a_l)    # a^[l] or a^[l] W_s^T
            z = z + values["shortcut"]
        values[f"a_l{k}"] = self._layers(k)[1].forward(z)      # a^[l+k] = g(z + shortcut)
        self._forward_values, self._backward_values = values, OrderedDict()
        return values[f"a_l{k}"]

    def backward(self, dout):
        k = self.skip
        grads = OrderedDict()
        grads[f"da_l{k}"] = dout
        dz = grads[f"dz_l{k}"] = self._layers(k)[1].backward(dout)   # through g
        dz_add = dz                                # d(z + shortcut) reaches both summands
        for i in range(k, 0, -1):
            fc, _ = self._layers(i)
            da = fc.backward(dz)
            if i > 1:
                grads[f"da_l{i - 1}"] = da
                dz = grads[f"dz_l{i - 1}"] = self._layers(i - 1)[1].backward(da)
        if self.shortcut is not None:
            grads["da_l_shortcut"] = self.shortcut.backward(dz_add)
        else:
            grads["da_l_shortcut"] = np.zeros_like(da)
        grads["da_l_branch"] = da
        grads["da_l"] = grads["da_l_shortcut"] + da
        self._backward_values = grads
        return grads["da_l"]

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

