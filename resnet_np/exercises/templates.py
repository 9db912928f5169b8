"""The files a student fills in: `start(name, out)` writes NAME.py from a template.

A template (templates/NAME.py.tmpl) holds the imports, the class or function with its
docstring (the math and the shapes), bodies that raise NotImplementedError between
the markers below, and at the bottom a check, so `python NAME.py` checks the file.
Untouched, it gives the NOT_IMPLEMENTED report: a friendly "start here".
"""
import os

from .._checks import message
from .catalogue import get

BEGIN = "# ---- your code here ----"
END = "# ---- end of your code ----"
FOLDER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "templates")


def template(name):
    """The text of exercise `name`'s template."""
    get(name)                                          # a clear error for an unknown name
    with open(os.path.join(FOLDER, f"{name}.py.tmpl"), encoding="utf-8") as f:
        return f.read()


def start(name, out=".", overwrite=False):
    """Write the template of `name` to out/NAME.py and return its path.

    An existing file is the student's work: it is kept unless overwrite=True.
    """
    text = template(name)
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, f"{name}.py")
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(message("exercise start", f"no file {path} yet",
                                      "an existing file (your work?)",
                                      "Check it with: python -m resnet_np exercise check "
                                      f"{name} {path}, or pass --force to start over."))
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path


def skeleton(text):
    """The text with everything between the markers removed: what a student must not change."""
    lines, inside = [], False
    for line in text.splitlines():
        if line.strip() == END:
            inside = False
        if not inside:
            lines.append(line)
        if line.strip() == BEGIN:
            inside = True
    return "\n".join(lines)
