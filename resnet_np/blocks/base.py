"""ResidualBlock: the base of every block. It keeps the named intermediates and
gradients, and runs the block recipe as a loop over k layers for blocks that do not
write their pass out (Bottleneck; DenseResidualBlock with skip 1 or 3)."""
from collections import OrderedDict

import numpy as np

from .._checks import message
from ..layers.base import Layer, backward_through, forward_through

SKIPS = (1, 2, 3)
VARIANTS = ("post", "pre")


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


class ResidualBlock(Layer):
    """a^[l+k] = g(z^[l+k] + shortcut(a^[l])) for k weight layers; "pre": no g at the end.

    The base class of every block: it keeps the named intermediates and gradients
    (`intermediates()`, `gradients()`, `LABELS`) and runs the recipe as a loop over
    the k layers for blocks that do not write their pass out.

    Writing your own block
    ----------------------
    1. In `__init__`, call ``super().__init__(skip=k, variant="post")`` first (it sets
       skip, variant, LABELS, shortcut = None and the empty records), then assign the
       layers as attributes (each layer object used once per pass: relu1 and relu2,
       not one relu twice) and, if the block has one, ``self.shortcut``.
    2. Write `forward(a_l)`, one line per quantity, ending with
       ``self._record(a_l=a_l, z_l1=z_l1, ..., shortcut=shortcut, a_l2=a_l2)``
       (keys in forward order; a None value is left out: the plain twin has no shortcut).
    3. Write `backward(da_l2)` in reverse order: call ``self._require_forward()`` first,
       end with ``da_l = da_l_shortcut + da_l_branch`` and
       ``self._record_gradients(da_l2=..., ..., da_l_shortcut=..., da_l_branch=..., da_l=da_l)``.
    Or, instead of 2 and 3, define `weight(i)` (the layers that make z^[l+i]) and
    `act(i)` (the layers after it) for i = 1..k and inherit the loop below.
    docs/tutorials/01_residual_block.md has a worked example that passes check_gradients.
    """

    variant = "post"

    def __init__(self, skip=2, variant="post"):
        super().__init__()
        self.skip, self.variant = skip, variant
        self.LABELS = _labels(skip, variant)
        self.shortcut = None          # a layer, or None for the plain twin
        self.shortcut_from_h = False  # pre-activation: the shortcut reads g(BN(a^[l])), not a^[l]
        self._forward_values, self._backward_values = OrderedDict(), OrderedDict()

    # -- recording the pass ------------------------------------------------------
    def _record(self, **values):
        """Keep the forward values by name, in the order given; None values are left out."""
        self._forward_values = OrderedDict((k, v) for k, v in values.items() if v is not None)
        self._backward_values = OrderedDict()

    def _record_gradients(self, **gradients):
        """Keep the backward values by name, output first."""
        self._backward_values = OrderedDict(gradients)

    def _require_forward(self):
        if not self._forward_values:
            raise RuntimeError(message(f"{type(self).__name__}.backward", "forward to have run first",
                                       "an empty cache", "Call forward(x) before backward(dout)."))

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

    def _check_input(self, a_l):
        return a_l

    # -- the recipe as a loop over k (Bottleneck, skip 1 and 3) ------------------------
    def weight(self, i):
        """The layers that make z^[l+i] from the previous activation, in order."""
        raise NotImplementedError(f"{type(self).__name__} does not define weight(i)")

    def act(self, i):
        """The layers after weight(i) (post) or in front of it (pre), in order."""
        raise NotImplementedError(f"{type(self).__name__} does not define act(i)")

    def forward(self, a_l):
        """a^[l] -> a^[l+k], looping over the k layers (see the class docstring)."""
        self._check_input(a_l)
        k, v = self.skip, OrderedDict(a_l=a_l)
        if self.variant == "post":
            a = a_l
            for i in range(1, k + 1):
                z = v[f"z_l{i}"] = forward_through(self.weight(i), a)               # z^[l+i]
                if i < k:
                    a = v[f"a_l{i}"] = forward_through(self.act(i), z)              # a^[l+i] = g(z^[l+i])
        else:
            z = a_l
            for i in range(1, k + 1):
                h = v["h_l" if i == 1 else f"h_l{i - 1}"] = forward_through(self.act(i), z)   # g(BN(.))
                z = v[f"z_l{i}"] = forward_through(self.weight(i), h)               # z^[l+i] = conv_i(h)
        if self.shortcut is not None:
            v["shortcut"] = self.shortcut(v["h_l"] if self.shortcut_from_h else a_l)
            z = z + v["shortcut"]
        v[f"a_l{k}"] = z if self.variant == "pre" else forward_through(self.act(k), z)
        self._record(**v)
        return v[f"a_l{k}"]

    def backward(self, dout):
        """da^[l+k] -> da^[l], looping back over the k layers; records the split at a^[l]."""
        self._require_forward()
        k, d = self.skip, OrderedDict()
        d[f"da_l{k}"] = dout
        if self.variant == "post":
            dz = d[f"dz_l{k}"] = backward_through(self.act(k), dout)       # through g after the add
            for i in range(k, 1, -1):
                da = d[f"da_l{i - 1}"] = backward_through(self.weight(i), dz)
                dz = d[f"dz_l{i - 1}"] = backward_through(self.act(i - 1), da)
            dh_l = backward_through(self.weight(1), dz)                     # the branch's da^[l]
        else:
            dz = d[f"dz_l{k}"] = dout                                 # nothing after the add
            for i in range(k, 1, -1):
                dh = d[f"dh_l{i - 1}"] = backward_through(self.weight(i), dz)
                dz = d[f"dz_l{i - 1}"] = backward_through(self.act(i), dh)
            dh_l = d["dh_l"] = backward_through(self.weight(1), dz)
        dsum = d[f"dz_l{k}"]
        dshort = self.shortcut.backward(dsum) if self.shortcut is not None else None
        if self.shortcut_from_h:
            # Both paths pass through g(BN(a^[l])). Its backward is linear in the upstream
            # gradient, so the split is exact; the second call sets bn1's grads for the sum.
            d["dh_l"] = d["dh_l"] + dshort
            dshort = backward_through(self.act(1), dshort)
            da_branch = backward_through(self.act(1), d["dh_l"]) - dshort
        else:
            da_branch = backward_through(self.act(1), dh_l) if self.variant == "pre" else dh_l
        d["da_l_shortcut"] = dshort if dshort is not None else np.zeros_like(da_branch)
        d["da_l_branch"] = da_branch
        d["da_l"] = d["da_l_shortcut"] + da_branch
        self._record_gradients(**d)
        return d["da_l"]

