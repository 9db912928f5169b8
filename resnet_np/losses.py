"""Losses: SoftmaxCrossEntropy (per example or per pixel) and MSELoss.

A loss is the one place 1/N appears: forward averages over the batch, so backward
returns dlogits already divided by N, and no layer divides again.

    loss = criterion.forward(logits, y)    # a Python float
    dlogits = criterion.backward()         # same shape as logits
"""
import numpy as np

from ._checks import check_array, check_labels, message


class SoftmaxCrossEntropy:
    """L = -(1/N) sum_i log softmax(z_i)[y_i], computed with log-sum-exp.

    Math
    ----
    log softmax(z)_c = z_c - m - log sum_k exp(z_k - m), with m = max_k z_k, so
    logits of +-1e4 neither overflow nor give log(0).
    Backward: dL/dz = (softmax(z) - onehot(y)) / N.

    Per-pixel labels (segmentation), as torch.nn.CrossEntropyLoss: logits
    (N, C, d1, d2, ...) with labels (N, d1, d2, ...) are one classification per
    position; the loss is the mean over all M = N * d1 * d2 * ... positions and
    dL/dz = (softmax over C - onehot) / M at every position.

    Shape
    -----
    logits: (N, C) float   y: (N,) integers in [0, C)   loss: float
    or logits: (N, C, H, W)   y: (N, H, W)   dlogits: (N, C, H, W)

    Example
    -------
    >>> loss = SoftmaxCrossEntropy()
    >>> round(loss(np.zeros((2, 4)), np.array([0, 3])), 4)   # log(4)
    1.3863
    >>> loss.backward()
    array([[-0.375,  0.125,  0.125,  0.125],
           [ 0.125,  0.125,  0.125, -0.375]])

    Two classes at each of 2 x 3 pixels of one image (background 0, object 1):

    >>> masks = np.array([[[0, 1, 1], [0, 0, 1]]])                     # (N, H, W)
    >>> round(loss(np.zeros((1, 2, 2, 3)), masks), 4)                  # log(2) at every pixel
    0.6931
    >>> loss.backward().shape
    (1, 2, 2, 3)
    """

    def __init__(self):
        self.cache = {}

    def forward(self, logits, y):
        where = "SoftmaxCrossEntropy.forward"
        self.cache, ndim = {}, np.ndim(logits)
        check_array(logits, where, ndim if ndim > 2 else 2,
                    "(N, C, d1, ...) logits" if ndim > 2 else "(N, C) logits")
        if ndim > 2:
            logits, y = self._per_position(logits, y, where)
        N, C = logits.shape
        y = check_labels(y, where, N, C)
        shifted = logits - logits.max(axis=1, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        self.cache.update(log_probs=log_probs, y=y)
        return float(-log_probs[np.arange(N), y].mean())

    def _per_position(self, logits, y, where):
        """(N, C, d1, ...) logits, (N, d1, ...) labels -> (M, C) rows and (M,) labels."""
        N, C, *spatial = logits.shape
        y = np.asarray(y)
        if y.shape != (N, *spatial):
            raise ValueError(message(where, f"labels of shape {(N, *spatial)}, one per position "
                                     f"of logits {logits.shape}", f"shape {y.shape}",
                                     "Labels hold class indices, not one-hot channels."))
        self.cache["shape"] = logits.shape
        rows = np.moveaxis(logits, 1, -1).reshape(-1, C)      # (N*d1*..., C), one row a position
        return rows, y.reshape(-1)

    def backward(self, dout=1.0):
        """dL/dlogits = (softmax - onehot) / N, times the upstream scalar dout."""
        if "log_probs" not in self.cache:
            raise RuntimeError(message("SoftmaxCrossEntropy.backward", "forward to have run first",
                                       "an empty cache", "Call forward(logits, y) first."))
        log_probs, y = self.cache["log_probs"], self.cache["y"]
        N = len(y)
        dlogits = np.exp(log_probs)                       # softmax, (N, C)
        dlogits[np.arange(N), y] -= 1
        dlogits *= dout / N
        if "shape" in self.cache:                         # per position: back to (N, C, d1, ...)
            N_img, C, *spatial = self.cache["shape"]
            dlogits = np.moveaxis(dlogits.reshape(N_img, *spatial, C), -1, 1)
            dlogits = np.ascontiguousarray(dlogits)
        return dlogits

    __call__ = forward

    def __repr__(self):
        return "SoftmaxCrossEntropy()"


class MSELoss:
    """L = mean over every element of (prediction - target)^2, as torch.nn.MSELoss.

    Backward: dL/dprediction = 2 (prediction - target) / size.

    >>> mse = MSELoss()
    >>> mse(np.array([[1.0, 2.0]]), np.array([[0.0, 0.0]]))
    2.5
    >>> mse.backward()
    array([[1., 2.]])
    """

    def __init__(self):
        self.cache = {}

    def forward(self, prediction, target):
        where = "MSELoss.forward"
        check_array(prediction, where, np.ndim(prediction), "(N, ...)")
        target = np.asarray(target)
        if target.shape != prediction.shape:
            raise ValueError(message(where, f"target of the prediction's shape {prediction.shape}",
                                     f"shape {target.shape}"))
        diff = prediction - target
        self.cache = {"diff": diff}
        return float(np.mean(diff ** 2))

    def backward(self, dout=1.0):
        if "diff" not in self.cache:
            raise RuntimeError(message("MSELoss.backward", "forward to have run first",
                                       "an empty cache", "Call forward(prediction, target) first."))
        diff = self.cache["diff"]
        return diff * (2.0 * dout / diff.size)

    __call__ = forward

    def __repr__(self):
        return "MSELoss()"
