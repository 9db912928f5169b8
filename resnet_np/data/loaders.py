"""File loaders: MNIST (IDX, gzipped or not), CIFAR-10 (binary or python), digits.

A missing or malformed file gives a FileNotFoundError or ValueError naming the file
and what was expected, never a traceback from deep inside NumPy or pickle. The python
version of CIFAR-10 is read through RestrictedUnpickler, which accepts only plain
containers, bytes and NumPy arrays: a pickle can run code when loaded, and a data
file should never be able to.
"""
import gzip
import os
import pickle
import struct

import numpy as np

from .._checks import message


def _find(directory, names, where, fix):
    """The first of `names` that exists in `directory`, or a FileNotFoundError."""
    for name in names:
        path = os.path.join(directory, name)
        if os.path.isfile(path):
            return path
    raise FileNotFoundError(message(where, f"{' or '.join(names)} in {directory}",
                                    "no such file", fix))


def _read_idx(path, ndim, where):
    """The uint8 array of an IDX file (MNIST's format), gzipped if path ends in .gz."""
    try:
        with (gzip.open if path.endswith(".gz") else open)(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as err:                 # BadGzipFile is an OSError
        raise ValueError(message(where, "a readable IDX file", f"{path} ({err})",
                                 "The file is corrupt or truncated; download it again.")) from None
    magic = bytes([0, 0, 8, ndim])                     # zero, zero, type 8 = ubyte, ndim
    if raw[:4] != magic or len(raw) < 4 + 4 * ndim:
        raise ValueError(message(where, f"an IDX file starting with 0x{magic.hex()} "
                                 f"(unsigned bytes, {ndim} dimensions)",
                                 f"{path} starting with 0x{raw[:4].hex()}",
                                 "Is it the right file, and unpacked only once?"))
    dims = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    data = raw[4 + 4 * ndim:]
    if len(data) != int(np.prod(dims)):
        raise ValueError(message(where, f"{int(np.prod(dims))} data bytes for shape {dims}",
                                 f"{len(data)} bytes in {path}",
                                 "The file is truncated; download it again."))
    return np.frombuffer(data, dtype=np.uint8).reshape(dims)


def _check_split(X, labels, path, where):
    """Labels: one per image, in [0, 9]; returns them as int64."""
    labels = np.asarray(labels, dtype=np.int64)
    if labels.shape != (len(X),) or (labels.size and (labels.min() < 0 or labels.max() > 9)):
        raise ValueError(message(where, f"{len(X)} labels in [0, 9], one per image",
                                 f"shape {labels.shape} with values "
                                 f"{labels.min() if labels.size else '-'} to "
                                 f"{labels.max() if labels.size else '-'} for {path}",
                                 "Are images and labels from the same split?"))
    return labels


def load_mnist(directory):
    """MNIST (or Fashion-MNIST) from the four IDX files in `directory`.

    Reads train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte and
    t10k-labels-idx1-ubyte, each gzipped (.gz) or not. Returns
    ``(X_train, y_train), (X_test, y_test)``.

    Shape
    -----
    X: (N, 1, 28, 28) float32 in [0, 1] (pixel / 255)   y: (N,) int64 in [0, 10)

    Example
    -------
    >>> load_mnist("no/such/dir")
    Traceback (most recent call last):
    FileNotFoundError: load_mnist: expected train-images-idx3-ubyte or ...
    """
    where = "load_mnist"
    fix = "Download the four MNIST files (e.g. from a MNIST mirror) into that directory."
    splits = []
    for prefix in ("train", "t10k"):
        found = [_find(directory, [f"{prefix}-{kind}", f"{prefix}-{kind}.gz"], where, fix)
                 for kind in ("images-idx3-ubyte", "labels-idx1-ubyte")]
        images, labels = _read_idx(found[0], 3, where), _read_idx(found[1], 1, where)
        X = (images[:, None] / np.float32(255)).astype(np.float32)     # (N, 1, H, W)
        splits.append((X, _check_split(X, labels, found[1], where)))
    return tuple(splits)


def _safe_globals():
    """The only globals a CIFAR-10 python batch needs: numpy array reconstruction."""
    array = np.zeros(1, dtype=np.uint8)
    table = {("_codecs", "encode"): __import__("codecs").encode,   # bytes, pickle protocol 2
             ("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype}
    for package in ("numpy.core", "numpy._core"):                     # NumPy 1 and 2 names
        table[(f"{package}.multiarray", "_reconstruct")] = array.__reduce__()[0]
        table[(f"{package}.multiarray", "scalar")] = np.uint8(0).__reduce__()[0]
        table[(f"{package}.numeric", "_frombuffer")] = array.__reduce_ex__(5)[0]
    return table


class RestrictedUnpickler(pickle.Unpickler):
    """An Unpickler that builds plain containers, bytes and NumPy arrays, nothing else.

    Plain pickle.load runs any callable a file names (os.system included); this one's
    find_class refuses every global outside a short list of NumPy's array
    reconstruction functions, raising pickle.UnpicklingError naming the global.

    Example
    -------
    >>> import io, os, pickle
    >>> evil = pickle.dumps(os.system)
    >>> RestrictedUnpickler(io.BytesIO(evil)).load()
    Traceback (most recent call last):
    _pickle.UnpicklingError: refused global posix.system
    """

    ALLOWED = _safe_globals()

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refused global {module}.{name}")
        return self.ALLOWED[(module, name)]


def _read_cifar_python(path, where):
    """(X uint8 (N, 3072), labels) from one pickled batch, through RestrictedUnpickler."""
    expected = "a CIFAR-10 python batch (a dict with data and labels)"
    try:
        with open(path, "rb") as f:
            batch = RestrictedUnpickler(f, encoding="bytes").load()
    except pickle.UnpicklingError as err:
        if str(err).startswith("refused global"):
            raise ValueError(message(where, f"{expected} holding only containers, bytes and "
                                     "NumPy arrays", f"{path}, which asks for {str(err)[15:]}",
                                     "It was not loaded. Use the binary version, or check "
                                     "where this file came from.")) from None
        raise ValueError(message(where, expected, f"{path} ({err})",
                                 "The file is corrupt; download it again.")) from None
    except (EOFError, ValueError, TypeError, AttributeError, IndexError) as err:
        raise ValueError(message(where, expected, f"{path} ({type(err).__name__}: {err})",
                                 "The file is truncated or corrupt; download it again.")) from None
    batch = {k.decode() if isinstance(k, bytes) else k: v for k, v in dict(batch).items()} \
        if isinstance(batch, dict) else {}
    data = batch.get("data")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 \
            or data.shape[1] != 3072 or "labels" not in batch:
        raise ValueError(message(where, f"{expected}, data uint8 of shape (N, 3072)",
                                 f"{path} with keys {sorted(batch)}",
                                 "Is it a CIFAR-10 batch (CIFAR-100 is not supported)?"))
    return data, batch["labels"]


def _read_cifar_binary(path, where):
    """(X uint8 (N, 3072), labels) from one binary batch: records of 1 + 3072 bytes."""
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size == 0 or raw.size % 3073:
        raise ValueError(message(where, "a CIFAR-10 binary batch of records of 3073 bytes "
                                 "(1 label + 3072 pixels)", f"{raw.size} bytes in {path}",
                                 "The file is truncated; download it again."))
    records = raw.reshape(-1, 3073)
    return records[:, 1:], records[:, 0]


def load_cifar10(directory):
    """CIFAR-10 from its binary batches, or its python batches through a safe unpickler.

    Looks in `directory` and in `directory`/cifar-10-batches-bin for data_batch_1.bin ..
    data_batch_5.bin and test_batch.bin; failing that, in `directory` and
    `directory`/cifar-10-batches-py for data_batch_1 .. data_batch_5 and test_batch,
    read with RestrictedUnpickler (never plain pickle.load).

    Shape
    -----
    X: (N, 3, 32, 32) float32 in [0, 1]   y: (N,) int64 in [0, 10)   (N = 50000, 10000)
    """
    where = "load_cifar10"
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for sub, suffix, read in (("cifar-10-batches-bin", ".bin", _read_cifar_binary),
                              ("cifar-10-batches-py", "", _read_cifar_python)):
        for folder in (directory, os.path.join(directory, sub)):
            if os.path.isfile(os.path.join(folder, names[0] + suffix)):
                fix = "Download all six batches of the same version."
                paths = [_find(folder, [n + suffix], where, fix) for n in names]
                batches = [(read(p, where), p) for p in paths]
                splits = []
                for part in (batches[:5], batches[5:]):
                    X = np.concatenate([data for (data, _), _ in part])
                    X = (X.reshape(-1, 3, 32, 32) / np.float32(255)).astype(np.float32)
                    y = np.concatenate([_check_split(data, labels, p, where)
                                        for (data, labels), p in part])
                    splits.append((X, y))
                return tuple(splits)
    raise FileNotFoundError(message(where, f"data_batch_1.bin (binary) or data_batch_1 "
                                    f"(python) in {directory} or its cifar-10-batches-* folder",
                                    "neither", "Download and unpack CIFAR-10 there."))


def load_digits(seed=0, test_fraction=0.2):
    """scikit-learn's 8x8 handwritten digits (1,797 images), split by a seeded shuffle.

    Needs the `digits` extra: ``pip install "resnet_np[digits]"`` (scikit-learn).
    Pixel values 0..16 are divided by 16.

    Shape
    -----
    X: (N, 1, 8, 8) float32 in [0, 1]   y: (N,) int64 in [0, 10)
    """
    where = "load_digits"
    try:
        from sklearn.datasets import load_digits as sklearn_digits
    except ImportError:
        raise ImportError(message(where, "scikit-learn, from the 'digits' extra",
                                  "no module named 'sklearn'",
                                  'Install it with: pip install "resnet_np[digits]"')) from None
    if not 0 < test_fraction < 1:
        raise ValueError(message(where, "0 < test_fraction < 1", f"{test_fraction}"))
    digits = sklearn_digits()
    X = (digits.images[:, None] / 16.0).astype(np.float32)           # (N, 1, 8, 8)
    y = digits.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(y))
    n_test = int(round(test_fraction * len(y)))
    test, train = order[:n_test], order[n_test:]
    return (X[train], y[train]), (X[test], y[test])
