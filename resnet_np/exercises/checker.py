"""check(name, impl): run a student's code against the reference and name what is wrong.

Stages, in order, stopping at the first that fails:

    interface    the object builds, has the params the exercise names with their
                 shapes, forward runs and returns the right shape
    forward      the output equals the reference's (float64, relative error < 1e-7)
    backward     backward runs; dx and every gradient equal the reference's
                 (credit per tensor); no input changed in place; grads do not
                 accumulate across two identical passes
    robustness   the same on the other cases (odd N, non-square, stride 2, large logits)

Every call into the student's code goes through student.run, which turns an
exception into a Finding (NOT_IMPLEMENTED or EXCEPTION with the student's own line),
so a report never shows a traceback or the checker's source. Hidden cases report
findings without their inputs.
"""
import os

import numpy as np

from . import catalogue
from .diagnosis import Diagnosis, Finding
from .explain import as_array
from .passes import explain_tensor, layer_case
from .student import StudentError, load, run

WEIGHTS = {"layer": {"interface": 0.1, "forward": 0.3, "backward": 0.4, "robustness": 0.2},
           "function": {"interface": 0.1, "forward": 0.6, "robustness": 0.3}}

DEFAULT_HINTS = {
    "SHAPE": "Print the shapes as you go; every gradient has the shape of what it "
             "differentiates.",
    "TRANSPOSED": "A gradient has the shape of its parameter: check the order of the "
                  "factors in the matrix product.",
    "SCALE": "The loss divides by N once; no layer divides again, and db sums (not averages).",
    "ACCUMULATES": "Set each gradient (self.grads[key] = ...), do not add to it (+=).",
    "MUTATES_INPUT": "Never write into an input or the cache: compute into a new array.",
    "UNSTABLE": "Avoid exp of large numbers: subtract the maximum first.",
    "FORWARD_MISMATCH": "Compare your forward with the formula in the docstring on a tiny "
                        "input by hand; read params from self.params every time (the "
                        "checker replaces them).",
    "GRADIENT_MISMATCH": "Derive the gradient again on one example; check it with "
                         "resnet_np.check_gradients on your layer.",
}


class _Case:
    """The findings of one case, per stage, and the backward stage's per-item credit."""

    def __init__(self):
        self.findings = {"interface": [], "forward": [], "backward": []}
        self.backward_items = [0, 0]                # [passed, total]

    def fraction(self, stage):
        if stage == "backward":
            passed, total = self.backward_items
            return passed / total if total else 0.0
        return 0.0 if self.findings[stage] else 1.0


def _copies(inputs):
    return {k: np.array(v, copy=True) for k, v in inputs.items()}


def _function_case(ex, impl, case):
    """interface and forward for a function exercise (im2col, col2im, sgd_step)."""
    result = _Case()
    rng = np.random.default_rng(case["seed"])
    inputs = ex.inputs(case, rng, {})
    right = ex.call(ex.reference(case), _copies(inputs), case)
    clues = ex.clues(case, inputs, {}, None)
    passed = _copies(inputs)
    try:
        outputs = run(ex.symbol, ex.call, impl, passed, case)
    except StudentError as error:
        result.findings["interface"].append(error.finding)
        return result
    for tensor, r in right.items():
        a = as_array(outputs[tensor])
        stage = "interface" if a is None or a.shape != r.shape else "forward"
        finding = explain_tensor(ex, outputs[tensor], r, tensor, "forward", case, clues)
        result.findings[stage] += [finding] if finding else []
    if not result.findings["interface"]:
        allowed = getattr(ex, "allowed_in_place", ())
        changed = [k for k, v in passed.items()
                   if k not in allowed and not np.array_equal(v, inputs[k])]
        if changed:
            result.findings["forward"].append(Finding(
                "MUTATES_INPUT", ", ".join(changed), f"changed in place by {ex.symbol}.",
                hint=ex.hint("MUTATES_INPUT", "") or "Never write into an input.",
                evidence={"changed": changed}))
    return result


def _robustness(ex, impl, cases, hidden):
    """(fraction of the cases passed, findings of the first failing case)."""
    passed, first = 0, []
    for number, case in enumerate(cases, start=2):
        result = _one_case(ex, impl, case)
        found = [f for stage in result.findings.values() for f in stage]
        if not found:
            passed += 1
        elif not first:
            label = f"hidden {number}" if hidden[number - 2] else f"{number} ({ex.label(case)})"
            for f in found:
                f.evidence = {"case": label, **f.evidence}
            first = found
    return (passed / len(cases) if cases else 1.0), first


def _one_case(ex, impl, case):
    if ex.kind == "function":
        return _function_case(ex, impl, case)
    result = _Case()
    layer_case(ex, impl, case, result)
    return result


def check(name, impl, cases="public"):
    """Check a student's implementation of exercise `name`; return a Diagnosis.

    Parameters
    ----------
    name : str, an exercise from `python -m resnet_np exercise list`
    impl : the student's class or function, or the path of the file defining it
    cases : "public" (what students run), "hidden" (other seeds and shapes, inputs
        never printed) or "all" (public then hidden: for grading)

    Example
    -------
    >>> from resnet_np import Dense
    >>> print(check("dense", Dense))
    dense: public checks passed; grading also uses hidden cases (score 1.00).
    """
    ex = catalogue.get(name)
    if cases not in ("public", "hidden", "all"):
        raise ValueError(f"check: expected cases 'public', 'hidden' or 'all', got {cases!r}.")
    selected = [(c, False) for c in ex.public] * (cases != "hidden") + \
               [(c, True) for c in ex.hidden] * (cases != "public")
    weights = WEIGHTS["function" if ex.kind == "function" else "layer"]
    credit = {stage: (0.0, w) for stage, w in weights.items()}
    if isinstance(impl, (str, os.PathLike)):
        impl = load(impl, ex.symbol)
        if isinstance(impl, Finding):
            return _with_hints(ex, Diagnosis(name, cases, [impl], credit))
    first = _one_case(ex, impl, selected[0][0])
    findings = []
    for stage in [s for s in weights if s != "robustness"]:
        credit[stage] = (weights[stage] * first.fraction(stage), weights[stage])
        findings += first.findings[stage]
        if first.findings[stage]:
            return _with_hints(ex, Diagnosis(name, cases, findings, credit))
    rest = selected[1:]
    fraction, found = _robustness(ex, impl, [c for c, _ in rest], [h for _, h in rest])
    credit["robustness"] = (weights["robustness"] * fraction, weights["robustness"])
    return _with_hints(ex, Diagnosis(name, cases, findings + found, credit))


def _with_hints(ex, diagnosis):
    """Merge findings that say the same of several tensors; give each its hint."""
    merged = []
    for f in diagnosis.findings:
        last = merged[-1] if merged else None
        if last and (last.code, last.message, last.evidence) == (f.code, f.message, f.evidence):
            last.tensor = f"{last.tensor}, {f.tensor}"
            continue
        merged.append(f)
    for f in merged:
        f.hint = f.hint or ex.hint(f.code, f.tensor) or DEFAULT_HINTS.get(f.code, "")
    diagnosis.findings = merged
    return diagnosis
