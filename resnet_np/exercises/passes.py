"""One case of a layer or loss exercise: build, forward, backward, and a second pass.

The reference (a library layer in float64) runs first on the same inputs and params.
Then the student's object is built, its params are overwritten with the same seeded
values, and forward and backward run on copies of the inputs, so that a change made
in place is visible by comparing the copies with the originals afterwards. A second,
identical forward and backward shows gradients that accumulate (+= instead of =).
"""
import numpy as np

from .diagnosis import Finding
from .explain import as_array, explain
from .student import StudentError, run


def _copies(inputs):
    return {k: np.array(v, copy=True) for k, v in inputs.items()}


def _changed(originals, passed):
    return [k for k, v in passed.items() if not np.array_equal(v, originals[k])]


def _mutation(names, where):
    return Finding("MUTATES_INPUT", ", ".join(names), f"changed in place by {where}.",
                   hint="Never write into an input or the cache: compute into a new array "
                        "(dx = dout * mask, not dout[~mask] = 0 or dout *= mask).",
                   evidence={"changed": names})


def _gradients(ex, obj, dx):
    """The student's (or reference's) gradients by name, copied: dx first, then grads."""
    grads = getattr(obj, "grads", None)
    grads = grads if isinstance(grads, dict) else {}
    named = {ex.dx_name: dx}
    named.update({f"grads['{k}']": grads.get(k) for k in getattr(obj, "params", {})})
    named.update(ex.extra_gradients(obj))
    return {k: _float64_copy(v) for k, v in named.items()}


def _float64_copy(value):
    """A float64 copy of an array-like gradient; None or a non-number as it is."""
    if value is None or as_array(value) is None:
        return value
    return np.array(value, dtype=np.float64, copy=True)


def _assign(own, key, value):
    """params[key] = value; in place when it fits, so an alias like self.W stays valid."""
    current = own.get(key)
    if isinstance(current, np.ndarray) and current.shape == value.shape and \
            current.dtype == np.float64 and current.flags.writeable:
        current[...] = value
    else:
        own[key] = value.copy()


def _set_params(obj, params, findings, symbol):
    """Overwrite obj.params[key] with the seeded values and grads with zeros."""
    own = getattr(obj, "params", None)
    if params and not isinstance(own, dict):
        findings.append(Finding("SHAPE", "params", f"{symbol} has no params dict.",
                                hint=f"Keep self.params = {{...}} with keys {list(params)}."))
        return
    for key, value in params.items():
        shape = np.shape(own.get(key)) if key in own else None
        if shape != value.shape:
            code = "TRANSPOSED" if value.ndim == 2 and shape == value.T.shape else "SHAPE"
            got = "no such key" if shape is None else f"shape {shape}"
            message = f"expected shape {value.shape}, got {got}."
            hint = "Keep the names and shapes of the template: the checker assigns params by key."
            findings.append(Finding(code, f"params['{key}']", message, hint,
                                    evidence={"expected shape": value.shape, "got": got}))
        _assign(own, key, value)
    if params:
        if not isinstance(getattr(obj, "grads", None), dict):
            obj.grads = {}
        for key, value in params.items():
            obj.grads[key] = np.zeros_like(value)


def _forward(ex, obj, inputs):
    """Run the student's forward on copies of the inputs.

    Returns (out, names of the inputs it changed, the copies it was given).
    """
    passed = _copies(inputs)
    out = run(f"{ex.symbol}.forward", obj.forward, *passed.values())
    return out, _changed(inputs, passed), passed


def _backward(ex, obj, inputs, passed, dout):
    """Run the student's backward; returns (gradients, names of what it changed)."""
    cache = getattr(obj, "cache", None)
    snapshot = {k: (v, v.copy()) for k, v in cache.items() if isinstance(v, np.ndarray)} \
        if isinstance(cache, dict) else {}
    before = _copies(passed)
    dout_copy = None if dout is None else dout.copy()
    dx = run(f"{ex.symbol}.backward", obj.backward, *(() if dout is None else (dout_copy,)))
    grads = _gradients(ex, obj, dx)
    changed = _changed(before, passed)
    changed += ["dout"] * (dout is not None and not np.array_equal(dout, dout_copy))
    changed += [f"cache['{k}']" for k, (v, old) in snapshot.items()
                if v.shape != old.shape or not np.array_equal(v, old)]
    return grads, changed


def _missing(value, right, tensor):
    if value is None:
        return Finding("MISSING_GRADIENT", tensor, "was never set.",
                       hint=f"Set {tensor} in backward.")
    a = as_array(value)
    if a is not None and a.shape == right.shape and not a.any() and right.any():
        return Finding("MISSING_GRADIENT", tensor, "is still all zeros: backward never set it.",
                       hint="Store every gradient in backward, e.g. "
                            "self.grads['b'] = dout.sum(axis=0).")
    return None


def explain_tensor(ex, value, right, tensor, kind, case, clues):
    """explain() with the exercise's clues for this tensor and its SCALE factor names."""
    clue = clues.get(tensor, {})
    return explain(value, right, tensor, kind, known=clue.get("known", ()),
                   factors=ex.factors(case), terms=clue.get("terms"),
                   coverage=clue.get("coverage"))


def _accumulates(first, second, tensors):
    """ACCUMULATES findings where a gradient changed between two identical passes."""
    found = []
    for t in tensors:
        a, b = as_array(first.get(t)), as_array(second.get(t))
        if a is None or b is None or a.shape != b.shape or np.allclose(a, b, rtol=1e-9, atol=0):
            continue
        doubled = bool(np.allclose(b, 2 * a, rtol=1e-9, atol=0))
        found.append(Finding("ACCUMULATES", t, "changed between two identical forward and "
                             "backward passes" + (": it doubled." if doubled else "."),
                             evidence={"second pass / first pass": 2.0} if doubled else {}))
    return found


def layer_case(ex, impl, case, result):
    """Fill result.findings for the interface, forward and backward stages of one case."""
    rng = np.random.default_rng(case["seed"])
    ref = ex.reference(case)
    params = ex.seeded_params(ref, rng) if hasattr(ref, "params") else {}
    for key, value in params.items():
        ref.params[key] = value.copy()
    inputs = ex.inputs(case, rng, params)
    right_out = np.asarray(ref.forward(*_copies(inputs).values()))
    dout = rng.standard_normal(right_out.shape) if ex.kind == "layer" else None
    right = _gradients(ex, ref, ref.backward(*(() if dout is None else (dout.copy(),))))
    clues = ex.clues(case, inputs, params, dout)
    found = result.findings
    try:
        obj = run(f"{ex.symbol}(...)", ex.construct, impl, case)
        _set_params(obj, params, found["interface"], ex.symbol)
        if found["interface"]:
            return
        out, changed, passed = _forward(ex, obj, inputs)
    except StudentError as error:
        found["interface"].append(error.finding)
        return
    _forward_checks(ex, out, right_out, changed, case, clues, found)
    if found["interface"] or found["forward"]:
        return
    try:
        grads, changed = _backward(ex, obj, inputs, passed, dout)
    except StudentError as error:
        found["backward"].append(error.finding)
        result.backward_items = [0, 1]
        return
    _backward_checks(ex, obj, inputs, dout, grads, right, changed, case, clues, result)


def _forward_checks(ex, out, right_out, changed, case, clues, found):
    a = as_array(out)
    stage = "interface" if a is None or a.shape != right_out.shape else "forward"
    finding = explain_tensor(ex, out, right_out, "out", "forward", case, clues)
    if finding is not None:
        found[stage].append(finding)
    if changed:
        found["forward"].append(_mutation(changed, f"{ex.symbol}.forward"))


def _backward_checks(ex, obj, inputs, dout, grads, right, changed, case, clues, result):
    found = result.findings["backward"]
    ok = 0
    for tensor, r in right.items():
        finding = _missing(grads[tensor], r, tensor) or \
            explain_tensor(ex, grads[tensor], r, tensor, "gradient", case, clues)
        ok += finding is None
        found += [finding] if finding is not None else []
    side = [_mutation(changed, f"{ex.symbol}.backward")] if changed else []
    if not found and any(k.startswith("grads") for k in right):
        try:
            _, _, passed = _forward(ex, obj, inputs)
            again, _ = _backward(ex, obj, inputs, passed, dout)
            side += _accumulates(grads, again, [k for k in right if k.startswith("grads")])
        except StudentError as error:
            side.append(error.finding)
    found += side
    result.backward_items = [ok + (not side), len(right) + 1]
