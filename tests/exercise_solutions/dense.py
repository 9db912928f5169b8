"""Exercise dense: the fully connected layer, out = x @ W.T + b.

Fill in forward and backward between the markers, then run `python dense.py` to
check your code (or: python -m resnet_np exercise check dense dense.py).

Math
----
Ng writes one example as a column: z = W a + b. Here the N examples are the rows
of x, so out = x @ W.T + b, with W of shape (out_features, in_features).
Backward, given dout = dL/dout:
    dW = dout^T x                  the shape of W
    db = sum of dout over the batch (the rows)
    dx = dout W
No 1/N here: the loss already divided by the batch size.
Set the gradients (=), do not add to them (+=).

Shape
-----
x: (N, in_features)   out, dout: (N, out_features)
W, dW: (out_features, in_features)   b, db: (out_features,)
"""
import numpy as np


class Dense:
    """out = x @ W.T + b with params "W" (out_features, in_features) and "b" (out_features,)."""

    def __init__(self, in_features, out_features, rng=None):
        rng = np.random.default_rng(rng)
        W = rng.standard_normal((out_features, in_features)) * np.sqrt(2.0 / in_features)
        self.params = {"W": W, "b": np.zeros(out_features)}
        self.grads = {"W": np.zeros_like(W), "b": np.zeros(out_features)}
        self.cache = {}

    def forward(self, x):
        """x (N, in_features) -> out (N, out_features).

        Read W and b from self.params every time (the checker replaces them) and keep
        what backward needs in self.cache.
        """
        # ---- your code here ----
        self.cache = {"x": x}
        return x @ self.params["W"].T + self.params["b"]
        # ---- end of your code ----

    def backward(self, dout):
        """dout (N, out_features) -> dx (N, in_features); sets self.grads["W"] and ["b"]."""
        # ---- your code here ----
        x = self.cache["x"]
        self.grads["W"] = dout.T @ x
        self.grads["b"] = dout.sum(axis=0)
        return dout @ self.params["W"]
        # ---- end of your code ----


if __name__ == "__main__":
    import sys

    from resnet_np.exercises import check

    diagnosis = check("dense", Dense)
    print(diagnosis)
    sys.exit(0 if diagnosis.passed else 1)
