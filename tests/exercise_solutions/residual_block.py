"""Exercise residual_block: Andrew Ng's residual block, two dense layers and a shortcut.

Fill in forward and backward between the markers, then run `python residual_block.py`
to check your code.

Math
----
Examples are rows (Ng's columns transposed: z = W a + b becomes z = a W^T + b):
    z^[l+1] = a^[l] W1^T + b1          a^[l+1] = relu(z^[l+1])
    z^[l+2] = a^[l+1] W2^T + b2        a^[l+2] = relu(z^[l+2] + a^[l])   (identity shortcut)
Backward, given da^[l+2]:
    dz^[l+2] = da^[l+2] * [z^[l+2] + a^[l] > 0]     (the ReLU after the addition)
    dW2 = dz^[l+2]^T a^[l+1],   db2 = sum over rows of dz^[l+2]
    dz^[l+1] = (dz^[l+2] W2) * [z^[l+1] > 0]
    dW1 = dz^[l+1]^T a^[l],     db1 = sum over rows of dz^[l+1]
a^[l] reaches the output twice, so its gradient has two parts:
    da_l_shortcut = dz^[l+2]             (along the identity shortcut)
    da_l_branch   = dz^[l+1] W1          (through the two layers)
    da_l = da_l_shortcut + da_l_branch

Shape
-----
a_l and every z, a: (N, features)   W1, W2: (features, features)   b1, b2: (features,)
"""
import numpy as np


class ResidualBlock:
    """a^[l+2] = relu(a^[l+1] W2^T + b2 + a^[l]), a^[l+1] = relu(a^[l] W1^T + b1)."""

    def __init__(self, features, rng=None):
        rng = np.random.default_rng(rng)
        scale = np.sqrt(2.0 / features)
        self.params = {"W1": rng.standard_normal((features, features)) * scale,
                       "b1": np.zeros(features),
                       "W2": rng.standard_normal((features, features)) * scale,
                       "b2": np.zeros(features)}
        self.grads = {key: np.zeros_like(value) for key, value in self.params.items()}
        self.cache = {}

    def forward(self, a_l):
        """a_l (N, features) -> a_l2 (N, features). Read the weights from self.params."""
        # ---- your code here ----
        z_l1 = a_l @ self.params["W1"].T + self.params["b1"]
        a_l1 = np.maximum(z_l1, 0)
        z_l2 = a_l1 @ self.params["W2"].T + self.params["b2"]
        a_l2 = np.maximum(z_l2 + a_l, 0)
        self.cache = {"a_l": a_l, "z_l1": z_l1, "a_l1": a_l1, "z_l2": z_l2}
        return a_l2
        # ---- end of your code ----

    def backward(self, da_l2):
        """da_l2 -> da_l; sets self.grads and self.da_l_shortcut, self.da_l_branch."""
        # ---- your code here ----
        a_l, z_l1, a_l1, z_l2 = (self.cache[k] for k in ("a_l", "z_l1", "a_l1", "z_l2"))
        dz_l2 = da_l2 * (z_l2 + a_l > 0)
        self.grads["W2"] = dz_l2.T @ a_l1
        self.grads["b2"] = dz_l2.sum(axis=0)
        dz_l1 = (dz_l2 @ self.params["W2"]) * (z_l1 > 0)
        self.grads["W1"] = dz_l1.T @ a_l
        self.grads["b1"] = dz_l1.sum(axis=0)
        self.da_l_shortcut = dz_l2
        self.da_l_branch = dz_l1 @ self.params["W1"]
        return self.da_l_shortcut + self.da_l_branch
        # ---- end of your code ----


if __name__ == "__main__":
    import sys

    from resnet_np.exercises import check

    diagnosis = check("residual_block", ResidualBlock)
    print(diagnosis)
    sys.exit(0 if diagnosis.passed else 1)
