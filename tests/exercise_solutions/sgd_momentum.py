"""Exercise sgd_momentum: one step of SGD with momentum and weight decay, as PyTorch does it.

Fill in sgd_step between the markers, then run `python sgd_momentum.py` to check it.

Math
----
torch.optim.SGD (dampening 0, no Nesterov), for one parameter array:
    g        = grad + weight_decay * param       (weight decay goes into the gradient)
    velocity = momentum * velocity + g           (the momentum buffer)
    param    = param - lr * velocity
Other textbooks write other rules (CS231n: v = m v - lr g, p = p + v; some add weight
decay after the momentum, some damp the gradient by (1 - m)); the checker wants
PyTorch's, so that your optimizer and torch's take the same steps.
You may update param and velocity in place, but never grad.

Shape
-----
param, grad, velocity: any shape, all the same
"""
import numpy as np


def sgd_step(param, grad, velocity, lr, momentum, weight_decay):
    """-> (new param, new velocity), both of param's shape."""
    # ---- your code here ----
    g = grad + weight_decay * param
    velocity = momentum * velocity + g
    return param - lr * velocity, velocity
    # ---- end of your code ----


if __name__ == "__main__":
    import sys

    from resnet_np.exercises import check

    diagnosis = check("sgd_momentum", sgd_step)
    print(diagnosis)
    sys.exit(0 if diagnosis.passed else 1)
