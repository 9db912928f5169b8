"""SGD with momentum, Nesterov and weight decay: the update rule of torch.optim.SGD.

Math (dampening 0), for each parameter p with gradient dp, at step t = 1, 2, ...:

    g   = dp + weight_decay * p
    v_t = g                          if t == 1   (the momentum buffer starts at g)
    v_t = momentum * v_{t-1} + g     otherwise
    d   = g + momentum * v_t         if nesterov
    d   = v_t                        otherwise   (d = g when momentum == 0)
    p  <- p - lr * d

Parameters are updated in place, so the model sees the new values at once.
"""
import numpy as np

from ._checks import check_float, check_int, message


class SGD:
    """Stochastic gradient descent over every parameter of `model`.

    Parameters
    ----------
    model : Layer   anything with named_parameters() and named_grads()
    lr : float      learning rate; settable between steps (schedules do this)
    momentum, weight_decay : float, default 0
    nesterov : bool, default False (needs momentum > 0)

    Example
    -------
    >>> from resnet_np import Dense, SGD
    >>> layer = Dense(2, 1, rng=0)
    >>> layer.grads["W"][...] = 1.0; layer.grads["b"][...] = 1.0
    >>> before = layer.params["W"].copy()
    >>> SGD(layer, lr=0.1).step()
    >>> np.round(layer.params["W"] - before, 4)
    array([[-0.1, -0.1]], dtype=float32)
    """

    def __init__(self, model, lr, momentum=0.0, weight_decay=0.0, nesterov=False):
        if not all(callable(getattr(model, m, None)) for m in ("named_parameters", "named_grads")):
            raise TypeError(message("SGD", "a model with named_parameters() and named_grads()",
                                    type(model).__name__,
                                    "Pass the model itself (a Layer), as SGD(model, lr=0.1)."))
        self.model = model
        self.lr = check_float(lr, "lr", "SGD")
        self.momentum = check_float(momentum, "momentum", "SGD")
        self.weight_decay = check_float(weight_decay, "weight_decay", "SGD")
        self.nesterov = bool(nesterov)
        if self.nesterov and self.momentum == 0:
            raise ValueError(message("SGD", "momentum > 0 with nesterov=True", "momentum=0",
                                     "Set momentum, e.g. 0.9, or nesterov=False."))
        self.velocity = {}   # name -> momentum buffer v_t

    def step(self):
        """Update every parameter in place from its gradient."""
        for (name, p), (_, dp) in zip(self.model.named_parameters(), self.model.named_grads()):
            g = dp + self.weight_decay * p if self.weight_decay else dp
            if self.momentum:
                v = self.velocity.get(name)
                v = g.copy() if v is None else self.momentum * v + g
                self.velocity[name] = v
                g = g + self.momentum * v if self.nesterov else v
            p -= (self.lr * g).astype(p.dtype, copy=False)

    def state_dict(self):
        """Hyperparameters and momentum buffers, as plain values and arrays."""
        return {"lr": self.lr, "momentum": self.momentum, "weight_decay": self.weight_decay,
                "nesterov": self.nesterov,
                "velocity": {k: v.copy() for k, v in self.velocity.items()}}

    def load_state_dict(self, state):
        if not isinstance(state, dict) or not {"lr", "velocity"} <= set(state):
            got = f"keys {sorted(state)}" if isinstance(state, dict) else type(state).__name__
            raise ValueError(message("SGD.load_state_dict", "a dict from SGD.state_dict() "
                                     "with 'lr' and 'velocity'", got,
                                     "Pass what SGD.state_dict() returned."))
        self.lr = float(state["lr"])
        self.velocity = {k: np.array(v) for k, v in state["velocity"].items()}
        return self

    def __repr__(self):
        return (f"SGD(lr={self.lr}, momentum={self.momentum}, "
                f"weight_decay={self.weight_decay}, nesterov={self.nesterov})")


# -- learning-rate schedules ----------------------------------------------------
# A schedule is a function of training time t, in epochs (fractional within an
# epoch: t = epoch + step / steps_per_epoch, epoch counted from 0), returning the
# learning rate. The trainer sets optimizer.lr = schedule(t) before every step, so a
# schedule's position is fully determined by the step it is at: resuming needs no
# extra state.

class MultiStepLR:
    """lr(t) = base_lr * gamma ** (number of milestones <= floor(t)).

    He et al. 2015 on CIFAR: base_lr 0.1, divided by 10 at 32k and 48k iterations
    (about epochs 82 and 123 of 164).

    >>> schedule = MultiStepLR(0.1, milestones=[2, 4])
    >>> [round(schedule(t), 6) for t in (0, 1.9, 2, 3.5, 4, 10)]
    [0.1, 0.1, 0.01, 0.01, 0.001, 0.001]
    """

    def __init__(self, base_lr, milestones, gamma=0.1):
        self.base_lr = check_float(base_lr, "base_lr", "MultiStepLR")
        self.milestones = sorted(check_int(m, "milestones", "MultiStepLR", minimum=0)
                                 for m in milestones)
        self.gamma = check_float(gamma, "gamma", "MultiStepLR")

    def __call__(self, t):
        passed = sum(1 for m in self.milestones if t >= m)
        return self.base_lr * self.gamma ** passed

    def __repr__(self):
        return f"MultiStepLR({self.base_lr}, milestones={self.milestones}, gamma={self.gamma})"


class CosineLR:
    """lr(t) = min_lr + (base_lr - min_lr) * (1 + cos(pi * t / total_epochs)) / 2.

    Falls from base_lr at t = 0 to min_lr at t = total_epochs (and stays there).

    >>> schedule = CosineLR(0.1, total_epochs=10)
    >>> [round(schedule(t), 6) for t in (0, 5, 10, 12)]
    [0.1, 0.05, 0.0, 0.0]
    """

    def __init__(self, base_lr, total_epochs, min_lr=0.0):
        self.base_lr = check_float(base_lr, "base_lr", "CosineLR")
        self.total_epochs = check_float(total_epochs, "total_epochs", "CosineLR", minimum=1e-12)
        self.min_lr = check_float(min_lr, "min_lr", "CosineLR")

    def __call__(self, t):
        progress = min(max(t / self.total_epochs, 0.0), 1.0)
        return self.min_lr + (self.base_lr - self.min_lr) * (1 + float(np.cos(np.pi * progress))) / 2

    def __repr__(self):
        return f"CosineLR({self.base_lr}, total_epochs={self.total_epochs}, min_lr={self.min_lr})"


class WarmupLR:
    """lr(t) = warmup_lr for t < warmup_epochs, then after(t); `after` is any schedule.

    He et al. 2015 trained ResNet-110 at 0.01 until the training error fell below
    80% (about 400 iterations), then at 0.1: a fixed-length warm-up of that kind.
    With linear=True the rate instead rises linearly from warmup_lr to after(warmup_epochs).

    >>> schedule = WarmupLR(MultiStepLR(0.1, [3]), warmup_epochs=1, warmup_lr=0.01)
    >>> [round(schedule(t), 6) for t in (0, 0.5, 1, 3)]
    [0.01, 0.01, 0.1, 0.01]
    >>> linear = WarmupLR(CosineLR(0.1, 10), warmup_epochs=2, warmup_lr=0.0, linear=True)
    >>> [round(linear(t), 4) for t in (0, 1, 2)]
    [0.0, 0.0452, 0.0905]
    """

    def __init__(self, after, warmup_epochs, warmup_lr, linear=False):
        if not callable(after):
            raise TypeError(message("WarmupLR", "a schedule (a callable of t) as `after`",
                                    type(after).__name__))
        self.after = after
        self.warmup_epochs = check_float(warmup_epochs, "warmup_epochs", "WarmupLR")
        self.warmup_lr = check_float(warmup_lr, "warmup_lr", "WarmupLR")
        self.linear = bool(linear)

    def __call__(self, t):
        if t >= self.warmup_epochs:
            return self.after(t)
        if not self.linear:
            return self.warmup_lr
        target = self.after(self.warmup_epochs)
        return self.warmup_lr + (target - self.warmup_lr) * t / self.warmup_epochs

    def __repr__(self):
        return (f"WarmupLR({self.after!r}, warmup_epochs={self.warmup_epochs}, "
                f"warmup_lr={self.warmup_lr}, linear={self.linear})")
