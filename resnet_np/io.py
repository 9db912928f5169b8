"""Checkpoints: save and load a model, its optimizer and any metadata as one .npz file.

The file is a plain NumPy archive, readable with ``np.load(path)`` and no pickle:

    format                        "resnet_np.checkpoint.v1" (how load recognises its files)
    model/<name>                  every parameter and buffer, e.g. model/stage1.0.conv1.W
    optimizer/<slot>/<name>       per-parameter optimizer arrays, e.g. optimizer/velocity/0.W
    optimizer                     the rest of optimizer.state_dict() (lr, momentum, ...) as JSON
    meta                          the **meta keywords as JSON (epoch, schedule position,
                                  rng.bit_generator.state, a history dict, ...)

JSON strings are stored as 0-d unicode arrays, so allow_pickle=False suffices.
`save` writes a temporary file in the same directory, flushes and fsyncs it, then
renames it over `path` with os.replace: a crash mid-save leaves the old file intact.
"""
import json
import os
import tempfile
import zipfile
from collections import OrderedDict
from collections.abc import Mapping
from contextlib import contextmanager

import numpy as np

from ._checks import message
from .layers.base import Layer
from .layers.batchnorm import BatchNorm1d, BatchNorm2d

FORMAT = "resnet_np.checkpoint.v1"


def _to_json(value, where, key):
    """JSON text of `value`; NumPy scalars and arrays become numbers and lists."""
    def default(obj):
        if isinstance(obj, (np.generic, np.ndarray)):
            return obj.tolist()
        raise TypeError(message(where, f"JSON-serialisable values for {key!r} (numbers, "
                                "strings, bools, None, lists, dicts)", type(obj).__name__,
                                "Convert it, e.g. with float(x) or x.tolist()."))
    return json.dumps(value, default=default)


def _split_optimizer(state, arrays):
    """Move arrays out of an optimizer state (nested dicts) into `arrays`; return the rest."""
    def walk(node, prefix):
        if isinstance(node, np.ndarray):
            arrays[prefix] = node
            return {"__array__": prefix}
        if isinstance(node, dict):
            return {k: walk(v, f"{prefix}/{k}") for k, v in node.items()}
        return node
    return walk(state, "optimizer")


def _join_optimizer(node, arrays):
    """Inverse of _split_optimizer: put the arrays back into the JSON tree."""
    if isinstance(node, dict):
        if set(node) == {"__array__"}:
            return arrays[node["__array__"]]
        return {k: _join_optimizer(v, arrays) for k, v in node.items()}
    return node


def save(path, model, optimizer=None, **meta):
    """Write model (and optimizer) state and `meta` to `path` atomically, as .npz.

    The file is written exactly at `path` (no ".npz" is appended). meta values must
    be JSON-serialisable (NumPy scalars and arrays are converted to numbers and lists);
    ``rng.bit_generator.state`` is, so a run can resume its random stream exactly.

    Example
    -------
    >>> import os, tempfile
    >>> from resnet_np import Dense, SGD
    >>> from resnet_np.io import save, load
    >>> model = Dense(3, 2, rng=0)
    >>> path = os.path.join(tempfile.mkdtemp(), "model.npz")
    >>> save(path, model, SGD(model, lr=0.1, momentum=0.9), epoch=3)
    >>> sorted(np.load(path).files)
    ['format', 'meta', 'model/W', 'model/b', 'optimizer']
    >>> load(path, Dense(3, 2, rng=1))
    {'epoch': 3}
    """
    where = "resnet_np.io.save"
    arrays = {"format": np.array(FORMAT)}
    arrays.update((f"model/{k}", v) for k, v in model.state_dict().items())
    if optimizer is not None:
        rest = _split_optimizer(optimizer.state_dict(), arrays)
        arrays["optimizer"] = np.array(_to_json(rest, where, "optimizer"))
    arrays["meta"] = np.array(_to_json(meta, where, "meta"))
    with _atomic(path, "wb") as f:
        np.savez(f, **arrays)


def write_json(path, value):
    """Write `value` as JSON to `path` the way save writes a checkpoint: to a temporary
    file renamed over `path`, so an interrupted write never leaves half a file."""
    with _atomic(path, "w") as f:
        json.dump(value, f, indent=1)


@contextmanager
def _atomic(path, mode):
    """A file to write, opened beside `path` and renamed over it (durably) on success;
    on any error, including Ctrl-C, it is deleted and `path` stays as it was."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _fsync_directory(directory)


def _fsync_directory(directory):
    """Make the rename itself durable (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _read(path):
    """Every array of the checkpoint at `path`, or a clear error naming the path."""
    where = f"resnet_np.io.load({str(path)!r})"
    if not os.path.isfile(path):
        raise FileNotFoundError(message(where, "an existing checkpoint file", "no such file",
                                        "Check the path (save() writes it exactly there)."))
    expected = "a resnet_np checkpoint (.npz written by resnet_np.io.save)"
    try:
        archive = np.load(path, allow_pickle=False)
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise ValueError(f"a single .npy array of shape {np.shape(archive)}")
        with archive:
            arrays = {k: archive[k] for k in archive.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as err:
        raise ValueError(message(where, expected, f"a file NumPy cannot read as .npz ({err})",
                                 "The file is truncated or not a checkpoint; "
                                 "use an earlier copy.")) from None
    if "format" not in arrays or str(arrays["format"]) != FORMAT:
        got = "an .npz without the 'format' entry" if "format" not in arrays \
            else f"format {str(arrays['format'])!r}"
        raise ValueError(message(where, f"{expected} with format {FORMAT!r}", got,
                                 "For a plain np.savez of a state_dict, use "
                                 "model.load_state_dict(dict(np.load(path)))."))
    return where, arrays


def _check_optimizer(where, optimizer_arrays, model):
    """Every per-parameter optimizer array must match a model parameter by name and shape."""
    shapes = {name: p.shape for name, p in model.named_parameters()}
    problems = []
    for key, value in optimizer_arrays.items():
        name = key.split("/", 2)[-1]
        if name not in shapes:
            problems.append(f"{key}: no parameter {name!r} in the model")
        elif value.shape != shapes[name]:
            problems.append(f"{key}: expected {shapes[name]}, got {value.shape}")
    if problems:
        raise ValueError(message(where, "optimizer arrays matching the model's parameters",
                                 "; ".join(problems),
                                 "Build the same architecture before loading."))


def load(path, model, optimizer=None):
    """Load a checkpoint written by `save` into `model` (and `optimizer`); return meta.

    Nothing is changed unless everything fits: every missing, unexpected or mis-shaped
    key is reported by name in one ValueError (by Layer.load_state_dict for the model).
    A missing file is a FileNotFoundError; a truncated, foreign or non-.npz file is a
    ValueError naming the path.

    Example
    -------
    See `save`.
    """
    where, arrays = _read(path)
    model_state = {k[len("model/"):]: v for k, v in arrays.items() if k.startswith("model/")}
    optimizer_arrays = {k: v for k, v in arrays.items() if k.startswith("optimizer/")}
    if optimizer is not None:
        if "optimizer" not in arrays:
            raise ValueError(message(where, "a checkpoint with optimizer state",
                                     "one saved without an optimizer",
                                     "Call load(path, model) without the optimizer."))
        _check_optimizer(where, optimizer_arrays, model)
    try:
        model.load_state_dict(model_state)
    except ValueError as err:
        raise ValueError(f"{where}: {err}") from None
    if optimizer is not None:
        state = _join_optimizer(json.loads(str(arrays["optimizer"])), optimizer_arrays)
        optimizer.load_state_dict(state)
    return json.loads(str(arrays["meta"]))


def read_meta(path):
    """The meta dict of the checkpoint at `path`, without building a model.

    Errors as in `load`: FileNotFoundError for a missing file, ValueError for a
    truncated or foreign one.

    Example
    -------
    >>> import os, tempfile
    >>> from resnet_np import Dense
    >>> path = os.path.join(tempfile.mkdtemp(), "model.npz")
    >>> save(path, Dense(3, 2, rng=0), epoch=3)
    >>> read_meta(path)
    {'epoch': 3}
    """
    _, arrays = _read(path)
    return json.loads(str(arrays["meta"]))



# -- PyTorch names ------------------------------------------------------------------
# Our models name modules by role (stem, stage1, shortcut) and tensors by their math
# (W, b, gamma, beta); torchvision names them conv1, layer1, downsample, weight, bias.
# The translation goes by name, module by module, so it serves resnet18/34, resnet_cifar
# and any single block; names not in these tables pass through unchanged.

_TOP_RENAMES = {("stem", "conv"): ("conv1",), ("stem", "bn"): ("bn1",),
                ("final", "bn"): ("bn",)}                      # resnet_cifar stem and head
_SHORTCUT_RENAMES = {"conv": "0", "bn": "1"}                   # shortcut.conv -> downsample.0
_LEAF_RENAMES = {"W": "weight", "b": "bias", "gamma": "weight", "beta": "bias"}
NUM_BATCHES_TRACKED = "num_batches_tracked"


def _torch_module_path(path):
    """Our dotted module path -> PyTorch's: stem.conv -> conv1, stage2 -> layer2, ..."""
    parts = path.split(".") if path else []
    if tuple(parts[:2]) in _TOP_RENAMES:
        parts = list(_TOP_RENAMES[tuple(parts[:2])]) + parts[2:]
    if parts and parts[0].startswith("stage") and parts[0][5:].isdigit():
        parts[0] = "layer" + parts[0][5:]
    for i in range(len(parts) - 1):
        if parts[i] == "shortcut" and parts[i + 1] in _SHORTCUT_RENAMES:
            parts[i], parts[i + 1] = "downsample", _SHORTCUT_RENAMES[parts[i + 1]]
    return ".".join(parts)


def _torch_key(torch_path, key):
    """PyTorch's name of our array `key` ("W", "gamma", "running_var") in a module."""
    key = _LEAF_RENAMES.get(key, key)
    return f"{torch_path}.{key}" if torch_path else key


def _array_layers(model):
    """(our path, PyTorch path, layer) for every layer of `model` that holds arrays."""
    return [(path, _torch_module_path(path), layer) for path, layer in model.named_layers()
            if layer.params or layer.buffers]


def _is_batchnorm(layer):
    return isinstance(layer, (BatchNorm1d, BatchNorm2d))


def torch_names(model):
    """Dict our name -> PyTorch name, for every parameter and buffer of `model`.

    Use it to compare gradients with a PyTorch twin: ``dict(model.named_grads())[n]``
    belongs to the torch parameter named ``torch_names(model)[n]``.

    Example
    -------
    >>> from resnet_np import BasicBlock
    >>> names = torch_names(BasicBlock(4, 8, stride=2, shortcut="B", rng=0))
    >>> names["conv1.W"], names["bn1.gamma"], names["shortcut.conv.W"], names["shortcut.bn.beta"]
    ('conv1.weight', 'bn1.weight', 'downsample.0.weight', 'downsample.1.bias')
    """
    return {f"{path}.{key}" if path else key: _torch_key(torch_path, key)
            for path, torch_path, layer in _array_layers(model)
            for key in (*layer.params, *layer.buffers)}


class _TorchView(Layer):
    """A model's own arrays (not copies) under PyTorch names.

    Its inherited load_state_dict is the library's one key-and-shape check, so a torch
    state is validated and reported exactly as our own state_dicts are.
    """

    def __init__(self, model):
        super().__init__()
        self.torch_params, self.torch_buffers, self.batchnorm_paths = [], [], []
        for _, torch_path, layer in _array_layers(model):
            self.torch_params += [(_torch_key(torch_path, k), v) for k, v in layer.params.items()]
            self.torch_buffers += [(_torch_key(torch_path, k), v) for k, v in layer.buffers.items()]
            if _is_batchnorm(layer):
                self.batchnorm_paths.append(torch_path)

    def named_parameters(self):
        return iter(self.torch_params)

    def named_buffers(self):
        return iter(self.torch_buffers)


def to_torch_state_dict(model):
    """Copies of every parameter and buffer of `model`, under PyTorch's names.

    Layouts need no change: Dense W (out, in) is torch.nn.Linear's weight, Conv2d W
    (C_out, C_in, kH, kW) is torch.nn.Conv2d's. Names map as follows:

        ours                          PyTorch / torchvision
        W, b                          weight, bias
        gamma, beta                   weight, bias            (BatchNorm)
        running_mean, running_var     running_mean, running_var
        (not kept)                    num_batches_tracked     int64 0-d array, value 0
        shortcut.conv, shortcut.bn    downsample.0, downsample.1
        stem.conv, stem.bn            conv1, bn1              (resnet_cifar)
        stage1, stage2, stage3        layer1, layer2, layer3  (resnet_cifar)
        final.bn                      bn                      (resnet_cifar, variant="pre")
        relu, relu1, pool, ...        (no arrays: absent in both)

    Every other name passes through unchanged, so resnet18/34 (already named conv1, bn1,
    layer1..layer4, fc) differ only in the block parts and the leaves. We do not count
    BatchNorm updates, so num_batches_tracked is 0; PyTorch reads it only when a BatchNorm
    has momentum=None (a cumulative average), which our layers do not offer.
    Arrays keep the model's dtype; the order is PyTorch's (module by module).

    Example
    -------
    >>> from resnet_np import resnet18
    >>> state = to_torch_state_dict(resnet18(rng=0))
    >>> len(state)                       # torchvision's resnet18().state_dict() has 122
    122
    >>> list(state)[:6]
    ['conv1.weight', 'bn1.weight', 'bn1.bias', 'bn1.running_mean', 'bn1.running_var', \
'bn1.num_batches_tracked']
    >>> state["layer2.0.downsample.0.weight"].shape, state["fc.weight"].shape
    ((128, 64, 1, 1), (1000, 512))
    """
    state = OrderedDict()
    for _, torch_path, layer in _array_layers(model):
        for key, value in (*layer.params.items(), *layer.buffers.items()):
            state[_torch_key(torch_path, key)] = value.copy()
        if _is_batchnorm(layer):
            state[_torch_key(torch_path, NUM_BATCHES_TRACKED)] = np.array(0, dtype=np.int64)
    return state


def load_torch_state_dict(model, state, strict=True):
    """Copy arrays named as in PyTorch (see to_torch_state_dict) into `model`; return it.

    `state` maps PyTorch names to NumPy arrays, e.g.
    ``{k: v.numpy() for k, v in torch_model.state_dict().items()}``; values are cast to
    the model's dtype. num_batches_tracked entries of BatchNorm layers are accepted and
    ignored. With strict=True every missing, unexpected or mis-shaped key is reported by
    its PyTorch name in one ValueError, and nothing is changed; strict=False loads the
    keys that match (mis-shaped ones still raise).

    Example
    -------
    >>> from resnet_np import resnet_cifar
    >>> source, target = resnet_cifar(8, rng=0), resnet_cifar(8, rng=1)
    >>> state = to_torch_state_dict(source)
    >>> [k for k in state if k.startswith("layer2.0.")][:3]
    ['layer2.0.conv1.weight', 'layer2.0.bn1.weight', 'layer2.0.bn1.bias']
    >>> model = load_torch_state_dict(target, state)
    >>> bool(np.array_equal(target.stage2[0].conv1.params["W"], source.stage2[0].conv1.params["W"]))
    True
    """
    where = "resnet_np.io.load_torch_state_dict"
    if not isinstance(state, Mapping):
        raise TypeError(message(where, "a dict of PyTorch name -> array", type(state).__name__,
                                "Pass {k: v.numpy() for k, v in torch_model.state_dict().items()}."))
    view = _TorchView(model)
    counters = {_torch_key(path, NUM_BATCHES_TRACKED) for path in view.batchnorm_paths}
    try:
        view.load_state_dict({k: v for k, v in state.items() if k not in counters}, strict)
    except ValueError as err:
        raise ValueError(f"{where}: {err}") from None
    return model
