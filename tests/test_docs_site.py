"""docs_site/griffe_doctests.py: docstrings read as numpydoc for the API pages.

The site itself is built by CI (`mkdocs build --strict`); this checks the one piece of
logic the site adds: doctest runs in the running text are fenced as code, so that an
output such as ['a_l', 'z_l1'] is not read as a Markdown link reference.
"""
import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("griffe")
PATH = Path(__file__).resolve().parent.parent / "docs_site" / "griffe_doctests.py"
spec = importlib.util.spec_from_file_location("griffe_doctests", PATH)
griffe_doctests = importlib.util.module_from_spec(spec)
spec.loader.exec_module(griffe_doctests)


def test_loose_doctests_are_fenced_and_example_sections_renamed():
    text = ("Summary.\n\n>>> x = [1]\n>>> x\n[1]\n\nMore text.\n\n"
            "Example\n-------\n>>> y = 2\n")
    assert griffe_doctests.fence_doctests(text) == (
        "Summary.\n\n```python\n>>> x = [1]\n>>> x\n[1]\n```\n\nMore text.\n\n"
        "Examples\n--------\n>>> y = 2\n")


def test_indented_doctests_are_already_code_and_stay():
    text = "Module.\n\n    >>> a = 1\n    >>> a\n    1\n"
    assert griffe_doctests.fence_doctests(text) == text
