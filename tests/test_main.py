"""The command line: python -m resnet_np {trace, train, gradcheck, bench}."""
import json

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
    with pytest.raises(KeyboardInterrupt):
        _train(part, 2)
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
