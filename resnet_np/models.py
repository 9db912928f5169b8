"""Model builders: residual networks and their plain twins.

A plain twin (residual=False) has the same layers, parameter names and, for the
same rng, the same initial weights as the residual model: only the addition of
the shortcut is missing. Comparing the two isolates what the shortcut does.
"""
from ._checks import as_generator, check_int
from .blocks import DenseResidualBlock
from .layers.activations import get_activation
from .layers.base import Sequential
from .layers.dense import Dense


def residual_mlp(in_features, width, num_blocks, num_classes, skip=2, activation="relu",
                 residual=True, rng=None):
    """A fully connected residual network: stem, num_blocks residual blocks, head.

    Layout: stem = Dense(in_features, width) then g; blocks.0 .. blocks.{n-1} =
    DenseResidualBlock(width, skip, activation); head = Dense(width, num_classes)
    giving logits. Depth in dense layers: 2 + num_blocks * skip.

    residual=False gives the plain twin (shortcut=None in every block) with the same
    initial weights as the residual model built from the same rng.

    Shape
    -----
    x: (N, in_features)   out: (N, num_classes)

    Example
    -------
    >>> net = residual_mlp(8, width=16, num_blocks=2, num_classes=3, rng=0)
    >>> twin = residual_mlp(8, width=16, num_blocks=2, num_classes=3, residual=False, rng=0)
    >>> net.num_parameters() == twin.num_parameters()
    True
    >>> bool(np.array_equal(net.blocks[1].fc2.params["W"], twin.blocks[1].fc2.params["W"]))
    True
    """
    where = "residual_mlp"
    in_features = check_int(in_features, "in_features", where)
    width = check_int(width, "width", where)
    num_blocks = check_int(num_blocks, "num_blocks", where, minimum=0)
    num_classes = check_int(num_classes, "num_classes", where)
    rng = as_generator(rng)
    shortcut = "identity" if residual else None
    stem = Dense(in_features, width, rng=rng)
    stem_act = get_activation(activation, where)
    blocks = [DenseResidualBlock(width, skip=skip, activation=activation, shortcut=shortcut,
                                 rng=rng) for _ in range(num_blocks)]
    head = Dense(width, num_classes, rng=rng)
    return Sequential({"stem": stem, "stem_act": stem_act,
                       "blocks": Sequential(*blocks), "head": head})
