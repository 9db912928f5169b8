"""Augmentation as in He et al. 2015 (pad 4, random crop, horizontal flip) and
per-channel normalisation. Vectorised and seeded: pass an explicit rng.
"""
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .._checks import as_generator, check_array, check_int, message


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
