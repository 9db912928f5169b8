"""grade(name, folder): check every submission in its own process, one row each.

Each `*.py` in the folder runs `python -m resnet_np exercise check NAME FILE --json`
in a subprocess with a time limit, so an endless loop or a crash costs its own row,
not the run. A row is {"file", "passed", "score", "codes", "report"}; a submission
that ran out of time gets the code TIMEOUT, one that died without a report CRASHED
(these two appear only in grading rows, never in a Diagnosis).
"""
import csv
import glob
import json
import os
import subprocess
import sys

PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _check_in_subprocess(name, path, cases, timeout):
    """Run the checker on one file in a fresh interpreter; return its row."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [PACKAGE_PARENT] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    command = [sys.executable, "-m", "resnet_np", "exercise", "check", name, path,
               "--cases", cases, "--json"]
    row = {"file": os.path.basename(path), "passed": False, "score": 0.0}
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                              cwd=os.path.dirname(os.path.abspath(path)), env=env)
    except subprocess.TimeoutExpired:
        return {**row, "codes": ["TIMEOUT"], "report": f"stopped after {timeout:g} s"}
    reports = [line for line in done.stdout.splitlines() if line.startswith('{"exercise"')]
    if not reports:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {**row, "codes": ["CRASHED"],
                "report": f"exit code {done.returncode}: {last}"}
    diagnosis = json.loads(reports[-1])
    return {**row, "passed": diagnosis["passed"], "score": diagnosis["score"],
            "codes": diagnosis["codes"], "report": diagnosis}


def grade(name, folder, timeout=60.0, cases="all", csv_path=None, json_path=None):
    """Check every *.py in `folder` as exercise `name`; return the rows, write CSV/JSON.

    The CSV has one row per submission: file, passed, score, codes (space-separated).
    The JSON is the list of rows, each with the full diagnosis under "report".
    """
    paths = sorted(glob.glob(os.path.join(folder, "*.py")))
    rows = [_check_in_subprocess(name, path, cases, timeout) for path in paths]
    if csv_path:
        with open(csv_path, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["file", "passed", "score", "codes"])
            for row in rows:
                writer.writerow([row["file"], row["passed"], row["score"], " ".join(row["codes"])])
    if json_path:
        with open(json_path, "w", encoding="utf-8") as f:
            json.dump(rows, f, indent=1)
    return rows
