"""Data: a built-in synthetic image set, MNIST/CIFAR-10/digits loaders, augmentation.

Every loader returns ``(X_train, y_train), (X_test, y_test)`` with X float32 NCHW in
[0, 1] and y int64, so any model in the library takes any data set unchanged.

The built-in set ("shapes")
---------------------------
``load_builtin()`` draws 10,000 training and 2,000 test images of 3 x 16 x 16 pixels,
balanced over the 10 classes of ``BUILTIN_CLASSES``: disk, ring, square outline,
filled square, triangle, plus, X, horizontal bars, vertical bars, diagonal stripes.
Each image is one shape at a random centre and half-size (3.5 to 7 pixels), painted
in a random RGB colour on a random RGB background (at least 0.5 apart), plus Gaussian
noise (sigma 0.08), clipped to [0, 1]. No download: it is generated in well under a
second, and the same seed gives the same arrays on every machine.

Why this design: foreground and background colours are drawn from the same
distribution, so every class has the same mean image and the sign of the contrast is
a coin flip; with the random position as well, no single pixel (nor any weighted sum
of pixels) says much about the class. Measured on the default split (seed 0):

    softmax regression on raw pixels (Dense + SGD, 30-100 epochs)   14-21% test
    ridge least squares on one-hot targets (closed form)             16-19% test
    residual_mlp(768, 256, 2 blocks), 30 epochs                      85% test (100% train)
    small CNN (5 conv3x3+BN+ReLU, 2 max-pools, GAP; checked in       99.6% test
    PyTorch before resnet_np had Conv2d), 5 epochs

Within a 3x3 or 5x5 window the shapes differ plainly (a curved edge, a corner, a line
end, a stripe), which is what stacked convolutions detect wherever it is, whatever
the colours. At 16 x 16 a ResNet-20 epoch costs a quarter of a 32 x 32 one, so it
trains in minutes.

With ``with_masks=True`` each split also carries M (N, H, W) int64: 1 where the shape
was painted, 0 for background, for the small U-Net segmentation experiment.

The sample grid in docs/figures/builtin_samples.png was made with::

    python -c "import matplotlib.pyplot as plt; from resnet_np.data import load_builtin, sample_grid; \
    (X, y), _ = load_builtin(n_train=200, n_test=10); \
    plt.imsave('docs/figures/builtin_samples.png', sample_grid(X, y).repeat(4, 0).repeat(4, 1))"
"""
import gzip
import os
import pickle
import struct

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ._checks import as_generator, check_array, check_int, message

IMAGE_SIZE = 16
BUILTIN_CLASSES = ("disk", "ring", "square_outline", "filled_square", "triangle",
                   "plus", "x", "horizontal_bars", "vertical_bars", "diagonal_stripes")
NOISE_STD = 0.08
MIN_CONTRAST = 0.5


# -- the built-in set ------------------------------------------------------------
def _shape_masks(label, dx, dy, r, phase):
    """Boolean masks (n, H, W) of shape `label`; dx, dy pixel offsets from each centre.

    r (n, 1, 1) is the half-size in pixels; phase (n, 1, 1) in [0, 1) shifts stripes.
    """
    box = np.maximum(np.abs(dx), np.abs(dy)) <= r                  # filled square
    dist = np.hypot(dx, dy)
    t = np.maximum(1.0, 0.28 * r)                                  # stroke thickness
    period = 3.0 + (r > 5)                                          # stripe period, px
    stripes = lambda u: ((u / period + phase) % 1.0) < 0.5          # noqa: E731
    if label == 0:
        return dist <= r
    if label == 1:
        return (dist <= r) & (dist >= r - 1.3 * t)
    if label == 2:
        return box & (np.maximum(np.abs(dx), np.abs(dy)) >= r - t)
    if label == 3:
        return box
    if label == 4:                                                  # apex up
        return (np.abs(dy) <= r) & (np.abs(dx) <= (dy + r) / 2)
    if label == 5:
        return box & ((np.abs(dx) <= t / 2 + 0.3) | (np.abs(dy) <= t / 2 + 0.3))
    if label == 6:
        return box & ((np.abs(dx - dy) <= t * 0.75) | (np.abs(dx + dy) <= t * 0.75))
    if label == 7:
        return box & stripes(dy)
    if label == 8:
        return box & stripes(dx)
    return box & stripes((dx + dy) / np.sqrt(2.0))


def _colours(rng, n):
    """Foreground and background RGB (n, 3), iid uniform, resampled until >= 0.5 apart."""
    fg, bg = rng.random((n, 3)), rng.random((n, 3))
    close = np.linalg.norm(fg - bg, axis=1) < MIN_CONTRAST
    while close.any():                  # a few rounds over the rejected rows only
        k = int(close.sum())
        fg[close], bg[close] = rng.random((k, 3)), rng.random((k, 3))
        close = np.linalg.norm(fg - bg, axis=1) < MIN_CONTRAST
    return fg, bg


def make_builtin(n, rng=None, image_size=IMAGE_SIZE):
    """Draw `n` images of the built-in shapes set: X, y and the shape masks M.

    Classes are balanced (counts differ by at most one) and shuffled. Vectorised: the
    only loop is over the 10 classes.

    Shape
    -----
    X: (n, 3, S, S) float32 in [0, 1]   y: (n,) int64   M: (n, S, S) int64, S = image_size

    Example
    -------
    >>> X, y, M = make_builtin(20, rng=0)
    >>> X.shape, y.shape, M.shape
    ((20, 3, 16, 16), (20,), (20, 16, 16))
    >>> np.bincount(y).tolist()
    [2, 2, 2, 2, 2, 2, 2, 2, 2, 2]
    """
    n = check_int(n, "n", "make_builtin")
    S = check_int(image_size, "image_size", "make_builtin", minimum=8)
    rng = as_generator(rng)
    y = rng.permutation(np.arange(n) % len(BUILTIN_CLASSES)).astype(np.int64)
    r = rng.uniform(3.5, 7.0, n) * S / 16                              # half-size, px
    cx, cy = (rng.uniform(r - 0.5, S - 0.5 - r) for _ in range(2))     # centre inside
    phase = rng.random(n)
    grid = np.arange(S, dtype=np.float64)
    dx = grid[None, None, :] - cx[:, None, None]                       # (n, 1, S)
    dy = grid[None, :, None] - cy[:, None, None]                       # (n, S, 1)
    M = np.zeros((n, S, S), dtype=bool)
    for label in range(len(BUILTIN_CLASSES)):
        i = np.flatnonzero(y == label)
        M[i] = _shape_masks(label, dx[i], dy[i], r[i, None, None], phase[i, None, None])
    fg, bg = _colours(rng, n)
    X = np.where(M[:, None], fg[:, :, None, None], bg[:, :, None, None])  # (n, 3, S, S)
    X = X + NOISE_STD * rng.standard_normal(X.shape)
    return np.clip(X, 0.0, 1.0).astype(np.float32), y, M.astype(np.int64)


def load_builtin(seed=0, with_masks=False, n_train=10000, n_test=2000):
    """The built-in shapes set (see the module docstring): train and test splits.

    Train and test come from independent streams of one seed, so the test set does
    not depend on n_train. Returns ``(X_train, y_train), (X_test, y_test)``, or with
    with_masks=True ``(X_train, y_train, M_train), (X_test, y_test, M_test)``.

    Shape
    -----
    X: (N, 3, 16, 16) float32 in [0, 1]   y: (N,) int64 in [0, 10)   M: (N, 16, 16) int64

    Example
    -------
    >>> (X, y), (X_test, y_test) = load_builtin(n_train=100, n_test=50)
    >>> X.shape, X.dtype, y.dtype
    ((100, 3, 16, 16), dtype('float32'), dtype('int64'))
    >>> BUILTIN_CLASSES[int(y[0])] in BUILTIN_CLASSES
    True
    """
    train_seq, test_seq = np.random.SeedSequence(seed).spawn(2)
    X, y, M = make_builtin(n_train, np.random.default_rng(train_seq))
    X_test, y_test, M_test = make_builtin(n_test, np.random.default_rng(test_seq))
    if with_masks:
        return (X, y, M), (X_test, y_test, M_test)
    return (X, y), (X_test, y_test)


def sample_grid(X, y, per_class=8, pad=1):
    """One image showing `per_class` examples of each class, a row per class.

    Takes the first examples of each class found in y (classes in increasing order)
    and rescales to [0, 1] if X lies outside it (e.g. after normalize). Empty cells,
    for classes with fewer examples, and the `pad` pixels between cells are 1 (white).
    No matplotlib here: show the result with plt.imshow or save it with plt.imsave.

    Shape
    -----
    X: (N, C, H, W) with C = 1 or 3   out: (K*(H+pad)+pad, per_class*(W+pad)+pad[, 3])

    Example
    -------
    >>> (X, y), _ = load_builtin(n_train=100, n_test=10)
    >>> sample_grid(X, y, per_class=4).shape
    (171, 69, 3)
    """
    check_array(X, "sample_grid", 4, "(N, C, H, W)")
    N, C, H, W = X.shape
    classes = np.unique(y)
    lo, hi = float(X.min()), float(X.max())
    if lo < 0 or hi > 1:
        X = (X - lo) / max(hi - lo, 1e-12)
    grid = np.ones((len(classes) * (H + pad) + pad, per_class * (W + pad) + pad, C))
    for row, label in enumerate(classes):                   # a loop over cells: display only
        for col, i in enumerate(np.flatnonzero(y == label)[:per_class]):
            top, left = pad + row * (H + pad), pad + col * (W + pad)
            grid[top:top + H, left:left + W] = X[i].transpose(1, 2, 0)   # (H, W, C)
    return grid[..., 0] if C == 1 else grid


# -- file loaders ----------------------------------------------------------------
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


# -- augmentation ----------------------------------------------------------------
def random_crop(X, padding=4, rng=None):
    """Zero-pad each image by `padding` pixels, then crop a random window of its size.

    As in He et al. 2016 for CIFAR (padding 4, 32x32 crops). Image n is
    padded[n, :, top:top + H, left:left + W] with top, left drawn uniformly from
    0 .. 2*padding by ``rng.integers(0, 2 * padding + 1, size=(2, N))``: one view,
    one fancy index, no loop over examples.

    Shape
    -----
    X: (N, C, H, W)   out: (N, C, H, W), a new array

    Example
    -------
    >>> X = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    >>> random_crop(X, padding=1, rng=0)[0, 0]      # top=2, left=1: one row up
    array([[ 4.,  5.,  6.,  7.],
           [ 8.,  9., 10., 11.],
           [12., 13., 14., 15.],
           [ 0.,  0.,  0.,  0.]], dtype=float32)
    """
    where = "random_crop"
    check_array(X, where, 4, "(N, C, H, W)")
    padding = check_int(padding, "padding", where, minimum=0)
    rng = as_generator(rng)
    N, C, H, W = X.shape
    padded = np.pad(X, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    windows = sliding_window_view(padded, (H, W), axis=(2, 3))   # (N, C, 2p+1, 2p+1, H, W)
    top, left = rng.integers(0, 2 * padding + 1, size=(2, N))
    return windows[np.arange(N), :, top, left]                    # (N, C, H, W)


def random_flip(X, rng=None):
    """Flip each image left-right with probability 0.5 (``rng.random(N) < 0.5``).

    Shape
    -----
    X: (N, C, H, W)   out: (N, C, H, W), a new array

    Example
    -------
    >>> X = np.arange(4, dtype=np.float32).reshape(1, 1, 1, 4)
    >>> random_flip(np.concatenate([X, X]), rng=8)[:, 0, 0]
    array([[3., 2., 1., 0.],
           [0., 1., 2., 3.]], dtype=float32)
    """
    check_array(X, "random_flip", 4, "(N, C, H, W)")
    flip = as_generator(rng).random(len(X)) < 0.5
    return np.where(flip[:, None, None, None], X[..., ::-1], X)


def augment_cifar(X, rng=None, padding=4):
    """The paper's augmentation: random_crop(padding) then random_flip, from one rng.

    Shape
    -----
    X: (N, C, H, W)   out: (N, C, H, W)

    Example
    -------
    >>> X = np.ones((8, 3, 16, 16), dtype=np.float32)
    >>> augment_cifar(X, rng=0, padding=2).shape
    (8, 3, 16, 16)
    """
    rng = as_generator(rng)
    return random_flip(random_crop(X, padding, rng), rng)


def channel_stats(X):
    """Per-channel mean and standard deviation over examples and pixels.

    Shape
    -----
    X: (N, C, H, W)   mean, std: (C,), X's dtype (summed in float64)

    Example
    -------
    >>> X = np.stack([np.zeros((2, 2)), np.ones((2, 2))])[None].astype(np.float32)
    >>> [np.round(s, 4) for s in channel_stats(X)]
    [array([0., 1.], dtype=float32), array([0., 0.], dtype=float32)]
    """
    check_array(X, "channel_stats", 4, "(N, C, H, W)")
    mean = X.mean(axis=(0, 2, 3), dtype=np.float64)
    std = X.std(axis=(0, 2, 3), dtype=np.float64)
    return mean.astype(X.dtype), std.astype(X.dtype)


def normalize(X, mean, std):
    """(X - mean) / std per channel: use the training set's channel_stats for every split.

    Shape
    -----
    X: (N, C, H, W)   mean, std: (C,)   out: (N, C, H, W), X's dtype

    Example
    -------
    >>> X = np.full((1, 2, 1, 1), 3.0, dtype=np.float32)
    >>> normalize(X, [1.0, 2.0], [2.0, 0.5]).ravel()
    array([1., 2.], dtype=float32)
    """
    where = "normalize"
    check_array(X, where, 4, "(N, C, H, W)")
    C = X.shape[1]
    mean, std = (np.asarray(v, dtype=X.dtype).reshape(-1) for v in (mean, std))
    if mean.shape != (C,) or std.shape != (C,):
        raise ValueError(message(where, f"mean and std of shape ({C},), one per channel",
                                 f"{mean.shape} and {std.shape}",
                                 "Compute them with channel_stats(X_train)."))
    if not np.all(std > 0):
        raise ValueError(message(where, "std > 0 in every channel", f"std={std.tolist()}",
                                 "A constant channel cannot be normalised; drop it."))
    return (X - mean[:, None, None]) / std[:, None, None]
