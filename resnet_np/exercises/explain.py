"""Name the bug: compare a student's tensor with the reference and with known-wrong variants.

Given the right tensor r and the student's s, `explain` tries, in order:

    known variants   s equals a wrong result the exercise computed on purpose
                     (stride ignored, kernel flipped, mask from dout, ...)
    SHAPE            wrong shape (TRANSPOSED if it is r's transposed shape)
    TRANSPOSED       s == r with two axes swapped
    SCALE            s == c r for one constant c; c is named (1/N, N, 2, -1, ...)
    MISSING_TERM     r = t1 + t2 + ... (named terms); s fits the same sum with a term left out
    OVERWRITE        s == r wherever one window covers a pixel, wrong only where several do
    *_MISMATCH       none of these: where the error is largest

Every test is a least-squares fit or an equality to 1e-6 relative error, so the
evidence it returns (a factor, the fitted coefficients) is a number a student can check.
"""
import numpy as np

from .diagnosis import Finding

CLOSE = 1e-7          # relative error below which two float64 tensors are "the same"
FIT = 1e-6            # relative residual below which a fit explains a tensor


def rel_error(a, b):
    """max|a - b| / max(max|a|, max|b|, tiny), as resnet_np.gradcheck.rel_error."""
    scale = max(np.max(np.abs(a), initial=0.0), np.max(np.abs(b), initial=0.0), 1e-12)
    return float(np.max(np.abs(a - b), initial=0.0) / scale)


def same(a, b, tol=CLOSE):
    return np.shape(a) == np.shape(b) and rel_error(a, b) < tol


def as_array(value):
    """The student's value as a float64 array, or None if it is None or not numeric."""
    if value is None:
        return None
    try:
        a = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    return a


def explain(s, r, tensor, kind, known=(), factors=None, terms=None, coverage=None):
    """Return None if s is right, else the Finding that best names what is wrong.

    s, r : the student's and the reference tensor
    tensor : its name in messages ("dx", "grads['W']", "out")
    kind : "forward" or "gradient" (picks FORWARD_MISMATCH or GRADIENT_MISMATCH)
    known : list of (code, message, wrong tensor): deliberate mistakes to compare with
    factors : dict name -> value, to name a SCALE factor ({"N": 5, "H*W": 12})
    terms : dict term name -> array, with sum(terms) == r (for MISSING_TERM)
    coverage : array of r's shape, how many windows cover each entry (for OVERWRITE)
    """
    if s is None:
        return Finding("SHAPE", tensor, "is None: did you forget to return it?",
                       evidence={"expected shape": r.shape})
    a = as_array(s)
    if a is None:
        return Finding("SHAPE", tensor, f"is a {type(s).__name__}, not an array of numbers.",
                       evidence={"expected shape": r.shape})
    bad = ~np.isfinite(a)
    if a.shape == r.shape and bad.any() and np.isfinite(r).all():
        return Finding("UNSTABLE", tensor, f"holds {int(bad.sum())} NaN or inf value(s) where the "
                       "reference is finite.", evidence={"first at index": _index(
                           np.argwhere(bad)[0])} if a.ndim else {})
    if same(a, r):
        return None
    for code, message, wrong in known:
        if same(a, wrong):
            evidence = {"relative error to this mistake": rel_error(a, wrong)}
            evidence.update({"relative error to the right one": rel_error(a, r)}
                            if a.shape == r.shape else {"right shape": r.shape, "got": a.shape})
            return Finding(code, tensor, message, evidence=evidence)
    if a.shape != r.shape:
        return _shape(a, r, tensor)
    return (_transposed(a, r, tensor) or _scaled(a, r, tensor, factors or {})
            or _missing_term(a, r, tensor, terms) or _overwrite(a, r, tensor, coverage)
            or _mismatch(a, r, tensor, kind, getattr(s, "dtype", None)))


def _index(idx):
    return tuple(int(i) for i in idx)


def _transposes(r):
    """(description, axes) for the swaps of two axes a student confuses."""
    if r.ndim == 2:
        return [("the transpose of the right one", (1, 0))]
    if r.ndim == 4:
        return [("the right one with axes 0 and 1 swapped", (1, 0, 2, 3)),
                ("the right one with kH and kW swapped", (0, 1, 3, 2))]
    return []


def _shape(a, r, tensor):
    for words, axes in _transposes(r):
        if a.shape == r.transpose(axes).shape and a.shape != r.shape:
            values_match = same(a, r.transpose(axes))
            message = (f"is {words}: shape {a.shape} instead of {r.shape}."
                       if values_match else
                       f"has the transposed shape {a.shape}: the right one is {r.shape}.")
            return Finding("TRANSPOSED", tensor, message,
                           evidence={"expected shape": r.shape, "got shape": a.shape,
                                     "values are the transpose": values_match})
    return Finding("SHAPE", tensor, f"has shape {a.shape}, expected {r.shape}.",
                   evidence={"expected shape": r.shape, "got shape": a.shape})


def _transposed(a, r, tensor):
    for words, axes in _transposes(r):
        t = r.transpose(axes)
        if t.shape == a.shape and not same(t, r) and same(a, t):
            return Finding("TRANSPOSED", tensor, f"is {words} (the shape matches only "
                           "because it is square).", evidence={"shape": a.shape})
    return None


def _fit(a, columns):
    """Least-squares coefficients of a on the columns, and the relative residual."""
    A = np.stack([c.ravel() for c in columns], axis=1)
    coef, *_ = np.linalg.lstsq(A, a.ravel(), rcond=None)
    residual = np.linalg.norm(A @ coef - a.ravel()) / max(np.linalg.norm(a), 1e-300)
    return coef, residual


def name_factor(c, factors):
    """'1/N' for c = 1/N, '-1' for c = -1, ...; None if no name fits."""
    names = {"-1": -1.0, "2": 2.0, "1/2": 0.5}
    for name, value in factors.items():
        below = f"({name})" if "*" in name else name
        names.update({name: value, f"1/{below}": 1.0 / value, f"-{name}": -value,
                      f"-1/{below}": -1.0 / value})
    for name, value in names.items():
        if abs(c - value) <= 1e-6 * abs(value):
            return name
    return None


def _scaled(a, r, tensor, factors):
    if not np.any(r):
        return None
    (c,), residual = _fit(a, [r])
    if residual > FIT or abs(c - 1) < 1e-6:
        return None
    name = name_factor(c, factors)
    words = f"times {name}" if name else f"times {c:.4g}"
    if name == "-1":
        words = "with the wrong sign (times -1)"
    evidence = {"factor": float(c)}
    if name:
        evidence["factor name"] = name
        evidence.update({k: v for k, v in factors.items() if k in name})
    return Finding("SCALE", tensor, f"is the right {tensor} {words}.", evidence=evidence)


def _missing_term(a, r, tensor, terms):
    if not terms:
        return None
    names = list(terms)
    coef, residual = _fit(a, [terms[n] for n in names])
    if residual > FIT:
        return None
    fitted = {n: round(float(c), 4) + 0.0 for n, c in zip(names, coef)}   # + 0.0: no -0.0
    missing = [n for n in names if abs(fitted[n]) < 1e-4]
    if missing and all(abs(fitted[n] - 1) < 1e-4 for n in names if n not in missing):
        return Finding("MISSING_TERM", tensor, f"lacks the {' and the '.join(missing)}.",
                       evidence={"fitted coefficients (right: all 1)": fitted})
    return Finding("GRADIENT_MISMATCH", tensor, "combines the right terms with the wrong "
                   "coefficients (a sign or a factor on one term).",
                   evidence={"fitted coefficients (right: all 1)": fitted})


def _overwrite(a, r, tensor, coverage):
    if coverage is None:
        return None
    wrong = np.abs(a - r) > CLOSE * max(np.max(np.abs(r)), 1e-12)
    single = coverage <= 1
    if wrong.any() and not (wrong & single).any() and (~single).any():
        return Finding("OVERWRITE", tensor, "is right at every pixel one window covers and "
                       "wrong only where windows overlap: a later window overwrote (=) what "
                       "an earlier one wrote instead of adding to it (+=).",
                       evidence={"wrong entries": int(wrong.sum()),
                                 "all covered by 2 or more windows": True})
    return None


def _mismatch(a, r, tensor, kind, dtype):
    code = "FORWARD_MISMATCH" if kind == "forward" else "GRADIENT_MISMATCH"
    where = _index(np.unravel_index(np.argmax(np.abs(a - r)), r.shape))
    evidence = {"relative error": rel_error(a, r), "largest error at index": where,
                "wrong entries": int(np.sum(~np.isclose(a, r, rtol=1e-6, atol=1e-9))),
                "of": int(r.size)}
    message = "is wrong, and none of the known mistakes explains it."
    low = dtype is not None and np.issubdtype(dtype, np.floating) and dtype != np.float64
    if low and rel_error(a, r) < 100 * np.finfo(dtype).eps:
        message = (f"is close but not equal: it was computed in {dtype}, and the checker "
                   "compares in float64 to 1e-7.")
        evidence["dtype"] = str(dtype)
    return Finding(code, tensor, message, evidence=evidence)
