"""Jupyter notebooks generated from the docs pages, and run top to bottom in a kernel.

Every page of docs/tutorials/, docs/exercises/ and docs/questions/ becomes
notebooks/<folder>/<page>.ipynb (`python -m resnet_np notebooks`):

- prose becomes Markdown cells, math kept as written ($...$ renders in Jupyter) and
  relative links rewritten so that they still point at the same files;
- each fenced block of `>>>` examples becomes code, without the prompts and without the
  expected output. A cell ends after every example whose output the page shows, so
  the notebook shows each output where the page does; an example that the page shows
  raising an exception is a cell of its own, tagged "raises-exception";
- other fenced blocks (shell commands, code that needs PyTorch) stay in the Markdown.

An exercise page declares its exercise with one HTML comment line, anywhere:

    <!-- exercise: dense -->

When the exercise kit (`resnet_np.exercises`) is importable and has `template(name)`
returning the source of the file `python -m resnet_np exercise start NAME` writes,
the notebook starts with that template and ends with its `check(...)` call, printed:
the student fills in the first cell and runs the last. Without the kit the page's
own cells are all there is. The committed notebooks carry no outputs; a test fails
when one differs from what its page generates.

nbformat and nbclient come from the optional extra: pip install "resnet_np[notebooks]".
"""
import ast
import doctest
import os
import re
import time
from pathlib import Path

from ._checks import message

ROOT = Path(__file__).resolve().parent.parent
PAGE_FOLDERS = ("tutorials", "exercises", "questions")
EXERCISE = re.compile(r"^<!--\s*exercise:\s*([\w-]+)\s*-->\s*$", re.MULTILINE)
FENCE = re.compile(r"^(\s*)(```|~~~)")
LINK = re.compile(r"(\]\()([^)\s#]+)((?:#[^)\s]*)?\))")


def _nbformat():
    try:
        import nbformat
    except ImportError:
        raise ImportError(message("resnet_np.notebooks", "nbformat to be installed",
                                  "no module named 'nbformat'",
                                  'Install the extra: pip install "resnet_np[notebooks]" '
                                  '(nbformat, nbclient, ipykernel)')) from None
    return nbformat


# -- a page's blocks ----------------------------------------------------------------------
def split_blocks(text):
    """A Markdown page as [("markdown", lines) | ("doctest", lines)], in page order."""
    blocks, prose, fenced, opener = [], [], None, None
    for line in text.splitlines():
        if fenced is None:
            match = FENCE.match(line)
            if match:
                fenced, opener = [line], match.group(2)
            else:
                prose.append(line)
            continue
        fenced.append(line)
        if line.strip() == opener:                       # the closing fence
            body = fenced[1:-1]
            first = next((b.strip() for b in body if b.strip()), "")
            if first.startswith(">>>"):
                blocks += [("markdown", prose), ("doctest", body)]
                prose = []
            else:
                prose += fenced
            fenced = None
    blocks.append(("markdown", prose + (fenced or [])))
    return [(kind, lines) for kind, lines in blocks if "".join(lines).strip()]


def doctest_examples(lines):
    """[(source, shows_output, raises)] for the examples of one fenced `>>>` block,
    as the standard library's doctest parser reads them."""
    examples = doctest.DocTestParser().get_examples("\n".join(lines))
    return [("\n".join(re.sub(r"\s*#\s*doctest:.*$", "", s)
                       for s in example.source.rstrip("\n").split("\n")).rstrip(),
             bool(example.want), example.exc_msg is not None)
            for example in examples]


def doctest_cells(lines):
    """Code cells [(source, raises)]: split after each shown output, raising ones alone."""
    cells, current = [], []
    for code, shows_output, raises in doctest_examples(lines):
        if raises:
            cells += ([("\n".join(current), False)] if current else []) + [(code, True)]
            current = []
            continue
        current.append(code)
        if shows_output:
            cells.append(("\n".join(current), False))
            current = []
    return cells + ([("\n".join(current), False)] if current else [])


def relink(markdown, page_dir, notebook_dir):
    """Rewrite relative links and images so they resolve from the notebook's folder."""
    def fix(match):
        target = match.group(2)
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("/"):
            return match.group(0)                        # https:, mailto:, absolute
        moved = os.path.relpath(os.path.join(page_dir, target), notebook_dir)
        return match.group(1) + Path(moved).as_posix() + match.group(3)
    return LINK.sub(fix, markdown)


# -- the exercise kit's template and check call -------------------------------------------
def exercise_name(text):
    """The NAME of a page's `<!-- exercise: NAME -->` line, or None."""
    match = EXERCISE.search(text)
    return match.group(1) if match else None


def exercise_cells(name):
    """(template source, check cell source) from the exercise kit, or None without it.

    The template is the file `exercise start NAME` writes; its last top-level statement
    that calls `check` (often an `if __name__ == "__main__":` block) is taken out of the
    first cell and becomes the notebook's last cell as `print(check(...))`.
    """
    try:
        from .exercises import template
    except ImportError:                 # no exercise kit, or one without template(name)
        return None
    source = template(name)
    tree = ast.parse(source)
    for statement in reversed(tree.body):
        calls = [node for node in ast.walk(statement) if isinstance(node, ast.Call)
                 and getattr(node.func, "id", getattr(node.func, "attr", None)) == "check"]
        if calls:
            lines = source.splitlines()
            kept = lines[:statement.lineno - 1] + lines[statement.end_lineno:]
            text = ast.get_source_segment(source, calls[-1])     # e.g. rn.exercises.check(...)
            call = "check" + text[len(ast.get_source_segment(source, calls[-1].func)):]
            return ("\n".join(kept).rstrip(),
                    f"from resnet_np.exercises import check\n\nprint({call})")
    return source.rstrip(), None


# -- one notebook -------------------------------------------------------------------------
def notebook_path(page, out=ROOT / "notebooks", docs=ROOT / "docs"):
    """notebooks/<folder>/<page>.ipynb for docs/<folder>/<page>.md."""
    relative = Path(page).resolve().relative_to(Path(docs).resolve())
    return Path(out) / relative.with_suffix(".ipynb")


def sections(markdown):
    """Markdown split before each level-2 heading ("## ..."), outside fenced blocks."""
    parts, fenced = [[]], False
    for line in markdown.split("\n"):
        fenced = fenced != bool(FENCE.match(line))
        if line.startswith("## ") and not fenced and "".join(parts[-1]).strip():
            parts.append([])
        parts[-1].append(line)
    return ["\n".join(part).strip("\n") for part in parts if "".join(part).strip()]


def _page_cells(text, page_dir, notebook_dir, v4):
    """The page's own cells: a Markdown cell per section of prose, code per doctest run."""
    cells = []
    for kind, lines in split_blocks(text):
        if kind == "markdown":
            prose = relink("\n".join(lines), page_dir, notebook_dir)
            cells += [v4.new_markdown_cell(part) for part in sections(prose)]
            continue
        for source, raises in doctest_cells(lines):
            cell = v4.new_code_cell(source)
            if raises:
                cell.metadata["tags"] = ["raises-exception"]
            cells.append(cell)
    return cells


def build_notebook(page, out=ROOT / "notebooks", docs=ROOT / "docs"):
    """The notebook of one page (an nbformat NotebookNode, no outputs, stable cell ids)."""
    nbformat = _nbformat()
    v4 = nbformat.v4
    page = Path(page)
    text = page.read_text()
    target = notebook_path(page, out, docs)
    shown = Path(os.path.relpath(page.resolve(), Path(docs).resolve().parent)).as_posix()
    cells = [v4.new_markdown_cell(
        f"*Generated from `{shown}` by `python -m resnet_np notebooks`: edit the page, "
        "not this notebook. Run it with resnet_np installed (`pip install -e .`) or "
        "from the repository root.*")]
    exercise = exercise_name(text)
    kit = exercise_cells(exercise) if exercise else None
    page_cells = _page_cells(EXERCISE.sub("", text), page.resolve().parent,
                             target.resolve().parent, v4)
    if kit:                                  # after the page's title: the template to fill in
        page_cells[1:1] = [v4.new_markdown_cell(f"## Your implementation of `{exercise}`\n\n"
                                                "Fill in the template, then run the notebook; "
                                                "the last cell checks your code."),
                           v4.new_code_cell(kit[0])]
        if kit[1]:
            page_cells += [v4.new_markdown_cell("## Check your implementation"),
                           v4.new_code_cell(kit[1])]
    cells += page_cells
    for i, cell in enumerate(cells):
        cell.id = f"cell-{i}"
    nb = v4.new_notebook(cells=cells)
    nb.metadata = {"kernelspec": {"display_name": "Python 3", "language": "python",
                                  "name": "python3"},
                   "language_info": {"name": "python"}}
    return nb


def pages(docs=ROOT / "docs"):
    """Every page that gets a notebook: docs/{tutorials,exercises,questions}/*.md, sorted."""
    return [page for folder in PAGE_FOLDERS for page in sorted((Path(docs) / folder).glob("*.md"))]


def notebook_text(nb):
    """The file text nbformat writes for `nb` (what is committed)."""
    return _nbformat().writes(nb) + "\n"


def write_notebooks(out=ROOT / "notebooks", docs=ROOT / "docs"):
    """Write one notebook per page; return the paths written."""
    written = []
    for page in pages(docs):
        path = notebook_path(page, out, docs)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(notebook_text(build_notebook(page, out, docs)))
        written.append(path)
    return written


def stale_notebooks(out=ROOT / "notebooks", docs=ROOT / "docs"):
    """Notebooks in `out` that differ from what their page generates, missing, or orphaned."""
    expected = {notebook_path(page, out, docs): page for page in pages(docs)}
    stale = [path for path, page in expected.items() if not path.exists()
             or path.read_text() != notebook_text(build_notebook(page, out, docs))]
    orphans = [path for path in sorted(Path(out).rglob("*.ipynb")) if path not in expected]
    return stale + orphans


# -- the examples' `# %%` cells -----------------------------------------------------------
def script_notebook(path, argv=None):
    """An examples/NN_topic.py script as a notebook, one cell per `# %%` marker.

    `# %% [markdown]` cells lose their leading "# ". With `argv` (e.g. ["--quick",
    "--out", DIR]) a first cell sets sys.argv and __file__ as `python path ...` would,
    so the script's own argument parsing picks the settings up.
    """
    v4 = _nbformat().v4
    cells, kind, lines = [], "code", []

    def close():
        text = "\n".join(lines).strip("\n")
        if text:
            new_cell = v4.new_markdown_cell if kind == "markdown" else v4.new_code_cell
            cells.append(new_cell(text))

    for line in Path(path).read_text().splitlines():
        if line.startswith("# %%"):
            close()
            kind, lines = ("markdown" if "[markdown]" in line else "code"), []
        else:
            lines.append(re.sub(r"^# ?", "", line) if kind == "markdown" else line)
    close()
    if argv is not None:
        argv = [Path(path).name] + list(argv)
        setup = f"import sys\nsys.argv = {argv!r}\n__file__ = {str(path)!r}"
        cells.insert(0, v4.new_code_cell(setup))
    for i, cell in enumerate(cells):
        cell.id = f"cell-{i}"
    return v4.new_notebook(cells=cells)


# -- running them -------------------------------------------------------------------------
def _failed_cell(nb):
    """(number, source) of the first code cell with an error it was not tagged to raise."""
    code = [c for c in nb.cells if c.cell_type == "code"]
    for number, cell in enumerate(code, start=1):
        allowed = "raises-exception" in cell.metadata.get("tags", [])
        if not allowed and any(o.get("output_type") == "error" for o in cell.get("outputs", [])):
            return number, cell.source
    return None, ""


def execute_notebook(path, timeout=90, cwd=ROOT):
    """Run a notebook top to bottom in a fresh kernel (cwd: the repository root).

    Returns the seconds it took. A failing cell raises RuntimeError naming the notebook
    and the cell (code cells counted from 1); so does a notebook over `timeout` seconds.
    """
    nbformat = _nbformat()
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError
    nb = nbformat.read(str(path), as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(cwd)}})
    start = time.perf_counter()
    try:
        client.execute()
    except (CellExecutionError, CellTimeoutError) as error:
        number, source = _failed_cell(nb)
        where = f"code cell {number}" if number else "a cell"
        raise RuntimeError(message(f"notebook {path}", "every cell to run without error",
                                   f"an error in {where}:\n{source}\n\n{error}",
                                   "Fix the page it is generated from and regenerate")) from None
    seconds = time.perf_counter() - start
    if seconds > timeout:
        raise RuntimeError(message(f"notebook {path}", f"to run in under {timeout} s",
                                   f"{seconds:.0f} s", "Make its examples smaller"))
    return seconds


def command(out="notebooks", docs="docs", check=False, execute=False, budget=300):
    """`python -m resnet_np notebooks`: write (or --check) the notebooks, then --execute them.

    Prints one line per notebook; returns the exit status (0 when all is well).
    """
    if not pages(docs):
        print(message("notebooks", f"pages in {docs}/{{{','.join(PAGE_FOLDERS)}}}/*.md",
                      "none", "Run from the repository root or pass --docs DIR"))
        return 2
    try:
        _nbformat()
    except ImportError as error:
        print(error)
        return 2
    if check:
        stale = stale_notebooks(out, docs)
        for path in stale:
            print(f"out of date: {path}")
        if stale:
            print("regenerate with: python -m resnet_np notebooks")
            return 1
        print(f"{len(pages(docs))} notebooks in {out} match their pages")
    else:
        for path in write_notebooks(out, docs):
            print(f"wrote {path}")
    if not execute:
        return 0
    total = 0.0
    for page in pages(docs):
        path = notebook_path(page, out, docs)
        try:
            seconds = execute_notebook(path)
        except RuntimeError as error:
            print(error)
            return 1
        total += seconds
        print(f"ran {path} in {seconds:.1f} s")
    print(f"all {len(pages(docs))} notebooks ran in {total:.1f} s")
    return 0 if total < budget else 1
