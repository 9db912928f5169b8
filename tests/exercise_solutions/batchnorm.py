"""Exercise batchnorm: batch normalisation of features, training mode.

Fill in forward and backward between the markers, then run `python batchnorm.py`
to check your code.

Math
----
For each feature (column) over the N examples of the batch, eps = 1e-5:
    mean = sum_n x_n / N        var = sum_n (x_n - mean)^2 / N     (biased: divide by N)
    xhat = (x - mean) / sqrt(var + eps)
    y    = gamma * xhat + beta
Backward, given dy (N, D); mean and var depend on every example, so dx has three terms:
    dbeta  = sum_n dy            dgamma = sum_n dy * xhat
    dx = gamma / sqrt(var + eps) * (dy - dbeta / N - xhat * dgamma / N)
            direct term            mean term       variance term

Shape
-----
x, y, dy, dx: (N, D)   gamma, beta and their gradients: (D,)
"""
import numpy as np


class BatchNorm1d:
    """y = gamma * (x - mean) / sqrt(var + eps) + beta, with batch statistics (training)."""

    def __init__(self, num_features, eps=1e-5):
        self.eps = eps
        self.params = {"gamma": np.ones(num_features), "beta": np.zeros(num_features)}
        self.grads = {"gamma": np.zeros(num_features), "beta": np.zeros(num_features)}
        self.cache = {}

    def forward(self, x):
        """x (N, D) -> y (N, D). Read gamma and beta from self.params every time."""
        # ---- your code here ----
        mean = x.mean(axis=0)
        var = x.var(axis=0)
        xhat = (x - mean) / np.sqrt(var + self.eps)
        self.cache = {"xhat": xhat, "var": var}
        return self.params["gamma"] * xhat + self.params["beta"]
        # ---- end of your code ----

    def backward(self, dout):
        """dout = dL/dy (N, D) -> dx (N, D); sets self.grads["gamma"] and ["beta"]."""
        # ---- your code here ----
        xhat, var = self.cache["xhat"], self.cache["var"]
        N = dout.shape[0]
        dbeta = dout.sum(axis=0)
        dgamma = (dout * xhat).sum(axis=0)
        self.grads["beta"], self.grads["gamma"] = dbeta, dgamma
        k = self.params["gamma"] / np.sqrt(var + self.eps)
        return k * (dout - dbeta / N - xhat * dgamma / N)
        # ---- end of your code ----


if __name__ == "__main__":
    import sys

    from resnet_np.exercises import check

    diagnosis = check("batchnorm", BatchNorm1d)
    print(diagnosis)
    sys.exit(0 if diagnosis.passed else 1)
