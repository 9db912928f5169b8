"""Dense: the fully connected layer, Z = A @ W.T + b."""
import numpy as np

from .._checks import as_generator, check_array, check_int
from .base import Layer


def he_normal(rng, shape, fan_in, dtype=np.float32):
    """He et al. 2015 initialisation for weights before a ReLU: N(0, 2 / fan_in)."""
    return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(dtype)


class Dense(Layer):
    """Affine map of each row: Z = A @ W.T + b.

    Math
    ----
    Ng, one example as a column: z = W a + b.  Here, examples as rows: Z = A W^T + b.
    Backward: dW = dZ^T A,  db = sum over rows of dZ,  dA = dZ W.
    There is no 1/N here: the loss's backward already divided by the batch size.

    Parameters
    ----------
    in_features, out_features : int
    bias : bool, default True
    rng : None, int or np.random.Generator
        Source of the He-normal initial weights, W ~ N(0, 2 / in_features); b = 0.

    Shape
    -----
    x: (N, D_in)  out: (N, D_out)  W: (D_out, D_in)  b: (D_out,)

    Example
    -------
    >>> layer = Dense(3, 2, rng=0)
    >>> layer.params["W"].shape
    (2, 3)
    >>> x = np.ones((4, 3), dtype=np.float32)
    >>> layer(x).shape
    (4, 2)
    >>> layer.backward(np.ones((4, 2), dtype=np.float32)).shape
    (4, 3)
    """

    def __init__(self, in_features, out_features, bias=True, rng=None):
        super().__init__()
        self.in_features = check_int(in_features, "in_features", "Dense")
        self.out_features = check_int(out_features, "out_features", "Dense")
        self.bias = bool(bias)
        rng = as_generator(rng)
        self.add_param("W", he_normal(rng, (out_features, in_features), in_features))
        if self.bias:
            self.add_param("b", np.zeros(out_features, dtype=np.float32))

    def _where(self):
        return f"Dense(in_features={self.in_features}).forward"

    @staticmethod
    def _shape_fix(x):
        """The hint for an input of the wrong shape (built only when failing)."""
        if x.ndim > 2:
            return "Did you forget Flatten() before Dense?"
        return "Check in_features against the previous layer's output."

    def forward(self, x):
        check_array(x, self._where, 2, f"(N, {self.in_features})", {1: self.in_features},
                    self._shape_fix)
        self.cache = {"x": x}
        out = x @ self.params["W"].T                      # (N, D_out)
        if self.bias:
            out += self.params["b"]
        return out

    def backward(self, dout):
        x = self._cached("x")                             # (N, D_in)
        self.grads["W"] = dout.T @ x                      # (D_out, D_in)
        if self.bias:
            self.grads["b"] = dout.sum(axis=0)            # (D_out,)
        return dout @ self.params["W"]                    # (N, D_in)

    def extra_repr(self):
        return f"{self.in_features}, {self.out_features}" + ("" if self.bias else ", bias=False")
