"""One small block, run once forward and once backward from a seed: what `trace` shows.

    >>> import resnet_np as rn
    >>> block = rn.BasicBlock(2, 4, stride=2, shortcut="A", rng=0)
    >>> out = run_block(block)            # a seeded batch (4, 2, 8, 8), then a seeded dout
    >>> out.shape
    (4, 4, 4, 4)
    >>> sorted(block.gradients())[:2]
    ['da_l', 'da_l1']
"""
import numpy as np

from .._checks import check_choice

BLOCK_KINDS = ("dense", "basic", "preact", "bottleneck")
SHORTCUTS = ("identity", "projection", "none")


def example_block(kind="dense", features=4, skip=2, activation="relu", shortcut="identity",
                  rng=0):
    """A small block of one kind, as `python -m resnet_np trace --block KIND` builds it.

    kind : "dense" (DenseResidualBlock, with `skip` and `activation`), "basic"
        (BasicBlock), "preact" (PreActBlock) or "bottleneck" (Bottleneck, mid width
        features // 2).
    shortcut : "identity" (the width is kept), "projection" (the width grows by 2 for
        dense blocks; conv blocks double their channels with stride 2 and option "B"),
        or "none" (the plain twin).
    """
    from .. import blocks
    check_choice(kind, "kind", "example_block", BLOCK_KINDS)
    check_choice(shortcut, "shortcut", "example_block", SHORTCUTS)
    if kind == "dense":
        plain = None if shortcut == "none" else shortcut
        width = features + 2 if shortcut == "projection" else None
        return blocks.DenseResidualBlock(features, skip=skip, activation=activation,
                                         shortcut=plain, out_features=width, rng=rng)
    grow = shortcut == "projection"
    out_channels, stride = (2 * features, 2) if grow else (features, 1)
    option = {"identity": "identity", "projection": "B", "none": None}[shortcut]
    if kind == "bottleneck":
        return blocks.Bottleneck(features, max(1, features // 2), out_channels, stride=stride,
                                 shortcut=option, rng=rng)
    cls = blocks.BasicBlock if kind == "basic" else blocks.PreActBlock
    return cls(features, out_channels, stride=stride, shortcut=option, rng=rng)


def run_block(block, x=None, rng=0, batch=4):
    """Run one forward and one backward pass with seeded data; return the output.

    One generator, seeded with `rng`, draws the input batch (unless `x` is given:
    (batch, features) for dense blocks, (batch, C, 8, 8) for conv blocks, in the
    parameters' dtype) and then the upstream gradient dL/d(output).
    Afterwards `block.intermediates()` and `block.gradients()` hold the pass.
    """
    rng = np.random.default_rng(rng)
    dtype = next((p.dtype for _, p in block.named_parameters()), np.float32)
    if x is None:
        features = getattr(block, "features", None)
        shape = (batch, features) if features is not None else (batch, block.in_channels, 8, 8)
        x = rng.standard_normal(shape).astype(dtype)
    out = block.forward(x)
    block.backward(rng.standard_normal(out.shape).astype(out.dtype))
    return out
