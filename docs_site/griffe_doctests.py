"""Griffe extension for the API pages: the library's docstrings, read as numpydoc.

The docstrings head their examples "Example" (numpydoc says "Examples") and some put
`>>>` lines in the running text. Rendered as Markdown, a doctest output such as
['a_l', 'z_l1'] reads as a link reference. So: "Example" becomes "Examples", and
`>>>` lines outside an Examples section (with their output, up to a blank line) are
fenced as Python code. The docstrings themselves are not changed.
"""
import re

import griffe

HEADER = re.compile(r"^(\s*)(\w[\w ]*)\n\1(-{3,})$", re.MULTILINE)


def fence_doctests(text):
    """The docstring text with Example -> Examples and loose doctest runs fenced."""
    text = HEADER.sub(lambda m: (f"{m.group(1)}Examples\n{m.group(1)}--------"
                                 if m.group(2) == "Example" else m.group(0)), text)
    out, section, in_run = [], None, False
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if i + 1 < len(lines) and re.fullmatch(r"\s*-{3,}", lines[i + 1]) and line.strip():
            section = line.strip()
        starts = line.lstrip().startswith(">>>") and not line.startswith(" ")
        if starts and not in_run and section != "Examples":
            out.append("```python")
            in_run = True
        if in_run and not line.strip():
            out.append("```")
            in_run = False
        out.append(line)
    if in_run:
        out.append("```")
    return "\n".join(out)


class DoctestFences(griffe.Extension):
    def on_instance(self, *, obj, **kwargs):
        if obj.docstring is not None:
            obj.docstring.value = fence_doctests(obj.docstring.value)
