"""The command line: python -m resnet_np {trace, train, gradcheck, bench}."""
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from resnet_np.__main__ import main
from resnet_np.train import Trainer


def test_trace_prints_every_intermediate_and_the_split(capsys):
    assert main(["trace", "--skip", "2"]) == 0
    out = capsys.readouterr().out
    for key in ["a_l", "z_l1", "a_l1", "z_l2", "shortcut", "a_l2", "da_l_shortcut", "da_l_branch"]:
        assert f"\n{key} " in out, key
    assert "a^[l+2] = g(z^[l+2] + shortcut)" in out
    assert "da_l == da_l_shortcut + da_l_branch: True" in out


@pytest.mark.parametrize("args", [["--skip", "1", "--activation", "sigmoid"],
                                  ["--skip", "3", "--shortcut", "projection"],
                                  ["--shortcut", "none"]])
def test_trace_options(args, capsys):
    assert main(["trace"] + args) == 0
    assert "Forward, a^[l] to a^[l+" in capsys.readouterr().out


def test_unknown_command_is_an_error(capsys):
    assert main(["fly"]) == 2
    assert "expected a command from" in capsys.readouterr().err


def test_trace_rejects_unknown_option():
    with pytest.raises(SystemExit):
        main(["trace", "--skip", "4"])


def _train(out, epochs, resume=None):
    args = ["train", "--model", "resnet8", "--epochs", str(epochs), "--limit", "192",
            "--batch-size", "64", "--out", str(out)]
    return main(args + (["--resume", resume] if resume else []))


def test_train_writes_history_plot_and_checkpoint_and_resumes_exactly(tmp_path, capsys,
                                                                      monkeypatch):
    full, part = tmp_path / "full", tmp_path / "part"
    assert _train(full, 2) == 0
    out = capsys.readouterr().out
    assert "test accuracy" in out and "history.json" in out
    for name in ["history.json", "curves.png", "model.npz"]:
        assert (full / name).exists(), name
    history = json.loads((full / "history.json").read_text())
    assert [e["epoch"] for e in history["epochs"]] == [1, 2]

    # The same two-epoch run, killed right after the checkpoint of epoch 1 ...
    save = Trainer.save_checkpoint

    def save_then_crash(self, path):
        save(self, path)
        if self.epoch == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "save_checkpoint", save_then_crash)
    assert _train(part, 2) == 130
    assert "holds epoch 1 of 2" in capsys.readouterr().err
    monkeypatch.setattr(Trainer, "save_checkpoint", save)
    # ... and resumed: --epochs is the total, so it trains epoch 2 only.
    assert _train(part, 2, resume=str(part / "model.npz")) == 0
    assert "resumed from" in capsys.readouterr().out
    with np.load(full / "model.npz") as a, np.load(part / "model.npz") as b:
        model_keys = [k for k in a.files if k.startswith("model/")]
        assert model_keys
        for key in model_keys:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_train_needs_data_dir_for_file_data_sets(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--data", "mnist"])
    assert exit_info.value.code == 2
    assert "--data mnist needs --data-dir" in capsys.readouterr().err


def test_gradcheck_command_covers_every_layer_type():
    import resnet_np
    from resnet_np.gradcheck import every_layer_cases
    from resnet_np.layers.base import Layer
    covered = {type(module) for _, module, _, _ in every_layer_cases()}
    covered |= {type(m.concat) for _, m, _, _ in every_layer_cases() if hasattr(m, "concat")}
    exported = {obj for obj in vars(resnet_np).values()
                if isinstance(obj, type) and issubclass(obj, Layer)
                and obj not in (Layer, resnet_np.Sequential, resnet_np.ResidualBlock)}
    # Shortcut layers are checked inside the blocks that own them.
    exported -= {resnet_np.ZeroPadShortcut, resnet_np.Projection}
    assert exported <= covered, sorted(c.__name__ for c in exported - covered)


def test_gradcheck_command_reports_and_fails_on_a_wrong_backward(monkeypatch, capsys):
    from resnet_np import Dense, gradcheck
    from resnet_np.gradcheck import every_layer_cases

    class WrongDense(Dense):
        def backward(self, dout):
            return 2 * super().backward(dout)

    cases = every_layer_cases()[:2] + [("WrongDense", WrongDense(3, 2, rng=0), (4, 3), None)]
    monkeypatch.setattr(gradcheck, "every_layer_cases", lambda: cases)
    assert main(["gradcheck"]) == 1
    out = capsys.readouterr().out
    assert "Dense " in out and "WrongDense" in out and "1 FAILED" in out
    monkeypatch.setattr(gradcheck, "every_layer_cases", lambda: cases[:2])
    assert main(["gradcheck"]) == 0
    assert "all passed" in capsys.readouterr().out


@pytest.mark.parametrize("kind, block_name, out", [("basic", "BasicBlock", "a^[l+2]"),
                                                   ("preact", "PreActBlock", "a^[l+2]"),
                                                   ("bottleneck", "Bottleneck", "a^[l+3]")])
def test_trace_block_kinds(kind, block_name, out, capsys):
    assert main(["trace", "--block", kind, "--shortcut", "projection"]) == 0
    text = capsys.readouterr().out
    assert text.startswith(block_name) and f"Forward, a^[l] to {out} on a batch of 8" in text
    assert "da_l == da_l_shortcut + da_l_branch: True" in text


def test_trace_plot_writes_the_block_trace_figure(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    path = tmp_path / "block.png"
    assert main(["trace", "--block", "basic", "--plot", str(path)]) == 0
    assert path.stat().st_size > 10_000 and f"wrote {path}" in capsys.readouterr().out


# -- train: the command line as a new user meets it (issue 13), run in subprocesses ---------

ROOT = Path(__file__).resolve().parent.parent
QUICK = ["--model", "resnet8", "--limit", "64", "--batch-size", "32"]


def _cli_env():
    return dict(os.environ, MPLBACKEND="Agg", PYTHONPATH=os.pathsep.join(
        [str(ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p]))


def run_cli(*args, cwd=None):
    """`python -m resnet_np train ARGS` in a subprocess; the CompletedProcess."""
    return subprocess.run([sys.executable, "-m", "resnet_np", "train", *map(str, args)],
                          cwd=cwd, env=_cli_env(), capture_output=True, text=True, timeout=120)


def assert_one_error_line(proc, *fragments):
    """Exit status 2, no traceback, stderr exactly one `error:` line holding `fragments`."""
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(lines) == 1 and lines[0].startswith("python -m resnet_np train: error: "), lines
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


@pytest.mark.parametrize("args, fragments", [
    (["--epochs", "0"], ["argument --epochs", "got '0'", "--epochs 6"]),
    (["--batch-size", "0"], ["argument --batch-size", "got '0'"]),
    (["--lr", "nan"], ["argument --lr", "finite number > 0", "got 'nan'"]),
    (["--lr", "-0.1"], ["argument --lr", "got '-0.1'"]),
    (["--limit", "0"], ["argument --limit", "got '0'"]),
    (["--epochs", "two"], ["argument --epochs", "got 'two'"]),
    (["--data", "cifar10", "--data-dir", "/nonexistent"], ["load_cifar10", "/nonexistent",
                                                            "Download and unpack CIFAR-10"]),
    (["--data", "mnist"], ["--data mnist needs --data-dir"]),
    (["--resume", "missing.npz"], ["--resume missing.npz", "no such file", "drop --resume"]),
    (["--extend"], ["--extend", "expected --resume"]),
])
def test_train_mistakes_are_one_error_line(args, fragments, tmp_path):
    assert_one_error_line(run_cli(*args, cwd=tmp_path), *fragments)


def test_train_data_folder_without_the_files_and_a_foreign_checkpoint(tmp_path):
    assert_one_error_line(run_cli("--data", "mnist", "--data-dir", tmp_path), "load_mnist",
                          str(tmp_path))
    not_a_checkpoint = tmp_path / "notes.npz"
    not_a_checkpoint.write_text("hello")
    assert_one_error_line(run_cli("--resume", not_a_checkpoint, *QUICK),
                          "expected a resnet_np checkpoint")


def test_train_debug_shows_the_traceback(tmp_path):
    proc = run_cli("--resume", "missing.npz", "--debug", cwd=tmp_path)
    assert proc.returncode != 0
    assert "Traceback" in proc.stderr and "UsageError" in proc.stderr


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A ResNet-8 run of 2 epochs on 64 images: its folder."""
    out = tmp_path_factory.mktemp("run") / "resnet8"
    proc = run_cli(*QUICK, "--epochs", 2, "--out", out)
    assert proc.returncode == 0, proc.stderr
    return out


def test_train_writes_a_run_record_also_kept_in_the_checkpoint(finished_run):
    from resnet_np.io import read_meta
    record = json.loads((finished_run / "run.json").read_text())
    assert record["arguments"]["model"] == "resnet8" and record["arguments"]["epochs"] == 2
    assert record["seed"] == 0 and record["cpu_count"] == os.cpu_count()
    assert record["data"] == {"name": "builtin", "train_size": 64, "test_size": 64,
                              "image_shape": [3, 16, 16], "num_classes": 10}
    assert record["versions"]["numpy"] == np.__version__
    assert set(record["versions"]) == {"resnet_np", "numpy", "python"}
    assert read_meta(finished_run / "model.npz")["run"] == record
    with np.load(finished_run / "model.npz", allow_pickle=False) as archive:   # no pickle
        assert "meta" in archive.files


def test_train_resume_as_another_model_names_the_model(finished_run, tmp_path):
    proc = run_cli(*QUICK, "--epochs", 2, "--model", "resnet20", "--out", tmp_path,
                   "--resume", finished_run / "model.npz")
    assert_one_error_line(proc, "--model resnet8 (now resnet20)", "drop --resume")


def test_train_resume_of_a_checkpoint_without_record_of_another_model(tmp_path):
    from resnet_np import SGD, resnet_cifar
    from resnet_np.io import save
    model = resnet_cifar(8, rng=0)
    save(tmp_path / "model.npz", model, SGD(model, lr=0.1, momentum=0.9), epoch=1)
    proc = run_cli(*QUICK, "--model", "resnet20", "--resume", tmp_path / "model.npz",
                   "--out", tmp_path / "new")
    assert_one_error_line(proc, "Build the same architecture")


def test_train_resume_with_more_epochs_needs_extend(finished_run, tmp_path):
    checkpoint = finished_run / "model.npz"
    proc = run_cli(*QUICK, "--epochs", 3, "--resume", checkpoint, "--out", tmp_path / "x")
    assert_one_error_line(proc, "--epochs 2 (now 3)", "add --extend")
    proc = run_cli(*QUICK, "--epochs", 3, "--lr", 0.05, "--batch-size", 16,
                   "--resume", checkpoint, "--extend", "--out", tmp_path / "x")
    assert_one_error_line(proc, "--batch-size 32 (now 16)", "--lr 0.1 (now 0.05)",
                          "--epochs 2 (now 3)")
    proc = run_cli(*QUICK, "--epochs", 3, "--resume", checkpoint, "--extend",
                   "--out", tmp_path / "more")
    assert proc.returncode == 0, proc.stderr
    assert "epoch 3:" in proc.stdout and "epoch 2:" not in proc.stdout
    history = json.loads((tmp_path / "more" / "history.json").read_text())
    assert [e["epoch"] for e in history["epochs"]] == [1, 2, 3]
    assert history["epochs"][2]["lr"] > history["epochs"][1]["lr"]       # the restart
    record = json.loads((tmp_path / "more" / "run.json").read_text())
    assert record["schedule_start"] == 2 and record["arguments"]["epochs"] == 3


def test_train_ctrl_c_keeps_a_whole_checkpoint_and_says_how_to_resume(tmp_path):
    out = tmp_path / "run"
    args = [sys.executable, "-u", "-m", "resnet_np", "train", *QUICK, "--limit", "256",
            "--epochs", "200", "--out", str(out)]
    proc = subprocess.Popen(args, env=_cli_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    for line in proc.stdout:                      # wait until epoch 1 is saved
        if line.startswith("epoch 1:"):
            break
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "Resume with:" in stderr
    from resnet_np.io import read_meta
    saved = read_meta(out / "model.npz")["epoch"]
    assert 1 <= saved < 200 and f"holds epoch {saved} of 200" in stderr
    assert not (out / "history.json").exists()
    command = stderr.strip().splitlines()[-1].strip()
    assert command.startswith("python -m resnet_np train --model resnet8")
    assert "--epochs 200" in command and f"--resume {out / 'model.npz'}" in command
