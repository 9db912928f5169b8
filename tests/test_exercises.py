"""The exercise kit: templates, the checker's diagnoses, scores, the CLI and grading."""
import csv
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import resnet_np as rn
from resnet_np.__main__ import main
from resnet_np.exercises import CATALOGUE, CODES, Finding, check, start, template
from resnet_np.exercises.reference import ResidualBlock, sgd_step
from resnet_np.exercises.templates import BEGIN, FOLDER, skeleton

from exercise_mutants import MUTANTS, Dense

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOLUTIONS = os.path.join(ROOT, "tests", "exercise_solutions")
NAMES = ["relu", "dense", "softmax_cross_entropy", "batchnorm", "im2col", "col2im", "conv2d",
         "maxpool", "residual_block", "sgd_momentum"]
LIBRARY = {"relu": rn.ReLU, "dense": rn.Dense, "softmax_cross_entropy": rn.SoftmaxCrossEntropy,
           "batchnorm": rn.BatchNorm1d, "im2col": rn.im2col, "col2im": rn.col2im,
           "conv2d": rn.Conv2d, "maxpool": rn.MaxPool2d, "residual_block": ResidualBlock,
           "sgd_momentum": sgd_step}


def test_catalogue_has_the_issue_names():
    assert list(CATALOGUE) == NAMES


# -- templates and correct solutions -------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_untouched_template_is_not_implemented(name, tmp_path):
    path = start(name, tmp_path)
    d = check(name, path)
    assert d.codes == ["NOT_IMPLEMENTED"] and d.score == 0.0 and not d.passed
    text = str(d)
    assert text.startswith(f"{name}: not started yet.") and "your code here" in text
    assert "Traceback" not in text and 'File "' not in text


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("cases", ["public", "hidden", "all"])
def test_student_style_solution_passes(name, cases):
    d = check(name, os.path.join(SOLUTIONS, f"{name}.py"), cases=cases)
    assert d.passed and d.score == 1.0 and d.findings == [], str(d)


@pytest.mark.parametrize("name", NAMES)
def test_library_reference_passes_public_and_hidden(name):
    d = check(name, LIBRARY[name], cases="all")
    assert d.passed and d.score == 1.0, str(d)


@pytest.mark.parametrize("name", NAMES)
def test_solutions_only_fill_the_template_bodies(name):
    """The templates cannot drift: each solution is its template with the bodies filled."""
    with open(os.path.join(SOLUTIONS, f"{name}.py"), encoding="utf-8") as f:
        filled = f.read()
    assert skeleton(filled) == skeleton(template(name))
    assert "NotImplementedError" not in filled and BEGIN in filled


def test_passing_report_mentions_hidden_cases():
    assert str(check("dense", rn.Dense)) == ("dense: public checks passed; grading also uses "
                                             "hidden cases (score 1.00).")


# -- planted bugs ----------------------------------------------------------------------

@pytest.mark.parametrize("mutant", list(MUTANTS))
def test_mutant_gets_its_code(mutant):
    name, impl, code, tensor = MUTANTS[mutant]
    d = check(name, impl)
    assert not d.passed and d.score < 1.0
    assert d.findings[0].code == code, str(d)
    assert d.findings[0].tensor.split(", ")[0] == tensor, str(d)
    assert d.findings[0].hint and "Traceback" not in str(d)


def test_every_code_is_planted_somewhere():
    planted = {code for _, _, code, _ in MUTANTS.values()} | {"NOT_IMPLEMENTED"}
    assert planted == set(CODES)


def _reseeded(monkeypatch, offset):
    for ex in CATALOGUE.values():
        monkeypatch.setattr(ex, "public", [dict(c, seed=c["seed"] + offset) for c in ex.public])


@pytest.mark.parametrize("offset", [101, 202, 303])
@pytest.mark.parametrize("mutant", ["dense transposed dW", "dense db averaged",
                                    "softmax without 1/N", "batchnorm no mean term",
                                    "col2im assigns", "maxpool assigns windows",
                                    "block forgets the shortcut", "conv flipped kernel",
                                    "relu mask from dout"])
def test_mutant_codes_do_not_depend_on_the_seed(mutant, offset, monkeypatch):
    _reseeded(monkeypatch, offset)
    name, impl, code, _ = MUTANTS[mutant]
    assert check(name, impl).findings[0].code == code
    assert check(name, LIBRARY[name]).passed             # and no false alarm on the right code


def test_wrong_forward_with_a_matching_backward_fails():
    class TwiceDense(Dense):                            # consistent with itself, but wrong
        def forward(self, x):
            return 2 * super().forward(x)

        def backward(self, dout):
            return super().backward(2 * dout)

    d = check("dense", TwiceDense)
    assert not d.passed and d.findings[0].tensor == "out"
    assert d.findings[0].code == "SCALE" and d.findings[0].evidence["factor name"] == "2"


def test_hidden_cases_do_not_leak(tmp_path):
    class BreaksOnLargeBatches(Dense):
        def backward(self, dout):
            dx = super().backward(dout)
            if len(dout) > 8:                           # only the hidden N = 9 case
                self.grads["b"] = dout.mean(axis=0)
            return dx

    assert check("dense", BreaksOnLargeBatches).passed
    d = check("dense", BreaksOnLargeBatches, cases="all")
    text = str(d)
    assert not d.passed and d.codes == ["SCALE"] and "hidden 4" in text
    assert "N=9" not in text and "Traceback" not in text and "catalogue" not in text
    assert 0.8 < d.score < 1.0


def test_exception_report_names_the_students_line_not_the_checker(tmp_path):
    text = str(check("dense", MUTANTS["dense crashes"][1]))
    assert "exercise_mutants.py, line" in text and 'self.params["W"].T' in text
    assert "passes.py" not in text and "student.py" not in text and "Traceback" not in text


def test_score_gives_partial_credit_by_stage():
    class ForwardOnly(Dense):
        def backward(self, dout):
            raise NotImplementedError

    # backward items for dense: dx, dW, db and "no side effects"; db averaged loses one
    scores = [check("dense", impl).score for impl in
              (os.path.join(FOLDER, "dense.py.tmpl"), ForwardOnly,
               MUTANTS["dense db averaged"][1], rn.Dense)]
    assert scores == [0.0, 0.4, pytest.approx(0.4 + 0.4 * 3 / 4), 1.0]


def test_to_json_round_trips():
    d = check("dense", MUTANTS["dense transposed dW"][1])
    data = json.loads(d.to_json())
    assert data["exercise"] == "dense" and data["passed"] is False
    assert data["score"] == d.score and data["codes"] == ["TRANSPOSED"]
    assert data["findings"][0]["evidence"]["expected shape"] == [4, 3]
    assert set(data["stages"]) == {"interface", "forward", "backward", "robustness"}


def test_errors():
    with pytest.raises(ValueError, match="expected an exercise from relu, dense"):
        check("densse", rn.Dense)
    with pytest.raises(ValueError, match="expected cases 'public', 'hidden' or 'all'"):
        check("dense", rn.Dense, cases="secret")
    with pytest.raises(ValueError, match="expected a code from CODES"):
        Finding("WRONG", "dx", "no such code")


def test_file_without_the_symbol(tmp_path):
    path = tmp_path / "dense.py"
    path.write_text("class Dens:\n    pass\n")
    d = check("dense", str(path))
    assert d.codes == ["EXCEPTION"] and "defines no Dense" in str(d)


# -- the command line ------------------------------------------------------------------

def test_cli_list_start_check(tmp_path, capsys):
    assert main(["exercise", "list"]) == 0
    out = capsys.readouterr().out
    assert all(f"{name} " in out for name in NAMES)
    assert main(["exercise", "start", "dense", "--out", str(tmp_path)]) == 0
    path = str(tmp_path / "dense.py")
    assert main(["exercise", "start", "dense", "--out", str(tmp_path)]) == 2   # kept
    assert "exercise start: expected no file" in capsys.readouterr().err
    assert main(["exercise", "check", "dense", path]) == 1
    assert "NOT_IMPLEMENTED" in capsys.readouterr().out
    assert main(["exercise", "check", "dense", os.path.join(SOLUTIONS, "dense.py"),
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["passed"] is True
    assert main(["exercise", "check", "dense", str(tmp_path / "none.py")]) == 2
    with pytest.raises(SystemExit) as exit_info:
        main(["exercise", "check", "densse", path])
    assert exit_info.value.code == 2


def _env():
    return dict(os.environ, PYTHONPATH=ROOT)


def test_running_the_template_file_checks_it(tmp_path):
    assert main(["exercise", "start", "dense", "--out", str(tmp_path)]) == 0
    path = tmp_path / "dense.py"
    done = subprocess.run([sys.executable, str(path)], capture_output=True, text=True,
                          env=_env(), timeout=60)
    assert done.returncode == 1 and "NOT_IMPLEMENTED" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr
    shutil.copy(os.path.join(SOLUTIONS, "dense.py"), path)
    done = subprocess.run([sys.executable, str(path)], capture_output=True, text=True,
                          env=_env(), timeout=60)
    assert done.returncode == 0 and "public checks passed" in done.stdout


def test_grade_survives_crashes_and_endless_loops(tmp_path):
    folder = tmp_path / "submissions"
    folder.mkdir()
    shutil.copy(os.path.join(SOLUTIONS, "relu.py"), folder / "a_correct.py")
    buggy = open(os.path.join(SOLUTIONS, "relu.py")).read().replace(
        'return dout * self.cache["mask"]', "return dout")
    (folder / "b_buggy.py").write_text(buggy)
    (folder / "c_crash.py").write_text("import os\nos._exit(3)\n")
    (folder / "d_loop.py").write_text("class ReLU:\n    def __init__(self):\n"
                                      "        while True:\n            pass\n")
    csv_path, json_path = tmp_path / "grades.csv", tmp_path / "grades.json"
    assert main(["exercise", "grade", "relu", str(folder), "--csv", str(csv_path),
                 "--json", str(json_path), "--timeout", "8"]) == 0
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["file"] for r in rows] == ["a_correct.py", "b_buggy.py", "c_crash.py",
                                         "d_loop.py"]
    assert [r["passed"] for r in rows] == ["True", "False", "False", "False"]
    assert [r["codes"] for r in rows][1:] == ["WRONG_MASK", "CRASHED", "TIMEOUT"]
    assert float(rows[0]["score"]) == 1.0 and 0 < float(rows[1]["score"]) < 1
    assert len(json.loads(json_path.read_text())) == 4


def test_every_code_is_documented():
    with open(os.path.join(ROOT, "docs", "exercises", "codes.md"), encoding="utf-8") as f:
        page = f.read()
    for code in CODES:
        assert f"## `{code}`" in page, code


def test_low_precision_results_are_named_as_such():
    class HalfPrecisionDense(Dense):
        def forward(self, x):
            self.cache = {"x": x}
            W, b = self.params["W"].astype(np.float16), self.params["b"].astype(np.float16)
            return x.astype(np.float16) @ W.T + b

    d = check("dense", HalfPrecisionDense)
    assert d.codes == ["FORWARD_MISMATCH"] and "computed in float16" in str(d)


def test_params_are_written_in_place_so_aliases_see_them():
    class AliasDense(Dense):
        def __init__(self, in_features, out_features, rng=None):
            super().__init__(in_features, out_features, rng)
            self.W, self.b = self.params["W"], self.params["b"]

        def forward(self, x):
            self.cache = {"x": x}
            return x @ self.W.T + self.b

    assert check("dense", AliasDense).passed


def test_forgotten_return_is_named():
    class NoReturn(Dense):
        def forward(self, x):
            super().forward(x)

    d = check("dense", NoReturn)
    assert d.codes == ["SHAPE"] and "is None: did you forget to return it?" in str(d)
