"""Exercise softmax_cross_entropy: the classification loss, with its gradient.

Fill in forward and backward between the markers, then run
`python softmax_cross_entropy.py` to check your code.

Math
----
For logits z (N, C) and integer labels y (N,):
    L = -(1/N) sum_n log softmax(z_n)[y_n],   softmax(z)_c = exp(z_c) / sum_k exp(z_k)
Stable form: with m = max_k z_k, log softmax(z)_c = (z_c - m) - log sum_k exp(z_k - m).
Without subtracting m, exp(1000) overflows to inf and the loss becomes NaN.
Backward:
    dL/dz = (softmax(z) - onehot(y)) / N
The 1/N is here, in the loss, and nowhere else.

Shape
-----
logits: (N, C)   y: (N,) integers in [0, C)   loss: a Python float   dlogits: (N, C)
"""
import numpy as np


class SoftmaxCrossEntropy:
    """L = mean over the batch of -log softmax(logits)[y]."""

    def __init__(self):
        self.cache = {}

    def forward(self, logits, y):
        """logits (N, C), y (N,) -> the mean loss, a float. Keep what backward needs."""
        # ---- your code here ----
        N = logits.shape[0]
        shifted = logits - logits.max(axis=1, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        self.cache = {"log_probs": log_probs, "y": y}
        return float(-log_probs[np.arange(N), y].mean())
        # ---- end of your code ----

    def backward(self):
        """-> dlogits (N, C) = dL/dlogits of the last forward."""
        # ---- your code here ----
        log_probs, y = self.cache["log_probs"], self.cache["y"]
        N = len(y)
        dlogits = np.exp(log_probs)
        dlogits[np.arange(N), y] -= 1
        return dlogits / N
        # ---- end of your code ----


if __name__ == "__main__":
    import sys

    from resnet_np.exercises import check

    diagnosis = check("softmax_cross_entropy", SoftmaxCrossEntropy)
    print(diagnosis)
    sys.exit(0 if diagnosis.passed else 1)
