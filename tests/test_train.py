import io as _io

import numpy as np
import pytest

import resnet_np as rn
from resnet_np.optim import MultiStepLR
from resnet_np.train import Callback, History, ProgressBar, Trainer


def tiny_problem(rng, n=96):
    X = rng.standard_normal((n, 4))
    y = (X[:, 0] + X[:, 1] ** 2 > 0.5).astype(np.int64)
    return X.astype(np.float32), y


def make_trainer(seed=0, lr=0.1, dtype=np.float32, schedule=None):
    model = rn.residual_mlp(4, width=8, num_blocks=1, num_classes=2, rng=seed).astype(dtype)
    optimizer = rn.SGD(model, lr=lr, momentum=0.9, weight_decay=1e-4)
    return Trainer(model, rn.SoftmaxCrossEntropy(), optimizer, schedule=schedule, rng=seed)


def test_loss_falls_and_history_has_every_field(rng):
    X, y = tiny_problem(rng)
    trainer = make_trainer()
    history = trainer.fit(X, y, epochs=15, batch_size=16, val=(X, y), verbose=0)
    assert len(history) == 15 and trainer.epoch == 15
    assert history["loss"][-1] < 0.7 * history["loss"][0]
    assert len(history["step_loss"]) == 15 * 6
    for field in History.FIELDS:
        assert all(value is not None for value in history[field]), field
    assert history["accuracy"][-1] > 0.8
    scores = trainer.evaluate(X, y)
    assert scores["accuracy"] == pytest.approx(history["val_accuracy"][-1])
    assert trainer.predict(X).shape == (len(X),)
    assert trainer.predict(X, return_logits=True).shape == (len(X), 2)
    assert trainer.model.training          # evaluate restored the mode


def test_schedule_sets_lr_before_each_step(rng):
    X, y = tiny_problem(rng, n=32)
    trainer = make_trainer(schedule=MultiStepLR(0.1, milestones=[2]))
    history = trainer.fit(X, y, epochs=3, batch_size=16, verbose=0)
    assert history["lr"] == pytest.approx([0.1, 0.1, 0.01])   # milestone 2: after two epochs


def test_callbacks_see_every_step_and_epoch(rng):
    X, y = tiny_problem(rng, n=40)

    class Recorder(Callback):
        def __init__(self):
            self.events = []

        def on_step_end(self, trainer, logs):
            self.events.append(("step", logs["epoch"], logs["step"], logs["steps"]))

        def on_epoch_end(self, trainer, logs):
            self.events.append(("epoch", logs["epoch"]))

    recorder = Recorder()
    make_trainer().fit(X, y, epochs=2, batch_size=16, callbacks=[recorder], verbose=0)
    assert recorder.events == [("step", 1, 1, 3), ("step", 1, 2, 3), ("step", 1, 3, 3), ("epoch", 1),
                               ("step", 2, 1, 3), ("step", 2, 2, 3), ("step", 2, 3, 3), ("epoch", 2)]


def test_progress_bar_writes_in_place_and_summarises(rng):
    X, y = tiny_problem(rng, n=32)
    stream = _io.StringIO()
    make_trainer().fit(X, y, epochs=1, batch_size=16, callbacks=[ProgressBar(stream, live=True)],
                       verbose=0)
    text = stream.getvalue()
    assert "\repoch 1/1 [" in text and "2/2" in text and "img/s" in text and "ETA" in text
    assert text.endswith("\n") and "epoch 1: loss" in text
    quiet = _io.StringIO()                      # not a terminal: epoch summaries only
    make_trainer().fit(X, y, epochs=2, batch_size=16, callbacks=[ProgressBar(quiet)], verbose=0)
    lines = quiet.getvalue().split("\n")
    assert lines[0].startswith("epoch 1: loss") and lines[1].startswith("epoch 2: loss")
    assert lines[2:] == [""] and "[" not in quiet.getvalue() and "\r" not in quiet.getvalue()


def test_resume_is_bit_exact_in_float64(rng, tmp_path):
    X, y = tiny_problem(rng)

    def augment(xb, r):                                            # uses the trainer's rng
        return xb + 0.01 * r.standard_normal(xb.shape)

    full = make_trainer(dtype=np.float64)
    full.fit(X.astype(np.float64), y, epochs=4, batch_size=16, augment=augment, verbose=0)

    path = tmp_path / "ckpt.npz"
    first = make_trainer(dtype=np.float64)
    first.fit(X.astype(np.float64), y, epochs=2, batch_size=16, augment=augment,
              checkpoint=path, verbose=0)
    second = make_trainer(seed=1, dtype=np.float64)     # different init: all must come from disk
    second.resume(path)
    assert second.epoch == 2
    second.fit(X.astype(np.float64), y, epochs=4, batch_size=16, augment=augment, verbose=0)
    for (name, a), (_, b) in zip(full.model.named_parameters(), second.model.named_parameters()):
        np.testing.assert_array_equal(a, b, err_msg=name)
    assert second.history["loss"] == full.history["loss"]


def test_non_finite_loss_stops_and_keeps_last_checkpoint(rng, tmp_path):
    X, y = tiny_problem(rng)
    path = tmp_path / "ckpt.npz"
    trainer = make_trainer()
    trainer.fit(X, y, epochs=1, batch_size=16, checkpoint=path, verbose=0)
    saved = path.read_bytes()
    trainer.optimizer.lr = 1e30
    with pytest.raises(FloatingPointError, match=r"Trainer.fit: expected a finite loss, got loss=.* "
                                                 r"at epoch 2, step \d+\. Lower the learning rate"):
        with np.errstate(all="ignore"):
            trainer.fit(X, y, epochs=3, batch_size=16, checkpoint=path, verbose=0)
    assert path.read_bytes() == saved


def test_fit_errors(rng):
    X, y = tiny_problem(rng, n=8)
    trainer = make_trainer()
    with pytest.raises(ValueError, match=r"Trainer.fit: expected one target per example \(8\)"):
        trainer.fit(X, y[:5], epochs=1, verbose=0)
    with pytest.raises(TypeError, match="Trainer.fit: expected a floating-point array"):
        trainer.fit(X.astype(np.int64), y, epochs=1, verbose=0)
    with pytest.raises(ValueError, match="batch_size >= 1"):
        trainer.fit(X, y, epochs=1, batch_size=0, verbose=0)
    with pytest.raises(KeyError, match="History: expected one of"):
        History()["los"]


def test_segmentation_and_regression_targets_train_with_progress(rng):
    import contextlib
    X = rng.standard_normal((8, 1, 4, 4)).astype(np.float32)
    masks = (X[:, 0] > 0).astype(np.int64)                    # per-pixel labels (N, H, W)
    net = rn.unet_tiny(1, 2, width=2, levels=1, rng=0)
    trainer = Trainer(net, rn.SoftmaxCrossEntropy(), rn.SGD(net, lr=0.1), rng=0)
    stream = _io.StringIO()
    with contextlib.redirect_stdout(stream):
        history = trainer.fit(X, masks, epochs=2, batch_size=4, val=(X, masks), verbose=1)
    expected = np.mean(trainer.predict(X) == masks)           # pixel accuracy
    assert trainer.evaluate(X, masks)["accuracy"] == pytest.approx(expected)
    assert 0 <= history["accuracy"][-1] <= 1 and "val_acc" in stream.getvalue()

    reg = rn.Dense(3, 2, rng=0)
    trainer = Trainer(reg, rn.MSELoss(), rn.SGD(reg, lr=0.1), rng=0)
    stream = _io.StringIO()
    with contextlib.redirect_stdout(stream):
        history = trainer.fit(rng.standard_normal((8, 3)), rng.standard_normal((8, 2)), epochs=1,
                              batch_size=4, verbose=1)
    assert history["accuracy"] == [None] and " acc " not in stream.getvalue()
