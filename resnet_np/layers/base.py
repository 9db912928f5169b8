"""Layer, the interface every part of resnet_np shares, and Sequential.

A layer holds four dicts and a flag:

    params   {"W": array, "b": array, ...}   what SGD updates
    grads    same keys as params             SET by backward (never accumulated)
    buffers  {"running_mean": ...}           state that is not trained (BatchNorm)
    cache    {"x": ..., ...}                 what forward saved for backward
    training True/False                      switched by train() / eval()

`forward(x)` fills `cache` and returns the output; `backward(dout)` reads the
cache, sets `grads` and returns dx = dL/dx. A layer that holds other layers
(Sequential, a residual block, a model) registers them as attributes, in the
order they are assigned, and its names are dotted paths: "stage1.0.conv1.W".
"""
from collections import OrderedDict
from collections.abc import Mapping

import numpy as np

from .._checks import message


# What a forward and backward pass leave in a layer: its cache, and in a residual block
# the records behind intermediates() and gradients()
PASS_STATE = ("cache", "_forward_values", "_backward_values")


def emptied_pass_state(model):
    """{id(container): an empty one of its type} for every PASS_STATE container in model's
    layers: a copy.deepcopy memo that copies a model without what its passes left in it."""
    return {id(getattr(layer, key)): type(getattr(layer, key))()
            for _, layer in model.named_layers() for key in PASS_STATE if hasattr(layer, key)}


def dotted(prefix, name):
    """The dotted path of `name` inside `prefix`: ("stage1.0", "conv1") -> "stage1.0.conv1"."""
    return f"{prefix}.{name}" if prefix else name


class Layer:
    """Base class: the params/grads/buffers/cache/training interface.

    Subclasses implement `forward(x)` and `backward(dout)`. Sub-layers assigned as
    attributes (``self.conv1 = Conv2d(...)``) are registered as children in
    assignment order; `named_parameters`, `state_dict`, `train`, `eval` and `astype`
    walk them.
    """

    def __init__(self):
        object.__setattr__(self, "_children", OrderedDict())
        self.params = {}
        self.grads = {}
        self.buffers = {}
        self.cache = {}
        self.training = True

    def __setattr__(self, name, value):
        if isinstance(value, Layer) and name != "_children":
            self._children[name] = value
        elif name in self.__dict__.get("_children", {}):
            del self._children[name]
        object.__setattr__(self, name, value)

    # -- the interface ---------------------------------------------------------
    def forward(self, x):
        raise NotImplementedError(f"{type(self).__name__} does not implement forward")

    def backward(self, dout):
        raise NotImplementedError(f"{type(self).__name__} does not implement backward")

    def __call__(self, x):
        return self.forward(x)

    def add_param(self, name, value):
        """Register a parameter and a zero gradient of the same shape."""
        self.params[name] = value
        self.grads[name] = np.zeros_like(value)

    def _where(self):
        """Where a forward error happened, for messages: "Conv2d(3, 16, kernel_size=3).forward".

        The first line of the repr (a block's or a model's children are left out). Checks
        take this method uncalled (check_array(x, self._where, ...)) and call it only when
        they raise, so the text is never built on the success path.
        """
        return f"{type(self).__name__}({self.extra_repr()}).forward"

    def _cached(self, *keys):
        """Return cached values for backward, or raise if forward has not run."""
        if not all(k in self.cache for k in keys):
            raise RuntimeError(message(
                f"{type(self).__name__}.backward", "forward to have run first",
                "an empty cache", "Call forward(x) before backward(dout)."))
        return tuple(self.cache[k] for k in keys) if len(keys) > 1 else self.cache[keys[0]]

    # -- walking the tree ------------------------------------------------------
    def children(self):
        """(name, layer) pairs of the direct sub-layers, in registration order."""
        return list(self._children.items())

    def named_layers(self, prefix=""):
        """Yield (dotted_name, layer) for this layer and every descendant, depth first."""
        yield prefix, self
        for name, child in self._children.items():
            yield from child.named_layers(dotted(prefix, name))

    def _named(self, attribute):
        for path, layer in self.named_layers():
            for key, value in getattr(layer, attribute).items():
                yield dotted(path, key), value

    def named_parameters(self):
        """Yield ("stage1.0.conv1.W", array) for every parameter, in a fixed order."""
        return self._named("params")

    def named_grads(self):
        """Yield (name, gradient) in the same order as named_parameters()."""
        return self._named("grads")

    def named_buffers(self):
        """Yield (name, array) for every buffer (e.g. BatchNorm running statistics)."""
        return self._named("buffers")

    def num_parameters(self):
        """Total number of trainable scalars (identity shortcuts contribute 0)."""
        return int(sum(p.size for _, p in self.named_parameters()))

    # -- modes and dtypes ------------------------------------------------------
    def train(self, mode=True):
        """Set training mode here and in every sub-layer; returns self."""
        for _, layer in self.named_layers():
            layer.training = bool(mode)
        return self

    def eval(self):
        """Set evaluation mode (BatchNorm uses running statistics); returns self."""
        return self.train(False)

    def fuse(self):
        """An inference-only copy with every BatchNorm folded into its conv (resnet_np.fuse)."""
        from ..fuse import fuse                     # fuse knows the blocks, which import this
        return fuse(self)

    def astype(self, dtype):
        """Convert params, grads and buffers to `dtype` in place; returns self."""
        for _, layer in self.named_layers():
            for store in (layer.params, layer.grads, layer.buffers):
                for key in store:
                    store[key] = store[key].astype(dtype)
            layer.cache = {}
        return self

    # -- saving and loading ----------------------------------------------------
    def state_dict(self):
        """OrderedDict name -> copy of every parameter and buffer."""
        items = list(self.named_parameters()) + list(self.named_buffers())
        return OrderedDict((name, value.copy()) for name, value in items)

    def load_state_dict(self, state, strict=True):
        """Copy arrays from `state` into the parameters and buffers, in place.

        With strict=True every missing, unexpected or mis-shaped key is reported,
        all in one ValueError. With strict=False only matching keys are loaded
        (mis-shaped ones still raise). Returns self.
        """
        where = f"{type(self).__name__}.load_state_dict"
        if not isinstance(state, Mapping):
            raise TypeError(message(where, "a dict name -> array, as state_dict() returns",
                                    type(state).__name__,
                                    "Pass model.state_dict() or dict(np.load(path))."))
        targets = OrderedDict(list(self.named_parameters()) + list(self.named_buffers()))
        missing = [k for k in targets if k not in state]
        unexpected = [k for k in state if k not in targets]
        wrong = [f"{k}: expected {targets[k].shape}, got {np.shape(state[k])}"
                 for k in targets if k in state and np.shape(state[k]) != targets[k].shape]
        problems = ([f"missing keys {missing}"] if missing and strict else []) + \
                   ([f"unexpected keys {unexpected}"] if unexpected and strict else []) + \
                   ([f"wrong shapes [{'; '.join(wrong)}]"] if wrong else [])
        if problems:
            raise ValueError(message(where, "the keys and shapes of this model's state_dict()",
                                     "; ".join(problems),
                                     "Build the same architecture before loading."))
        for key, target in targets.items():
            if key in state:
                target[...] = state[key]
        return self

    # -- printing --------------------------------------------------------------
    def extra_repr(self):
        """The constructor arguments shown by repr(); override in subclasses."""
        return ""

    def __repr__(self):
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not self._children:
            return head + ")"
        lines = [f"  ({name}): " + repr(child).replace("\n", "\n  ")
                 for name, child in self._children.items()]
        return head + "\n" + "\n".join(lines) + "\n)"


class Sequential(Layer):
    """Apply layers one after another; backward runs them in reverse.

    Sequential(layer0, layer1, ...) names the children "0", "1", ...;
    Sequential({"stem": ..., "head": ...}) keeps the given names.

    Example
    -------
    >>> from resnet_np import Sequential, Dense, ReLU
    >>> net = Sequential(Dense(3, 4, rng=0), ReLU(), Dense(4, 2, rng=1))
    >>> net(np.ones((5, 3), dtype=np.float32)).shape
    (5, 2)
    >>> [name for name, _ in net.named_parameters()]
    ['0.W', '0.b', '2.W', '2.b']
    """

    def __init__(self, *layers):
        super().__init__()
        if len(layers) == 1 and isinstance(layers[0], dict):
            items = list(layers[0].items())
        else:
            items = [(str(i), layer) for i, layer in enumerate(layers)]
        for name, layer in items:
            if not isinstance(layer, Layer):
                raise TypeError(message("Sequential", "Layer objects",
                                        f"{type(layer).__name__} for {name!r}"))
            setattr(self, name, layer)

    def __getitem__(self, index):
        if isinstance(index, str):
            return self._children[index]
        return list(self._children.values())[index]

    def __len__(self):
        return len(self._children)

    def __iter__(self):
        return iter(self._children.values())

    def forward(self, x):
        return forward_through(self._children.values(), x)

    def backward(self, dout):
        return backward_through(self._children.values(), dout)


def forward_through(layers, x):
    """x through each layer in turn: the last layer's output."""
    for layer in layers:
        x = layer.forward(x)
    return x


def backward_through(layers, dout):
    """dout back through the layers in reverse order: dL/d(input of the first)."""
    for layer in reversed(layers):
        dout = layer.backward(dout)
    return dout
