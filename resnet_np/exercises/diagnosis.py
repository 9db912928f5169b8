"""Finding and Diagnosis: what the checker says about a student's code.

A Finding names one problem with a stable code (the table below), the tensor it is
about, a message, a hint and the evidence (numbers, shapes) that led to it. A
Diagnosis collects the findings of one check, the credit earned at each stage and
the score. Its str() is the short report a student reads: findings first, no
traceback, no test source, no hidden inputs.
"""
import json

CODES = {
    "NOT_IMPLEMENTED": "the template is untouched: a method still raises NotImplementedError",
    "EXCEPTION": "your code raised an exception",
    "SHAPE": "an output or gradient has the wrong shape",
    "TRANSPOSED": "a gradient is the transpose of the right one",
    "SCALE": "a gradient (or output) is the right one times a constant",
    "MISSING_TERM": "a named term of the right gradient is absent",
    "MISSING_GRADIENT": "a gradient was never set (no key in grads, or still all zeros)",
    "WRONG_MASK": "the backward used the wrong mask (from dout, or before the addition)",
    "STRIDE_IGNORED": "the output is what the reference gives with stride 1",
    "PADDING_IGNORED": "the output is what the reference gives without padding",
    "KERNEL_FLIPPED": "the output is the reference with the kernel flipped (true convolution)",
    "OVERWRITE": "overlapping windows assign (=) where they should add (+=)",
    "MUTATES_INPUT": "x, dout, the cache or grad was changed in place",
    "ACCUMULATES": "grads grow across two identical passes (+= instead of =)",
    "UNSTABLE": "overflow, NaN or inf at inputs the reference handles",
    "UPDATE_RULE": "the update follows another textbook's rule, not torch.optim.SGD's",
    "FORWARD_MISMATCH": "the output is wrong and none of the known causes fits",
    "GRADIENT_MISMATCH": "a gradient is wrong and none of the known causes fits",
}

STAGES = ("interface", "forward", "backward", "robustness")
STAGE_TITLES = {"interface": "interface and shapes", "forward": "forward values",
                "backward": "backward values", "robustness": "robustness"}


class Finding:
    """One problem: Finding(code, tensor, message, hint, evidence).

    code : str, a key of CODES (stable: autograders may match on it)
    tensor : str, what it is about ("out", "dx", "grads['W']", ...; "" for the whole)
    message, hint : str, what is wrong and what to try
    evidence : dict of JSON-friendly values (shapes, factors, errors)
    """

    def __init__(self, code, tensor, message, hint="", evidence=None):
        if code not in CODES:
            raise ValueError(f"Finding: expected a code from CODES, got {code!r}.")
        self.code, self.tensor, self.message = code, tensor, message
        self.hint, self.evidence = hint, dict(evidence or {})

    def to_dict(self):
        return {"code": self.code, "tensor": self.tensor, "message": self.message,
                "hint": self.hint, "evidence": self.evidence}

    def __str__(self):
        where = f" {self.tensor}:" if self.tensor else ""
        lines = [f"{self.code}{where} {self.message}"]
        if self.evidence:
            lines.append("    evidence: " + "; ".join(f"{k}: {_short(v)}"
                                                      for k, v in self.evidence.items()))
        if self.hint:
            lines.append(f"    hint: {self.hint}")
        return "\n".join(lines)

    def __repr__(self):
        return f"Finding({self.code!r}, {self.tensor!r})"


def _short(value):
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


class Diagnosis:
    """The result of check(name, impl, cases).

    Attributes
    ----------
    exercise : str
    cases : "public", "hidden" or "all"
    findings : list of Finding, in the order the stages found them
    credit : dict stage -> (earned, weight); earned <= weight, the weights sum to 1
    passed : bool, every stage ran and nothing was found
    score : float in [0, 1], the sum of the earned credit (partial credit per stage
        and, within the backward stage, per tensor)
    """

    def __init__(self, exercise, cases, findings, credit):
        self.exercise, self.cases = exercise, cases
        self.findings, self.credit = list(findings), dict(credit)

    @property
    def score(self):
        return round(sum(earned for earned, _ in self.credit.values()), 4)

    @property
    def passed(self):
        return not self.findings and all(abs(e - w) < 1e-9 for e, w in self.credit.values())

    @property
    def codes(self):
        """The finding codes, in order, each once."""
        return list(dict.fromkeys(f.code for f in self.findings))

    def to_dict(self):
        return {"exercise": self.exercise, "cases": self.cases, "passed": self.passed,
                "score": self.score, "codes": self.codes,
                "findings": [f.to_dict() for f in self.findings],
                "stages": {s: {"earned": round(e, 4), "weight": w}
                           for s, (e, w) in self.credit.items()}}

    def to_json(self, indent=None):
        return json.dumps(self.to_dict(), indent=indent)

    def __str__(self):
        if self.codes == ["NOT_IMPLEMENTED"]:
            return f"{self.exercise}: not started yet.\n{self.findings[0]}"
        if self.passed:
            more = ("public checks passed; grading also uses hidden cases"
                    if self.cases == "public" else f"{self.cases} checks passed")
            return f"{self.exercise}: {more} (score {self.score:.2f})."
        lines = [f"{self.exercise}: {len(self.findings)} problem(s) found "
                 f"(score {self.score:.2f} of 1)."]
        lines += [str(f) for f in self.findings]
        lines.append("stages: " + ", ".join(self._stage_line(s) for s in self.credit))
        return "\n".join(lines)

    def _stage_line(self, stage):
        stages = list(self.credit)
        failed = [s for s in stages if self.credit[s][0] < self.credit[s][1] - 1e-9]
        earned, weight = self.credit[stage]
        if stage not in failed:
            status = "ok"
        elif stages.index(stage) > stages.index(failed[0]):
            status = "not run"
        else:
            status = f"{earned:.2f} of {weight:.2f}"
        return f"{STAGE_TITLES[stage]} {status}"

    def __repr__(self):
        return f"Diagnosis({self.exercise!r}, passed={self.passed}, score={self.score}, " \
               f"codes={self.codes})"
