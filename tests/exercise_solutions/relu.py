"""Exercise relu: the rectified linear unit, a = max(z, 0).

Fill in forward and backward between the markers, then run `python relu.py` to
check your code (or: python -m resnet_np exercise check relu relu.py).

Math
----
forward:   a = max(z, 0), elementwise
backward:  dz = da * [z > 0]   (the derivative is 1 where z > 0 and 0 elsewhere;
           the checker never puts an input at the kink z = 0)
The mask comes from the forward input z: keep it in self.cache.
Do not change z or da in place: return new arrays.

Shape
-----
z: any shape   a, da, dz: the shape of z
"""
import numpy as np


class ReLU:
    """a = max(z, 0). No parameters: params and grads stay empty."""

    def __init__(self):
        self.params, self.grads, self.cache = {}, {}, {}

    def forward(self, x):
        """x (any shape) -> max(x, 0). Keep what backward needs in self.cache."""
        # ---- your code here ----
        mask = x > 0
        self.cache = {"mask": mask}
        return x * mask
        # ---- end of your code ----

    def backward(self, dout):
        """dout = dL/da -> dx = dL/dz, the shape of x."""
        # ---- your code here ----
        return dout * self.cache["mask"]
        # ---- end of your code ----


if __name__ == "__main__":
    import sys

    from resnet_np.exercises import check

    diagnosis = check("relu", ReLU)
    print(diagnosis)
    sys.exit(0 if diagnosis.passed else 1)
