"""Every examples/NN_*.py runs in its --quick mode and writes the results it promises.

How an example takes part (nobody edits this file to add one):

- it is named examples/NN_topic.py (two digits, an underscore);
- it accepts ``--quick`` (small sizes, seconds) and ``--out DIR``;
- it defines, at module level, a literal list of the keys its results.json must hold:

      REQUIRED_KEYS = ["intermediates", "gradient_split.shortcut_share", ...]

  A dotted key "a.b" means results["a"]["b"]. The list is read with `ast`, without
  importing or running the example, so it must be a plain literal.
- it writes DIR/results.json and at least one DIR/*.png.

An experiment (every example after 01's step-through) also takes ``--seeds K`` and
declares two more literal lists, read the same way:

      HEADLINE_KEYS = ["test_accuracy.A", ...]   # each: a stats.summary over the seeds
      PAIRED_KEYS = ["paired_test_accuracy.A_minus_B", ...]   # each: a stats.paired

A key may also hold a dict of them (e.g. one per depth). The harness runs experiments
with ``--quick --seeds 2`` and checks every seed's value and the mean, standard
deviation and 95 % t interval against each other.

The harness runs each example in a subprocess, from the repository root, with the
source tree on PYTHONPATH and the Agg matplotlib backend.
"""
import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("[0-9][0-9]_*.py"))
TIMEOUT = 300   # seconds; a quick run should take a few


def required_keys(path, name="REQUIRED_KEYS"):
    """The literal list `name` (REQUIRED_KEYS, ...) of an example file, read without running it."""
    for node in ast.parse(Path(path).read_text()).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name
                                                for t in node.targets):
            return list(ast.literal_eval(node.value))
    return None


def lookup(results, key):
    """results["a"]["b"] for the dotted key "a.b"."""
    for part in key.split("."):
        results = results[part]
    return results


def entries(node, marker):
    """The summary (or paired) dicts at a headline key: the node itself or its values."""
    return [node] if marker in node else list(node.values())


def missing_keys(results, keys):
    """The dotted keys of `keys` that `results` (a nested dict) does not hold."""
    missing = []
    for key in keys:
        node = results
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                missing.append(key)
                break
            node = node[part]
    return missing


def run_example(path, out, extra=()):
    env = dict(os.environ, MPLBACKEND="Agg",
               PYTHONPATH=os.pathsep.join([str(ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    return subprocess.run([sys.executable, str(path), "--quick", "--out", str(out), *extra],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=TIMEOUT)


def check_seed_summaries(results, path, seeds):
    """Every headline number: one value per seed, and mean, std, 95 % t interval of them."""
    assert results["seeds"] == seeds
    K, t = len(seeds), {2: 12.7062, 3: 4.3027}[len(seeds)]
    for key in required_keys(path, "HEADLINE_KEYS"):
        for s in entries(lookup(results, key), "mean"):
            values = np.array(s["values"])
            assert len(values) == K == s["n"], key
            assert s["mean"] == pytest.approx(values.mean()), key
            assert s["std"] == pytest.approx(values.std(ddof=1)), key
            half = t * s["std"] / np.sqrt(K)
            assert s["ci95"] == pytest.approx([s["mean"] - half, s["mean"] + half]), key
    for key in required_keys(path, "PAIRED_KEYS"):
        for d in entries(lookup(results, key), "mean_difference"):
            assert len(d["differences"]) == K, key
            assert d["mean_difference"] == pytest.approx(np.mean(d["differences"])), key
            assert d["within_noise"] == (d["ci95"][0] <= 0 <= d["ci95"][1]), key


# -- the harness checks itself ----------------------------------------------------------
def test_missing_keys_finds_absent_and_nested_keys():
    results = {"a": 1, "b": {"c": 2}, "d": [1]}
    assert missing_keys(results, ["a", "b.c"]) == []
    assert missing_keys(results, ["x", "b.x", "a.c", "d.e"]) == ["x", "b.x", "a.c", "d.e"]


def test_required_keys_read_without_running(tmp_path):
    script = tmp_path / "99_demo.py"
    script.write_text('raise SystemExit("must not run")\nREQUIRED_KEYS = ["a", "b.c"]\n')
    assert required_keys(script) == ["a", "b.c"]
    script.write_text("x = 1\n")
    assert required_keys(script) is None


def test_there_are_examples():
    assert EXAMPLES, "no examples/NN_*.py found"


# -- the examples ------------------------------------------------------------------------
@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_declares_its_contract(path):
    text = path.read_text()
    keys = required_keys(path)
    assert keys, f"{path.name} must define a non-empty literal REQUIRED_KEYS list"
    assert all(isinstance(k, str) for k in keys)
    assert ast.get_docstring(ast.parse(text)), f"{path.name} needs a module docstring"
    assert "# %%" in text, f"{path.name} needs `# %%` cell markers"
    assert "--quick" in text and "--out" in text


# The experiments that answer the three questions: trained on several seeds, with intervals.
# (01 steps through one block, 07 and 08 measure this machine: none trains a comparison.)
EXPERIMENTS = [p for p in EXAMPLES if p.name[:2] in ("02", "03", "04", "05", "06")]


def test_the_five_experiments_are_there():
    assert [p.name[:2] for p in EXPERIMENTS] == ["02", "03", "04", "05", "06"]


@pytest.mark.parametrize("path", EXPERIMENTS, ids=[p.name for p in EXPERIMENTS])
def test_experiment_takes_seeds_and_declares_its_headline_numbers(path):
    assert "--seeds" in path.read_text()
    assert required_keys(path, "HEADLINE_KEYS"), f"{path.name} must define HEADLINE_KEYS"
    assert required_keys(path, "PAIRED_KEYS") is not None


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_runs_quick_and_writes_results(path, tmp_path):
    experiment = required_keys(path, "HEADLINE_KEYS") is not None
    proc = run_example(path, tmp_path, ["--seeds", "2"] if experiment else [])
    assert proc.returncode == 0, f"{path.name} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    results_file = tmp_path / "results.json"
    assert results_file.exists(), f"{path.name} wrote no results.json in --out"
    results = json.loads(results_file.read_text())
    assert missing_keys(results, required_keys(path)) == []
    assert list(tmp_path.glob("*.png")), f"{path.name} wrote no PNG figure in --out"
    if experiment:
        check_seed_summaries(results, path, seeds=[0, 1])
    INVARIANTS.get(path.name[:2], lambda results: None)(results)


# -- what the docs quote from each example, asserted on its --quick run ------------------------
def invariants_01(results):
    """Tutorial 1: a^[l+2] = g(z^[l+2] + a^[l]); the split at a^[l] adds up exactly."""
    for part in (results, results["basic_block"]):
        assert part["a_l2_equals_g_of_sum"] is True
        split = part["gradient_split"]
        assert split["exact_sum"] is True                      # da_l == shortcut + branch, bit for bit
        assert split["da_l_norm"] <= split["da_l_shortcut_norm"] + split["da_l_branch_norm"] + 1e-6


def invariants_02(results):
    """Q1: a one-layer block equals its collapsed layer to rounding; a two-layer one has none."""
    assert results["collapse_max_abs_diff"] < 1e-12
    assert all(diff < 1e-12 for diff in results["collapse_by_case"].values())
    assert results["skip2_collapse_raises"] is True
    assert min(results["linearity_r2_branch"]["1"]["values"]) > 1 - 1e-9   # skip 1: affine


def invariants_03(results):
    """Q2, at depth 8 (n = 1), counted by hand from the layer shapes:
    stem 3*16*9 + 32 = 464; stage 1: 2*16*16*9 + 64 = 4,672; stage 2: 16*32*9 + 32*32*9 + 128
    = 13,952; stage 3: 32*64*9 + 64*64*9 + 256 = 55,552; fc 64*10 + 10 = 650: 75,290 (A).
    B adds the two projections (16*32 + 64) + (32*64 + 128) = 2,752; C also stage 1's
    16*16 + 32 = 288: 3,040."""
    assert results["depth"] == 8
    assert results["params"] == {"identity": None, "A": 75_290, "B": 78_042, "C": 78_330}
    assert results["shortcut_params"] == {"identity": None, "A": 0, "B": 2_752, "C": 3_040}
    assert 'Use shortcut="A"' in results["identity_error"]


def invariants_04(results):
    """Q1/degradation: a plain twin has exactly its residual model's parameters."""
    assert results["parameters"]["plain"] == results["parameters"]["residual"]


def invariants_05(results):
    """Q3: no model in the comparison has a purely linear input-to-output path."""
    assert {name: report["linear_path"] for name, report in
            results["identity_path_report"].items()} == {"plain": False, "post": False, "pre": False}


def invariants_07(results):
    """Section 6 (what the second core buys): one timing alone, one per process side by side,
    one for DataParallel on twice the images; or all None where cores cannot be chosen."""
    cores = results["cores"]
    timings = [cores["alone_ms"], cores["dataparallel_ms"]]
    if cores["alone_ms"] is None:
        assert timings == [None, None] and cores["side_by_side_ms"] is None
        return
    assert len(cores["side_by_side_ms"]) == 2                  # one process per core
    for t in timings + cores["side_by_side_ms"]:
        assert 0 < t["best"] <= t["median"]


def invariants_08(results):
    """Winograd F(2x2, 3x3) gives im2col's numbers; 4 instead of 9 multiplications per pixel
    and channel pair. (Its timings are printed, never asserted: the machine is shared.)"""
    assert results["error_float64"] < 1e-12
    assert results["multiplications_per_pixel"]["ratio"] == 2.25
    assert [shape["shape"] for shape in results["shapes"]] == ["16->16 32x32", "32->32 16x16",
                                                                "64->64 8x8"]
    for shape in results["shapes"]:
        assert list(shape["winograd"]) == ["input transform", "16 products", "output transform"]
        assert all(ms > 0 for method in ("im2col", "winograd") for ms in shape[method].values())


INVARIANTS = {"01": invariants_01, "02": invariants_02, "03": invariants_03, "04": invariants_04,
              "05": invariants_05, "07": invariants_07, "08": invariants_08}
