"""Training: Trainer (the loop), History (what happened), callbacks, checkpoints.

One step of the loop is the data flow of the whole library:

    logits = model.forward(xb)              every layer fills its cache
    loss   = criterion.forward(logits, yb)  a float
    model.backward(criterion.backward())    every layer sets its grads
    optimizer.step()                        every parameter moves against its grad

With parallel=True (the default) forward and backward run as DataParallel(model) runs
them (resnet_np.parallel), in fit and in evaluate and predict: the same numbers, the
batch cut in one part per core, a replica of the model on each (the first is the model,
whose layers then keep the caches of the first part); batches too small to pay for the
threads, and networks without a convolution, run on the model itself.
Trainer(..., parallel=False) runs model.forward and model.backward on the whole batch.

The trainer also sets train()/eval() itself, shuffles with its own rng, applies
the learning-rate schedule before every step, stops on a non-finite loss and,
with `checkpoint=path`, saves model, optimizer, rng and history after every epoch
so that `resume(path)` continues exactly where the run left off.
"""
import sys
import time

import numpy as np

from . import io
from .layers import Layer
from .parallel import DataParallel
from ._checks import as_generator, check_array, check_finite, check_int, message


class History:
    """Per-epoch records (loss, accuracy, val_loss, val_accuracy, lr, seconds,
    images_per_s) and the loss of every step.

    >>> h = History()
    >>> h.append(epoch=1, loss=0.5, accuracy=0.75)
    >>> h["loss"], len(h)
    ([0.5], 1)
    """

    FIELDS = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr", "seconds",
              "images_per_s")

    def __init__(self, epochs=None, step_loss=None):
        self.epochs = list(epochs or [])
        self.step_loss = list(step_loss or [])

    def append(self, **record):
        self.epochs.append({key: record.get(key) for key in self.FIELDS})

    def __getitem__(self, key):
        if key == "step_loss":
            return list(self.step_loss)
        if key not in self.FIELDS:
            raise KeyError(message("History", f"one of {self.FIELDS + ('step_loss',)}", repr(key)))
        return [record[key] for record in self.epochs]

    def __len__(self):
        return len(self.epochs)

    def to_dict(self):
        return {"epochs": self.epochs, "step_loss": self.step_loss}

    @classmethod
    def from_dict(cls, d):
        return cls(d.get("epochs"), d.get("step_loss"))

    def save(self, path):
        """Write the history as JSON (to a temporary file renamed over `path`, so an
        interrupted save never leaves half a file)."""
        io.write_json(path, self.to_dict())

    def __repr__(self):
        return f"History({len(self)} epochs, {len(self.step_loss)} steps)"


class Callback:
    """Hooks the trainer calls; subclass and override the ones you need.

    `logs` holds: at a step, epoch, step, steps, loss, accuracy (running means over
    the epoch so far), lr, images_per_s, eta_s; at an epoch end, the History record.
    """

    def on_train_begin(self, trainer):
        pass

    def on_epoch_begin(self, trainer, epoch):
        pass

    def on_step_end(self, trainer, logs):
        pass

    def on_epoch_end(self, trainer, logs):
        pass

    def on_train_end(self, trainer):
        pass


def _accuracy_text(name, value):
    return "" if value is None else f"  {name} {value:.3f}"


class ProgressBar(Callback):
    """verbose=1: one line per batch, rewritten in place, and a summary per epoch.

    live : None (default) rewrites the batch line only on a terminal, so a log file or
        a notebook's captured output gets just the epoch summaries; True or False forces it.
    """

    def __init__(self, stream=None, live=None):
        self.stream = stream or sys.stdout
        isatty = getattr(self.stream, "isatty", lambda: False)
        self.live = isatty() if live is None else bool(live)

    def on_step_end(self, trainer, logs):
        if not self.live:
            return
        width = 20
        done = int(width * logs["step"] / logs["steps"])
        bar = "=" * done + "." * (width - done)
        self.stream.write(
            f"\repoch {logs['epoch']}/{logs['epochs']} [{bar}] {logs['step']}/{logs['steps']}"
            f"  loss {logs['loss']:.4f}{_accuracy_text('acc', logs['accuracy'])}"
            f"  {logs['images_per_s']:.0f} img/s  ETA {logs['eta_s']:.0f}s ")
        self.stream.flush()

    def on_epoch_end(self, trainer, logs):
        val = ""
        if logs["val_loss"] is not None:
            val = f"  val_loss {logs['val_loss']:.4f}{_accuracy_text('val_acc', logs['val_accuracy'])}"
        line = (f"epoch {logs['epoch']}: loss {logs['loss']:.4f}"
                f"{_accuracy_text('acc', logs['accuracy'])}{val}  lr {logs['lr']:.4g}"
                f"  {logs['seconds']:.1f}s  {logs['images_per_s']:.0f} img/s")
        # On a terminal, overwrite the batch line (and blank what is left of it).
        self.stream.write(f"\r{line}{' ' * 20}\n" if self.live else f"{line}\n")
        self.stream.flush()


def _accuracy_count(logits, y):
    """Sum over examples of the fraction of positions whose arg-max matches the label.

    (N, C) logits with (N,) labels: the number of correct rows. (N, C, d1, ...) logits
    with (N, d1, ...) labels (segmentation): each example counts its pixel accuracy.
    None when the targets are not class labels (e.g. MSELoss targets).
    """
    if not np.issubdtype(y.dtype, np.integer) or logits.ndim != y.ndim + 1:
        return None
    hits = np.argmax(logits, axis=1) == y                     # (N,) or (N, d1, ...)
    return float(hits.reshape(len(y), -1).mean(axis=1).sum())


class Trainer:
    """Mini-batch training with SGD: fit, evaluate, predict, checkpoint, resume.

    Parameters
    ----------
    model : Layer
    loss : SoftmaxCrossEntropy or MSELoss (anything with forward(out, y) and backward())
    optimizer : SGD
    schedule : None or a function t -> lr (MultiStepLR, CosineLR, WarmupLR), applied
        before every step with t = epoch_index + step / steps_per_epoch
    rng : None, int or np.random.Generator; drives shuffling and augmentation
    parallel : bool, default True: training steps, evaluate and predict run on one
        replica of the model per core (DataParallel; the same numbers, faster on several
        cores; small batches and dense networks run on the model itself). The model's
        layers then keep the caches of the first part of each batch only; False runs
        model.forward and model.backward on the whole batch, for a callback that reads
        the blocks' intermediates() and gradients()

    Attributes
    ----------
    epoch : int, number of epochs completed (fit continues from epoch + 1)
    history : History
    run_record : None or a JSON-serialisable dict describing the run (its arguments,
        data, versions); saved in every checkpoint and restored by resume
    runner : what runs the forward and backward passes of fit, evaluate and predict:
        DataParallel(model) with parallel=True, else the model

    Example
    -------
    >>> import resnet_np as rn
    >>> X = np.random.default_rng(0).standard_normal((64, 2)).astype(np.float32)
    >>> y = (X[:, 0] * X[:, 1] > 0).astype(np.int64)          # XOR-like quadrants
    >>> model = rn.residual_mlp(2, width=16, num_blocks=1, num_classes=2, rng=0)
    >>> trainer = Trainer(model, rn.SoftmaxCrossEntropy(), rn.SGD(model, lr=0.1, momentum=0.9), rng=0)
    >>> history = trainer.fit(X, y, epochs=30, batch_size=16, verbose=0)
    >>> history["loss"][-1] < history["loss"][0]
    True
    """

    def __init__(self, model, loss, optimizer, schedule=None, rng=None, parallel=True):
        for name, value, needs in (("model", model, ("forward", "backward", "train")),
                                   ("loss", loss, ("forward", "backward")),
                                   ("optimizer", optimizer, ("step",))):
            if not all(callable(getattr(value, attr, None)) for attr in needs):
                methods = " and ".join(f"{attr}()" for attr in needs)
                raise TypeError(message("Trainer", f"{'an' if name[0] in 'aeiou' else 'a'} "
                                        f"{name} with {methods}", type(value).__name__,
                                        "Pass (model, loss, optimizer), e.g. (model, "
                                        "SoftmaxCrossEntropy(), SGD(model, lr=0.1))."))
        if schedule is not None and not callable(schedule):
            raise TypeError(message("Trainer", "schedule to be None or a function t -> lr",
                                    type(schedule).__name__))
        self.model, self.loss, self.optimizer, self.schedule = model, loss, optimizer, schedule
        self.parallel = bool(parallel)
        self._data_parallel = None
        self.rng = as_generator(rng)
        self.epoch = 0
        self.history = History()
        self.run_record = None

    @property
    def runner(self):
        """What runs the forward and backward passes of fit, evaluate and predict:
        DataParallel(self.model) with parallel=True (for a resnet_np Layer), else the model."""
        if not self.parallel or not isinstance(self.model, Layer):
            return self.model
        if self._data_parallel is None or self._data_parallel.model is not self.model:
            self._data_parallel = DataParallel(self.model)     # again for a new model
        return self._data_parallel

    def _check_data(self, X, y, where, names=("X", "y")):
        # The one full NaN/inf scan of the data, per call: layers do not scan their
        # inputs (it would cost every forward pass), and the loss only sees a batch.
        check_array(X, where, np.ndim(X), "(N, ...) float array")
        check_finite(X, names[0], where, "Clean or impute the data before training; a NaN "
                     "input would turn every weight into NaN.")
        y = np.asarray(y)
        if y.shape[:1] != X.shape[:1]:
            raise ValueError(message(where, f"one target per example ({len(X)})",
                                     f"y of shape {y.shape}"))
        check_finite(y, names[1], where)
        return X, y

    def fit(self, X, y, epochs, batch_size=128, val=None, augment=None, callbacks=(),
            checkpoint=None, verbose=1):
        """Train until `epochs` epochs are complete in total; returns self.history.

        val : optional (X_val, y_val), evaluated after every epoch
        augment : optional function (xb, rng) -> xb applied to each training batch
        callbacks : Callback objects; verbose=1 adds a ProgressBar, verbose=0 is silent
        checkpoint : optional path; model, optimizer, rng and history saved after
            every epoch (atomically: a crash never leaves a half-written file)
        """
        where = "Trainer.fit"
        X, y = self._check_data(X, y, where)
        epochs = check_int(epochs, "epochs", where, minimum=0)
        batch_size = check_int(batch_size, "batch_size", where)
        if val is not None:
            if not (isinstance(val, (tuple, list)) and len(val) == 2):
                raise TypeError(message(where, "val as a pair (X_val, y_val)",
                                        type(val).__name__, "Pass val=(X_test, y_test)."))
            val = self._check_data(*val, where, names=("X_val", "y_val"))
        if augment is not None and not callable(augment):
            raise TypeError(message(where, "augment as a function (xb, rng) -> xb",
                                    type(augment).__name__, "Pass e.g. data.augment_cifar."))
        callbacks = list(callbacks) + ([ProgressBar()] if verbose else [])
        for cb in callbacks:
            cb.on_train_begin(self)
        for epoch in range(self.epoch + 1, epochs + 1):
            for cb in callbacks:
                cb.on_epoch_begin(self, epoch)
            record = self._train_epoch(X, y, epoch, epochs, batch_size, augment, callbacks)
            if val is not None:
                scores = self.evaluate(*val)
                record.update(val_loss=scores["loss"], val_accuracy=scores["accuracy"])
            self.history.append(**record)
            self.epoch = epoch
            if checkpoint is not None:
                self.save_checkpoint(checkpoint)
            for cb in callbacks:
                cb.on_epoch_end(self, self.history.epochs[-1])
        for cb in callbacks:
            cb.on_train_end(self)
        return self.history

    def _train_epoch(self, X, y, epoch, epochs, batch_size, augment, callbacks):
        N = len(X)
        steps = -(-N // batch_size)
        order = self.rng.permutation(N)
        self.model.train()
        runner = self.runner
        start, seen, loss_sum, correct = time.perf_counter(), 0, 0.0, 0.0
        for step in range(steps):
            idx = order[step * batch_size:(step + 1) * batch_size]
            xb, yb = X[idx], y[idx]
            if augment is not None:
                xb = augment(xb, self.rng)
            if self.schedule is not None:
                self.optimizer.lr = float(self.schedule(epoch - 1 + step / steps))
            logits = runner.forward(xb)                # model.forward(xb), maybe on replicas
            loss = self.loss.forward(logits, yb)
            if not np.isfinite(loss):
                raise FloatingPointError(message(
                    "Trainer.fit", "a finite loss", f"loss={loss} at epoch {epoch}, step {step + 1}",
                    f"Lower the learning rate (lr={self.optimizer.lr:g}). The last checkpoint "
                    f"(after epoch {self.epoch}) was left untouched."))
            runner.backward(self.loss.backward())
            self.optimizer.step()
            self.history.step_loss.append(loss)
            seen, loss_sum = seen + len(idx), loss_sum + loss * len(idx)
            hits = _accuracy_count(logits, yb)
            correct = None if hits is None else correct + hits
            elapsed = time.perf_counter() - start
            logs = {"epoch": epoch, "epochs": epochs, "step": step + 1, "steps": steps,
                    "loss": loss_sum / seen, "accuracy": None if hits is None else correct / seen,
                    "lr": self.optimizer.lr,
                    "images_per_s": seen / elapsed, "eta_s": elapsed / seen * (N - seen)}
            for cb in callbacks:
                cb.on_step_end(self, logs)
        seconds = time.perf_counter() - start
        return {"epoch": epoch, "loss": loss_sum / N, "accuracy": logs["accuracy"],
                "lr": self.optimizer.lr, "seconds": seconds, "images_per_s": N / seconds}

    def _batched_outputs(self, X, batch_size):
        was_training = self.model.training
        self.model.eval()
        runner = self.runner                      # eval: the replicas never meet
        try:
            for i in range(0, len(X), batch_size):
                yield i, runner.forward(X[i:i + batch_size])
        finally:
            self.model.train(was_training)

    def evaluate(self, X, y, batch_size=256):
        """{"loss": mean loss, "accuracy": fraction correct (None for non-class targets)}."""
        X, y = self._check_data(X, y, "Trainer.evaluate")
        loss_sum, correct = 0.0, 0.0
        for i, out in self._batched_outputs(X, batch_size):
            yb = y[i:i + batch_size]
            loss_sum += self.loss.forward(out, yb) * len(yb)
            hits = _accuracy_count(out, yb)
            correct = None if hits is None else correct + hits
        return {"loss": loss_sum / len(X), "accuracy": None if correct is None else correct / len(X)}

    def predict(self, X, batch_size=256, return_logits=False):
        """Predicted class of each row (arg-max of the logits), in eval mode."""
        check_array(X, "Trainer.predict", np.ndim(X), "(N, ...) float array")
        outs = [out for _, out in self._batched_outputs(X, batch_size)]
        logits = np.concatenate(outs)
        return logits if return_logits else np.argmax(logits, axis=1)

    # -- checkpoints --------------------------------------------------------------
    def save_checkpoint(self, path):
        """Save model, optimizer, epoch, rng state, history and run_record to `path`
        (.npz without pickle, atomic)."""
        io.save(path, self.model, self.optimizer, epoch=self.epoch,
                rng_state=self.rng.bit_generator.state, history=self.history.to_dict(),
                run=self.run_record)

    def resume(self, path):
        """Restore everything save_checkpoint wrote; the next fit continues after it."""
        meta = io.load(path, self.model, self.optimizer)
        self.epoch = int(meta["epoch"])
        self.rng.bit_generator.state = meta["rng_state"]
        self.history = History.from_dict(meta["history"])
        self.run_record = meta.get("run")
        return self
