"""DenseResidualBlock: Andrew Ng's residual block of dense layers, written out.

    z^[l+1] = fc1(a^[l])        a^[l+1] = g(z^[l+1])
    z^[l+2] = fc2(a^[l+1])      a^[l+2] = g(z^[l+2] + a^[l])
"""
import warnings

import numpy as np

from .._checks import as_generator, check_array, check_choice, check_int, message
from ..layers.activations import ACTIVATIONS, Identity, get_activation
from ..layers.base import Sequential
from ..layers.dense import Dense
from .base import SKIPS, ResidualBlock

SHORTCUTS = ("identity", "projection", None)   # the dense block's shortcut choices


class DenseResidualBlock(ResidualBlock):
    """a^[l+k] = g(z^[l+k] + shortcut(a^[l])): k dense layers with a skip around them.

    Math
    ----
    Ng's block (skip=2), examples as rows (Z = A W^T + b, see Dense):
        z^[l+1] = fc1(a^[l])          a^[l+1] = g(z^[l+1])
        z^[l+2] = fc2(a^[l+1])        a^[l+2] = g(z^[l+2] + s)
    s = a^[l] (identity), a^[l] W_s^T (projection), or nothing (shortcut=None: the plain
    twin, same branch, no addition). skip=1 and skip=3 have one or three dense layers.
    Backward: dz^[l+2] = da^[l+2] * g'(.) reaches both terms of the sum: it flows back
    through the branch (da_l_branch) and, unchanged for identity, along the shortcut
    (da_l_shortcut); da^[l] = da_l_shortcut + da_l_branch.

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
    zero_init_residual : bool, start the last layer at W = 0, b = 0, so the block begins
        as g(shortcut(a^[l])). (`zero_init` is the old name: it still works, with a
        DeprecationWarning, and goes in the next release.)
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
                 out_features=None, zero_init_residual=False, rng=None, *, zero_init=None):
        where = "DenseResidualBlock"
        skip = check_choice(check_int(skip, "skip", where, minimum=None), "skip", where, SKIPS)
        super().__init__(skip, "post")
        self.features = check_int(features, "features", where)
        self.out_features = check_int(out_features if out_features is not None else features,
                                      "out_features", where)
        self.activation = check_choice(activation, "activation", where, tuple(ACTIVATIONS))
        self.shortcut_kind = check_choice(shortcut, "shortcut", where, SHORTCUTS)
        if shortcut == "identity" and self.out_features != self.features:
            raise ValueError(message(
                where, "out_features == features for an identity shortcut",
                f"features={self.features}, out_features={self.out_features}",
                'Use shortcut="projection" to map a^[l] to the new width with W_s.'))
        zero_init_residual = _renamed_zero_init(zero_init, zero_init_residual)
        rng = as_generator(rng)
        shortcut_rng = np.random.default_rng(rng.integers(2**63))  # drawn for every kind,
        for i in range(1, self.skip + 1):                          # so twins share branches
            fan_in = self.features if i == 1 else self.out_features
            setattr(self, f"fc{i}", Dense(fan_in, self.out_features, rng=rng))
            setattr(self, f"act{i}", get_activation(activation, where))
        if shortcut == "identity":
            self.shortcut = Identity()
        elif shortcut == "projection":
            self.shortcut = Dense(self.features, self.out_features, bias=False, rng=shortcut_rng)
        if zero_init_residual:
            last = getattr(self, f"fc{self.skip}")
            last.params["W"][...] = 0
            last.params["b"][...] = 0

    def forward(self, a_l):
        """a^[l] -> a^[l+2] as in Math (skip 1 and 3 run ResidualBlock's loop over k)."""
        if self.skip != 2:
            return super().forward(a_l)
        self._check_input(a_l)
        z_l1 = self.fc1(a_l)                                    # z^[l+1] = W1 a^[l] + b1
        a_l1 = self.act1(z_l1)                                  # a^[l+1] = g(z^[l+1])
        z_l2 = self.fc2(a_l1)                                   # z^[l+2] = W2 a^[l+1] + b2
        if self.shortcut is None:                               # the plain twin: no addition
            shortcut, a_l2 = None, self.act2(z_l2)
        else:
            shortcut = self.shortcut(a_l)                       # a^[l], or W_s a^[l]
            a_l2 = self.act2(z_l2 + shortcut)                   # a^[l+2] = g(z^[l+2] + a^[l])
        self._record(a_l=a_l, z_l1=z_l1, a_l1=a_l1, z_l2=z_l2, shortcut=shortcut, a_l2=a_l2)
        return a_l2

    def backward(self, da_l2):
        """da^[l+2] -> da^[l] = da_l_shortcut + da_l_branch (skip 1 and 3: the loop)."""
        if self.skip != 2:
            return super().backward(da_l2)
        self._require_forward()
        dz_l2 = self.act2.backward(da_l2)          # through g; the sum hands dz_l2 to both terms
        da_l1 = self.fc2.backward(dz_l2)
        dz_l1 = self.act1.backward(da_l1)
        da_l_branch = self.fc1.backward(dz_l1)
        da_l_shortcut = (self.shortcut.backward(dz_l2) if self.shortcut is not None
                         else np.zeros_like(da_l_branch))      # the plain twin: nothing
        da_l = da_l_shortcut + da_l_branch
        self._record_gradients(da_l2=da_l2, dz_l2=dz_l2, da_l1=da_l1, dz_l1=dz_l1,
                               da_l_shortcut=da_l_shortcut, da_l_branch=da_l_branch, da_l=da_l)
        return da_l

    def weight(self, i):
        return [getattr(self, f"fc{i}")]

    def act(self, i):
        return [getattr(self, f"act{i}")]

    def _check_input(self, a_l):
        check_array(a_l, self._where, 2,
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


def _renamed_zero_init(zero_init, zero_init_residual):
    """DenseResidualBlock's old `zero_init` argument, kept one release with a warning."""
    if zero_init is None:
        return zero_init_residual
    warnings.warn("DenseResidualBlock(zero_init=...) is renamed zero_init_residual, as in "
                  "every other block; zero_init goes in the next release.",
                  DeprecationWarning, stacklevel=3)
    return zero_init


