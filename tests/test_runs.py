"""resnet_np.runs: the run record, the resume comparison and the schedule restart."""
import argparse

import pytest

from resnet_np.runs import (UsageError, check_resume, command_line, differing_arguments,
                            make_schedule, run_record)


def _args(**changes):
    values = dict(model="resnet8", data="builtin", data_dir=None, epochs=2, batch_size=32,
                  lr=0.1, out="runs/a", resume="runs/a/model.npz", extend=False, limit=64,
                  seed=0, debug=False)
    values.update(changes)
    return argparse.Namespace(**values)


def _meta(epoch=2, **changes):
    return {"epoch": epoch, "run": run_record(_args(**changes), 64, 64, (3, 16, 16), 10)}


def test_run_record_holds_every_argument_but_debug():
    record = run_record(_args(), 64, 32, (3, 16, 16), 10)
    assert set(record["arguments"]) == set(vars(_args())) - {"debug"}
    assert record["data"]["train_size"] == 64 and record["data"]["test_size"] == 32
    assert record["schedule_start"] == 0


def test_differing_arguments_lists_each_one():
    saved = _meta()["run"]
    assert differing_arguments(saved, _args(seed=5, out="elsewhere")) == []
    assert differing_arguments(saved, _args(model="resnet20", lr=0.2)) == [
        ("model", "resnet8", "resnet20"), ("lr", 0.1, 0.2)]


def test_check_resume_same_arguments_continue_the_saved_schedule():
    assert check_resume(_meta(epoch=1), _args()) == 0
    meta = _meta()
    meta["run"]["schedule_start"] = 2
    assert check_resume(meta, _args()) == 2


def test_check_resume_errors_name_the_arguments_and_the_fix():
    with pytest.raises(UsageError, match=r"--limit 64 \(now 128\).*drop --resume"):
        check_resume(_meta(), _args(limit=128))
    with pytest.raises(UsageError, match=r"--epochs 2 \(now 4\).*add --extend"):
        check_resume(_meta(), _args(epochs=4))
    with pytest.raises(UsageError, match=r"--extend: expected a finished run, got one stopped "
                                         r"after epoch 1 of 2"):
        check_resume(_meta(epoch=1), _args(epochs=4, extend=True))
    with pytest.raises(UsageError, match=r"--extend: expected --epochs above the 2"):
        check_resume(_meta(), _args(epochs=2, extend=True))
    with pytest.raises(UsageError, match="without .* drop --extend"):
        check_resume({"epoch": 2}, _args(epochs=4, extend=True))
    assert check_resume({"epoch": 2}, _args()) == 0          # an old file: load checks it
    assert check_resume(_meta(), _args(epochs=4, extend=True)) == 2


def test_make_schedule_warms_up_then_restarts_without_warm_up():
    fresh = make_schedule(0.1, 4)
    assert fresh(0) == pytest.approx(0.01) and fresh(4) == pytest.approx(0.0)
    extended = make_schedule(0.1, 6, start=4)
    assert extended(4) == pytest.approx(0.1)                 # straight back to lr
    assert extended(5) == pytest.approx(0.05) and extended(6) == pytest.approx(0.0)


def test_command_line_repeats_the_arguments():
    line = command_line(vars(_args()), resume="runs/a/model.npz")
    assert line == ("python -m resnet_np train --model resnet8 --data builtin --limit 64 "
                    "--batch-size 32 --lr 0.1 --epochs 2 --seed 0 --out runs/a "
                    "--resume runs/a/model.npz")
