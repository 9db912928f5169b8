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

import numpy as np

from ._checks import message

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
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
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
