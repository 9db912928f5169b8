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

from ._checks import check_float, message


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
        self.lr = float(state["lr"])
        self.velocity = {k: np.array(v) for k, v in state["velocity"].items()}
        return self

    def __repr__(self):
        return (f"SGD(lr={self.lr}, momentum={self.momentum}, "
                f"weight_decay={self.weight_decay}, nesterov={self.nesterov})")
