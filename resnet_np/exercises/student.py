"""Calling the student's code: every exception becomes a Finding, never a traceback.

`run(where, f, *args)` calls f quietly (NumPy warnings off: an overflow shows as
inf or NaN in the result, which the checker names UNSTABLE) and turns an exception
into a StudentError carrying NOT_IMPLEMENTED (the template is untouched) or
EXCEPTION with the type, the message and the student's own line, found in the
traceback as the deepest frame outside the checker and NumPy. `load` runs a
student's file and returns the class or function the exercise names.
"""
import linecache
import os
import runpy
import traceback
import warnings

import numpy as np

from .diagnosis import Finding

HERE = os.path.dirname(os.path.abspath(__file__))
NUMPY = os.path.dirname(np.__file__)


class StudentError(Exception):
    """Carries the Finding made from an exception in the student's code."""

    def __init__(self, finding):
        super().__init__(finding.message)
        self.finding = finding


def student_line(tb):
    """'file.py, line 12, in forward: out = x @ W' for the deepest frame that is not ours."""
    frames = [f for f in traceback.extract_tb(tb) if not f.filename.startswith((HERE, NUMPY))]
    if not frames:
        return None
    f = frames[-1]
    text = (f.line or linecache.getline(f.filename, f.lineno)).strip()
    return f"{os.path.basename(f.filename)}, line {f.lineno}, in {f.name}: {text}"


def exception_finding(exc, where):
    """NOT_IMPLEMENTED for NotImplementedError, else EXCEPTION with the student's line."""
    if isinstance(exc, NotImplementedError):
        return Finding("NOT_IMPLEMENTED", "", f"{where} still raises NotImplementedError.",
                       hint=f"Start here: write {where} between the '# ---- your code here "
                            "----' markers, then run the check again.")
    evidence = {"exception": f"{type(exc).__name__}: {exc}"}
    line = student_line(exc.__traceback__)
    if line:
        evidence["your line"] = line
    return Finding("EXCEPTION", "", f"{where} raised {type(exc).__name__}.",
                   hint="Read your line above; print the shapes of the arrays it uses.",
                   evidence=evidence)


def run(where, f, *args):
    """Call the student's f(*args) quietly; an exception becomes a StudentError."""
    try:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return f(*args)
    except Exception as exc:                       # the student's code may raise anything
        raise StudentError(exception_finding(exc, where)) from None


def load(path, symbol):
    """The class or function `symbol` defined in the student's file, or a Finding."""
    name = os.path.basename(str(path))
    try:
        namespace = run(f"loading {name}", runpy.run_path, str(path), None, "__exercise__")
    except StudentError as error:
        return error.finding
    if symbol not in namespace:
        return Finding("EXCEPTION", "", f"{name} defines no {symbol}.",
                       hint=f"Keep the name {symbol} from the template: the checker looks it up.")
    return namespace[symbol]
