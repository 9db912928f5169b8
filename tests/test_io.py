"""Checkpoints: round trip, atomic save, clear errors for bad files and mismatched models."""
import os
import re

import numpy as np
import pytest

from resnet_np import SGD, SoftmaxCrossEntropy, residual_mlp
from resnet_np import io as rio


def _trained(rng, width=6, num_blocks=2, dtype=np.float32):
    """A small residual MLP and an SGD with momentum after two steps (so velocity exists)."""
    model = residual_mlp(4, width, num_blocks, 3, rng=0).astype(dtype)
    optimizer = SGD(model, lr=0.1, momentum=0.9, weight_decay=1e-4)
    loss = SoftmaxCrossEntropy()
    X, y = rng.standard_normal((8, 4)).astype(dtype), rng.integers(0, 3, 8)
    for _ in range(2):
        loss(model(X), y)
        model.backward(loss.backward())
        optimizer.step()
    return model, optimizer


def _leftovers(directory):
    return [name for name in os.listdir(directory) if name.endswith(".tmp")]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_round_trip_model_optimizer_and_meta(tmp_path, rng, dtype):
    model, optimizer = _trained(rng, dtype=dtype)
    stream = np.random.default_rng(7)
    stream.random(3)
    meta = {"epoch": 3, "schedule": {"milestones": [2, 4], "last_epoch": 3},
            "rng_state": stream.bit_generator.state, "loss": np.float32(0.5)}
    path = tmp_path / "ckpt.npz"
    rio.save(path, model, optimizer, **meta)

    fresh = residual_mlp(4, 6, 2, 3, rng=1).astype(dtype)
    fresh_optimizer = SGD(fresh, lr=0.5, momentum=0.9)
    got = rio.load(path, fresh, fresh_optimizer)

    for (name, p), (_, q) in zip(model.named_parameters(), fresh.named_parameters()):
        assert q.dtype == dtype and np.array_equal(p, q), name
    assert fresh_optimizer.lr == 0.1
    assert set(fresh_optimizer.velocity) == set(optimizer.velocity)
    for name, v in optimizer.velocity.items():
        assert np.array_equal(fresh_optimizer.velocity[name], v), name
    assert got["epoch"] == 3 and got["schedule"] == meta["schedule"] and got["loss"] == 0.5
    resumed = np.random.default_rng()
    resumed.bit_generator.state = got["rng_state"]
    assert np.array_equal(resumed.random(5), stream.random(5))


def test_file_layout_is_plain_npz_with_namespaced_keys(tmp_path, rng):
    model, optimizer = _trained(rng)
    path = tmp_path / "ckpt.npz"
    rio.save(path, model, optimizer, epoch=1)
    with np.load(path, allow_pickle=False) as archive:
        files = set(archive.files)
        assert str(archive["format"]) == rio.FORMAT
        assert np.array_equal(archive["model/blocks.1.fc2.W"], model.blocks[1].fc2.params["W"])
    assert "optimizer/velocity/blocks.0.fc1.W" in files and "meta" in files


def test_optimizer_without_steps_round_trips(tmp_path):
    model = residual_mlp(4, 6, 1, 3, rng=0)
    rio.save(tmp_path / "c.npz", model, SGD(model, lr=0.1, momentum=0.9))
    optimizer = SGD(model, lr=1.0, momentum=0.9)
    assert rio.load(tmp_path / "c.npz", model, optimizer) == {}
    assert optimizer.velocity == {} and optimizer.lr == 0.1


@pytest.mark.parametrize("target", ["savez", "replace"])
def test_failed_save_leaves_previous_file_and_no_temporary(tmp_path, rng, monkeypatch, target):
    model, optimizer = _trained(rng)
    path = tmp_path / "ckpt.npz"
    rio.save(path, model, optimizer, epoch=1)
    before = path.read_bytes()

    def crash(*args, **kwargs):
        if target == "savez":
            args[0].write(b"PK\x03\x04 half a checkpoint")      # a partial write, then die
        raise OSError("disk full")
    if target == "savez":
        monkeypatch.setattr(rio.np, "savez", crash)
    else:
        monkeypatch.setattr(rio.os, "replace", crash)
    model.head.params["W"] += 1.0
    with pytest.raises(OSError, match="disk full"):
        rio.save(path, model, optimizer, epoch=2)
    monkeypatch.undo()

    assert path.read_bytes() == before
    assert _leftovers(tmp_path) == []
    assert rio.load(path, residual_mlp(4, 6, 2, 3, rng=0))["epoch"] == 1


def test_truncated_file_is_a_clear_error(tmp_path, rng):
    model, optimizer = _trained(rng)
    path = tmp_path / "ckpt.npz"
    rio.save(path, model, optimizer)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"ckpt\.npz.*expected a resnet_np checkpoint.*"
                                         r"got a file NumPy cannot read.*truncated"):
        rio.load(path, model)


@pytest.mark.parametrize("kind", ["foreign_npz", "npy", "text", "empty"])
def test_foreign_files_are_clear_errors(tmp_path, kind):
    path = tmp_path / "other.npz"
    if kind == "foreign_npz":
        with open(path, "wb") as f:
            np.savez(f, W=np.ones(3))
        pattern = r"other\.npz.*got an \.npz without the 'format' entry.*load_state_dict"
    elif kind == "npy":
        with open(path, "wb") as f:
            np.save(f, np.ones(3))
        pattern = r"other\.npz.*single \.npy array"
    else:
        path.write_text("" if kind == "empty" else "epoch,loss\n1,0.5\n")
        pattern = r"other\.npz.*expected a resnet_np checkpoint.*cannot read as \.npz"
    with pytest.raises(ValueError, match=pattern):
        rio.load(path, residual_mlp(4, 6, 1, 3, rng=0))


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope\.npz.*expected an existing checkpoint"):
        rio.load(tmp_path / "nope.npz", residual_mlp(4, 6, 1, 3, rng=0))


def test_other_format_version_is_refused(tmp_path):
    model = residual_mlp(4, 6, 1, 3, rng=0)
    with open(tmp_path / "v0.npz", "wb") as f:
        np.savez(f, format=np.array("resnet_np.checkpoint.v0"))
    with pytest.raises(ValueError, match="got format 'resnet_np.checkpoint.v0'"):
        rio.load(tmp_path / "v0.npz", model)


def test_mismatched_model_names_every_bad_key_and_changes_nothing(tmp_path, rng):
    model, _ = _trained(rng, width=6, num_blocks=2)
    path = tmp_path / "ckpt.npz"
    rio.save(path, model)
    other = residual_mlp(4, 5, 1, 3, rng=3)        # narrower, one block fewer
    before = other.state_dict()
    with pytest.raises(ValueError) as info:
        rio.load(path, other)
    text = str(info.value)
    assert text.startswith(f"resnet_np.io.load({str(path)!r}): ")
    assert re.search(r"unexpected keys \[.*'blocks\.1\.fc1\.W'", text)
    for name in ["stem.W", "stem.b", "blocks.0.fc1.W", "blocks.0.fc2.b", "head.W"]:
        assert re.search(rf"{re.escape(name)}: expected \(.*\), got \(", text), name
    assert "Build the same architecture" in text
    for name, value in other.state_dict().items():
        assert np.array_equal(value, before[name]), name


def test_mismatched_optimizer_state_is_named_before_anything_changes(tmp_path, rng):
    model, optimizer = _trained(rng)
    path = tmp_path / "ckpt.npz"
    rio.save(path, model, optimizer)
    other = residual_mlp(4, 6, 1, 3, rng=3)
    before = other.state_dict()
    with pytest.raises(ValueError, match=r"optimizer/velocity/blocks\.1\.fc1\.W: no parameter "
                                         r"'blocks\.1\.fc1\.W' in the model"):
        rio.load(path, other, SGD(other, lr=0.1, momentum=0.9))
    assert all(np.array_equal(v, before[k]) for k, v in other.state_dict().items())


def test_optimizer_requested_but_not_saved(tmp_path):
    model = residual_mlp(4, 6, 1, 3, rng=0)
    rio.save(tmp_path / "w.npz", model)
    with pytest.raises(ValueError, match="expected a checkpoint with optimizer state"):
        rio.load(tmp_path / "w.npz", model, SGD(model, lr=0.1))


def test_meta_must_be_json(tmp_path):
    model = residual_mlp(4, 6, 1, 3, rng=0)
    with pytest.raises(TypeError, match=r"save: expected JSON-serialisable values for 'meta'"
                                        r".*got object"):
        rio.save(tmp_path / "m.npz", model, note=object())
    assert not os.path.exists(tmp_path / "m.npz") and _leftovers(tmp_path) == []
