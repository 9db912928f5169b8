"""The exercise kit: templates a student fills in, and a checker that names the bug.

    python -m resnet_np exercise list                 the catalogue
    python -m resnet_np exercise start dense          writes dense.py to fill in
    python -m resnet_np exercise check dense dense.py checks it

In Python or a notebook: `check("dense", Dense)` returns a Diagnosis whose str() is
the report; `.passed`, `.score`, `.findings` and `.to_json()` serve autograders.
Every finding code is documented in docs/exercises/codes.md.
"""
from .catalogue import CATALOGUE
from .checker import check
from .diagnosis import CODES, Diagnosis, Finding
from .grading import grade
from .templates import start, template

__all__ = ["CATALOGUE", "CODES", "Diagnosis", "Finding", "check", "grade", "start", "template"]
