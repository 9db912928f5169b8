"""Input validation with one message format for the whole library.

Every error reads "<Where>: expected <X>, got <Y>. <How to fix>." so a student sees
where it happened, what was wanted, what came, and what to try. ValueError is for
values and shapes, TypeError for types. Nothing here uses `assert`.
"""
import numbers

import numpy as np


def message(where, expected, got, fix=""):
    """Build the library's one error message format.

    `where` may also be a function that returns the text, such as a layer's `_where`:
    checks pass it uncalled, so a layer's repr is built only when an error is raised,
    never on the success path of a forward pass.
    """
    where = where() if callable(where) else where
    text = f"{where}: expected {expected}, got {got}."
    return f"{text} {fix}" if fix else text


def as_generator(rng):
    """Return a np.random.Generator from None, an int seed or a Generator."""
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or isinstance(rng, (numbers.Integral, np.random.SeedSequence)):
        return np.random.default_rng(rng)
    raise TypeError(message("rng", "None, an int seed or np.random.Generator",
                            type(rng).__name__))


def check_int(value, name, where, minimum=1):
    """Check that `value` is an int >= minimum (None: any int) and return it as an int."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(message(where, f"{name} to be an int", repr(value)))
    if minimum is not None and value < minimum:
        raise ValueError(message(where, f"{name} >= {minimum}", f"{name}={value}"))
    return int(value)


def check_float(value, name, where, minimum=0.0):
    """Check that `value` is a finite real number >= minimum and return it as float."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(message(where, f"{name} to be a number", repr(value)))
    if not np.isfinite(value) or value < minimum:
        raise ValueError(message(where, f"a finite {name} >= {minimum}", f"{name}={value}"))
    return float(value)


def check_choice(value, name, where, choices):
    """Check that `value` is one of `choices` (compared with ==)."""
    if value not in choices:
        listed = ", ".join(repr(c) for c in choices)
        raise ValueError(message(where, f"{name} one of {listed}", repr(value)))
    return value


def pair(value, name, where, minimum=1):
    """Turn an int or a pair of ints into a tuple (a, b), each >= minimum."""
    if isinstance(value, (tuple, list)) and len(value) == 2:
        return tuple(check_int(v, name, where, minimum) for v in value)
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        v = check_int(value, name, where, minimum)
        return (v, v)
    raise TypeError(message(where, f"{name} to be an int or a pair of ints", repr(value)))


def short_pair(value):
    """Write a pair back as the constructor took it: (3, 3) -> "3", (3, 2) -> "(3, 2)"."""
    return str(value[0]) if value[0] == value[1] else str(tuple(value))


def check_array(x, where, ndim=None, layout=None, sizes=None, fix=""):
    """Check a floating-point NumPy array; with `ndim`, also its shape. Returns x unchanged.

    `where` is the text or a function returning it (see message). With ndim=None any
    shape is accepted; otherwise x must have `ndim` dimensions, a non-empty batch axis 0
    and, for each (axis, size) in `sizes`, that size. `layout` names the dimensions for
    the message, e.g. "(N, 3)" or "(N, C, H, W)". `fix` is the hint for a wrong shape: a
    text, or a function fix(x) returning one, called only then. An input one axis short
    gets the single-example hint instead.
    """
    if not isinstance(x, np.ndarray):
        shape = f" of shape {layout}" if layout else ""
        raise TypeError(message(where, f"x to be a NumPy array{shape}", type(x).__name__,
                                "Convert it with np.asarray(x, dtype=np.float32)."))
    if not np.issubdtype(x.dtype, np.floating):
        raise TypeError(message(where, "a floating-point array", f"dtype {x.dtype}",
                                "Convert it with x.astype(np.float32)."))
    if ndim is None:
        return x
    shape_ok = x.ndim == ndim >= 1 and all(x.shape[a] == s for a, s in (sizes or {}).items())
    if not shape_ok:
        if x.ndim == ndim - 1:
            fix = "For a single example add a batch axis with x[None]."
        elif callable(fix):
            fix = fix(x)
        raise ValueError(message(where, f"x of shape {layout}", str(x.shape), fix))
    if x.shape[0] == 0:
        raise ValueError(message(where, "a non-empty batch", f"shape {x.shape}"))
    return x


def check_labels(y, where, n, num_classes):
    """Check integer class labels of shape (n,) with values in [0, num_classes)."""
    y = np.asarray(y)
    if not np.issubdtype(y.dtype, np.integer):
        raise TypeError(message(where, "integer class labels", f"dtype {y.dtype}",
                                "Convert them with y.astype(np.int64)."))
    if y.shape != (n,):
        raise ValueError(message(where, f"labels of shape ({n},), one per example",
                                 f"shape {y.shape}"))
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(message(where, f"labels in [0, {num_classes - 1}]",
                                 f"values from {y.min()} to {y.max()}",
                                 "Check num_classes of the last layer."))
    return y


def check_finite(x, name, where, fix=""):
    """Check that a floating-point array holds no NaN or inf; return it unchanged.

    Used where a non-finite value would silently poison training: a loss's inputs
    and the data given to Trainer.fit. Layers do not call it: a full-array scan in
    every forward pass would cost speed, and a NaN that starts inside the network
    reaches the loss, which reports it.
    """
    x = np.asarray(x)
    if np.issubdtype(x.dtype, np.inexact) and not np.isfinite(x).all():
        nan, inf = int(np.isnan(x).sum()), int(np.isinf(x).sum())
        first = tuple(int(i) for i in np.argwhere(~np.isfinite(x))[0])
        got = ", ".join(f"{count} {kind}" for count, kind in ((nan, "NaN"), (inf, "inf"))
                        if count)
        raise ValueError(message(where, f"{name} with only finite values",
                                 f"{got} (the first at index {first})",
                                 fix or "Remove or replace the non-finite entries first."))
    return x
