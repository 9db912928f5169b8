"""notebooks: docs pages -> .ipynb, the committed notebooks are current, and they run.

The committed notebooks/ are generated; after editing a page, regenerate them with

    python -m resnet_np notebooks

CI runs every notebook with `python -m resnet_np notebooks --check --execute`.
"""
import sys
import types

import pytest

from resnet_np import notebooks
from resnet_np.__main__ import main

PAGE = """\
# A page

Prose with $a^{[l]}$ and [a link](../notation.md#top), ![a figure](../figures/x.png),
[elsewhere](https://example.org/a.md) and [a heading](#here).

```python
>>> import numpy as np
>>> x = np.ones(3)        # doctest: +ELLIPSIS
>>> x.shape
(3,)
>>> for v in x[:1]:
...     print(float(v))
1.0
>>> y = 2 * x
>>> np.log(-1.0) if False else int(y.sum())
6
>>> 1 / 0
Traceback (most recent call last):
    ...
ZeroDivisionError: division by zero
>>> z = 3

```

```console
$ python -m resnet_np trace
```
"""


def test_split_blocks_keeps_other_fences_in_the_prose():
    blocks = notebooks.split_blocks(PAGE)
    assert [kind for kind, _ in blocks] == ["markdown", "doctest", "markdown"]
    assert "$ python -m resnet_np trace" in "\n".join(blocks[2][1])


def test_doctest_cells_end_at_each_output_and_isolate_exceptions():
    _, lines = notebooks.split_blocks(PAGE)[1]
    assert notebooks.doctest_cells(lines) == [
        ("import numpy as np\nx = np.ones(3)\nx.shape", False),
        ("for v in x[:1]:\n    print(float(v))", False),
        ("y = 2 * x\nnp.log(-1.0) if False else int(y.sum())", False),
        ("1 / 0", True),
        ("z = 3", False)]


def test_relink_points_at_the_same_files_from_the_notebook_folder(tmp_path):
    page_dir, notebook_dir = tmp_path / "docs" / "tutorials", tmp_path / "notebooks" / "tutorials"
    text = notebooks.relink(PAGE, page_dir, notebook_dir)
    assert "[a link](../../docs/notation.md#top)" in text
    assert "![a figure](../../docs/figures/x.png)" in text
    assert "(https://example.org/a.md)" in text and "[a heading](#here)" in text


def test_sections_split_prose_at_level_two_headings_outside_fences():
    text = "# Title\n\nIntro.\n\n## One\n\nText.\n```bash\n## not a heading\n```\n## Two\n"
    assert notebooks.sections(text) == ["# Title\n\nIntro.",
                                        "## One\n\nText.\n```bash\n## not a heading\n```",
                                        "## Two"]


def test_exercise_name_from_the_comment_line():
    assert notebooks.exercise_name("# Dense\n<!-- exercise: dense -->\ntext") == "dense"
    assert notebooks.exercise_name("# Dense\n<!-- exercise dense -->\n") is None


def test_missing_nbformat_names_the_extra(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "nbformat", None)
    extra = r'expected nbformat to be installed.*pip install "resnet_np\[notebooks\]"'
    with pytest.raises(ImportError, match=extra):
        notebooks.build_notebook(notebooks.pages()[0])
    assert main(["notebooks", "--docs", str(notebooks.ROOT / "docs"), "--check"]) == 2
    assert 'pip install "resnet_np[notebooks]"' in capsys.readouterr().out      # no traceback


def test_every_page_has_a_notebook():
    names = [p.relative_to(notebooks.ROOT).as_posix() for p in notebooks.pages()]
    assert "docs/tutorials/01_residual_block.md" in names
    assert "docs/exercises/gradient_check.md" in names
    assert [n for n in names if n.startswith("docs/questions/")] == [
        "docs/questions/q1_two_layers.md", "docs/questions/q2_shortcut_weights.md",
        "docs/questions/q3_linear_path.md"]


# -- with nbformat ------------------------------------------------------------------------
def test_committed_notebooks_match_their_pages():
    pytest.importorskip("nbformat")
    stale = notebooks.stale_notebooks()
    assert not stale, f"out of date: {stale}; regenerate with: python -m resnet_np notebooks"


def _page(tmp_path, text):
    page = tmp_path / "docs" / "exercises" / "demo.md"
    page.parent.mkdir(parents=True)
    page.write_text(text)
    return page


def test_build_notebook_cells_and_tags(tmp_path):
    pytest.importorskip("nbformat")
    nb = notebooks.build_notebook(_page(tmp_path, PAGE), tmp_path / "nb", tmp_path / "docs")
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert [c.source for c in code][0].startswith("import numpy as np")
    assert [c.metadata.get("tags") for c in code] == [None, None, None, ["raises-exception"], None]
    assert "docs/exercises/demo.md" in nb.cells[0].source            # says where it came from
    assert all(c.get("outputs", []) == [] for c in code)
    assert [c.id for c in nb.cells] == [f"cell-{i}" for i in range(len(nb.cells))]


def test_exercise_notebook_starts_with_the_template_and_ends_with_check(tmp_path, monkeypatch):
    pytest.importorskip("nbformat")
    kit = types.ModuleType("resnet_np.exercises")
    kit.template = lambda name: (f'"""Exercise {name}."""\nimport numpy as np\n\n\n'
                                 "class Dense:\n    pass\n\n\n"
                                 'if __name__ == "__main__":\n'
                                 "    import sys\n"
                                 f'    sys.exit(0 if check("{name}", Dense).passed else 1)\n')
    monkeypatch.setitem(sys.modules, "resnet_np.exercises", kit)
    page = _page(tmp_path, "# Dense\n\n<!-- exercise: dense -->\n\n" + PAGE)
    nb = notebooks.build_notebook(page, tmp_path / "nb", tmp_path / "docs")
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    assert code[0].startswith('"""Exercise dense."""') and "class Dense" in code[0]
    assert "__main__" not in code[0] and "sys.exit" not in code[0]
    assert code[-1] == 'from resnet_np.exercises import check\n\nprint(check("dense", Dense))'
    titles = [c.source.split("\n")[0] for c in nb.cells if c.cell_type == "markdown"]
    assert titles[1:3] == ["# Dense", "## Your implementation of `dense`"]   # title, template
    assert "exercise:" not in "".join(c.source for c in nb.cells)
    monkeypatch.setitem(sys.modules, "resnet_np.exercises", None)      # no kit: the page only
    plain = notebooks.build_notebook(page, tmp_path / "nb", tmp_path / "docs")
    assert [c.source for c in plain.cells if c.cell_type == "code"][0].startswith("import numpy")


def test_check_command_reports_stale_and_regenerates(tmp_path, capsys):
    pytest.importorskip("nbformat")
    out, docs = tmp_path / "nb", tmp_path / "docs"
    page = _page(tmp_path, PAGE)
    assert main(["notebooks", "--out", str(out), "--docs", str(docs), "--check"]) == 1
    assert main(["notebooks", "--out", str(out), "--docs", str(docs)]) == 0
    assert main(["notebooks", "--out", str(out), "--docs", str(docs), "--check"]) == 0
    page.write_text(PAGE.replace("x.shape", "x.size"))
    assert main(["notebooks", "--out", str(out), "--docs", str(docs), "--check"]) == 1
    assert "out of date" in capsys.readouterr().out
    assert main(["notebooks", "--docs", str(tmp_path / "nothing")]) == 2


# -- with nbclient and a kernel -----------------------------------------------------------
def test_execute_names_the_notebook_and_the_failing_cell(tmp_path):
    pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    text = PAGE + "\n```python\n>>> undefined_name + 1\n2\n\n```\n"
    path = tmp_path / "demo.ipynb"

    def write(page, docs):
        path.write_text(notebooks.notebook_text(notebooks.build_notebook(page, tmp_path, docs)))

    write(_page(tmp_path, text), tmp_path / "docs")
    named = r"(?s)notebook .*demo\.ipynb: .*code cell 6:\nundefined_name \+ 1"
    with pytest.raises(RuntimeError, match=named):
        notebooks.execute_notebook(path, timeout=60)
    write(_page(tmp_path / "ok", PAGE), tmp_path / "ok" / "docs")
    assert notebooks.execute_notebook(path, timeout=60) < 60        # raises-exception cell allowed


@pytest.mark.parametrize("name", ["01_step_through.py", "02_one_vs_two_layer_skip.py"])
def test_example_runs_cell_by_cell_in_a_kernel(name, tmp_path):
    pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    nb = notebooks.script_notebook(notebooks.ROOT / "examples" / name,
                                   argv=["--quick", "--out", str(tmp_path)])
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert len(code) >= 5 and any(c.cell_type == "markdown" for c in nb.cells)
    path = tmp_path / "example.ipynb"
    path.write_text(notebooks.notebook_text(nb))
    notebooks.execute_notebook(path, timeout=120)
    assert (tmp_path / "results.json").exists()
