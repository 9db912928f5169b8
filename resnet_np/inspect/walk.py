"""Walking a model: the units the inspection tools look at, and recording hooks.

`_recording` wraps a sub-layer's `forward` or `backward` with an instance attribute
that records (input, output) and removes it afterwards, so the tools see every
layer's values without any change to the layers.
"""
from collections import OrderedDict
from contextlib import contextmanager

from .._checks import message
from ..blocks import ResidualBlock
from ..layers.base import Layer, dotted


def _check_layer(model, where):
    if not isinstance(model, Layer):
        raise TypeError(message(where, "a Layer (a model, block or layer)", type(model).__name__,
                                "Pass the network itself, e.g. resnet_cifar(20)."))
    return model


@contextmanager
def _recording(layers, method):
    """Wrap `method` of each (name, layer) so that record[name] = (input, output)."""
    record, saved = OrderedDict(), []
    for name, layer in layers:
        original = getattr(layer, method)

        def hooked(value, _original=original, _name=name):
            result = _original(value)
            record[_name] = (value, result)
            return result
        saved.append((layer, layer.__dict__.get(method)))
        object.__setattr__(layer, method, hooked)
    try:
        yield record
    finally:
        for layer, previous in saved:
            if previous is None:
                object.__delattr__(layer, method)
            else:
                object.__setattr__(layer, method, previous)


def _contains_block(layer):
    return any(isinstance(sub, ResidualBlock) for _, sub in layer.named_layers())


def units(model):
    """(name, layer) of the units gradient_norms and identity_path_report look at.

    A unit is a residual block, or a sub-layer holding no residual block. The model
    itself and any container that holds residual blocks are opened, so resnet_cifar
    gives stem, stage1.0, ..., stage3.{n-1}, (final,) pool, fc and residual_mlp gives
    stem, stem_act, blocks.0, ..., head. A lone block or layer is one unit.

    >>> import resnet_np as rn
    >>> [name for name, _ in units(rn.residual_mlp(3, 4, 2, 2, rng=0))]
    ['stem', 'stem_act', 'blocks.0', 'blocks.1', 'head']
    """
    if isinstance(model, ResidualBlock) or not model.children():
        return [(type(model).__name__, model)]

    def walk(layer, prefix):
        for name, child in layer.children():
            path = dotted(prefix, name)
            if not isinstance(child, ResidualBlock) and _contains_block(child):
                yield from walk(child, path)
            else:
                yield path, child
    return list(walk(model, ""))

