"""Reference solutions the library does not already have under the student's interface.

The other exercises use the library's own layers (Dense, ReLU, Conv2d, ...) as the
reference. Here: Ng's two-layer dense residual block with the parameter names of the
exercise (W1, b1, W2, b2), torch.optim.SGD's update for one array, and col2im with a
chosen placement stride (to recognise a col2im that ignores its stride).
"""
import numpy as np

from ..layers import Dense, ReLU


class ResidualBlock:
    """a^[l+2] = relu(z^[l+2] + a^[l]): Ng's block, two dense layers and an identity shortcut.

    Math
    ----
    z^[l+1] = a^[l] W1^T + b1,  a^[l+1] = relu(z^[l+1]),  z^[l+2] = a^[l+1] W2^T + b2,
    a^[l+2] = relu(z^[l+2] + a^[l]).
    Backward: dz^[l+2] = da^[l+2] * [z^[l+2] + a^[l] > 0], which flows both ways:
    da_l_shortcut = dz^[l+2] (identity), da_l_branch = (dz^[l+2] W2 * [z^[l+1] > 0]) W1,
    da_l = da_l_shortcut + da_l_branch.

    Shape
    -----
    a_l: (N, features)   W1, W2: (features, features)   b1, b2: (features,)
    """

    def __init__(self, features, rng=None):
        rng = np.random.default_rng(rng)
        self.fc1, self.relu1 = Dense(features, features, rng=rng), ReLU()
        self.fc2, self.relu2 = Dense(features, features, rng=rng), ReLU()
        self.params = {"W1": self.fc1.params["W"], "b1": self.fc1.params["b"],
                       "W2": self.fc2.params["W"], "b2": self.fc2.params["b"]}
        self.grads = {}

    def forward(self, a_l):
        for layer, i in ((self.fc1, "1"), (self.fc2, "2")):   # params may have been replaced
            layer.params["W"], layer.params["b"] = self.params["W" + i], self.params["b" + i]
        a_l1 = self.relu1(self.fc1(a_l))
        return self.relu2(self.fc2(a_l1) + a_l)

    def backward(self, da_l2):
        dz_l2 = self.relu2.backward(da_l2)
        self.da_l_shortcut = dz_l2
        self.da_l_branch = self.fc1.backward(self.relu1.backward(self.fc2.backward(dz_l2)))
        self.grads = {"W1": self.fc1.grads["W"], "b1": self.fc1.grads["b"],
                      "W2": self.fc2.grads["W"], "b2": self.fc2.grads["b"]}
        return self.da_l_shortcut + self.da_l_branch


def sgd_step(param, grad, velocity, lr, momentum, weight_decay):
    """One step of torch.optim.SGD (dampening 0, no Nesterov) for one array.

    g = grad + weight_decay * param;  v = momentum * velocity + g;  param - lr * v.
    Returns new arrays (param, v); the inputs are not changed.
    """
    g = grad + weight_decay * param
    v = momentum * velocity + g
    return param - lr * v, v


def col2im_placed(cols, x_shape, kernel_size, stride, padding, place_stride):
    """col2im whose window (h, w) starts at (h * place_stride, w * place_stride).

    With place_stride == stride this is col2im; with 1 it is a col2im that ignores
    its stride. The column layout (and so H_out, W_out) always follows `stride`.
    """
    N, C, H, W = x_shape
    k, s, p, t = kernel_size, stride, padding, place_stride
    H_out, W_out = (H + 2 * p - k) // s + 1, (W + 2 * p - k) // s + 1
    cols = cols.reshape(C, k, k, N, H_out, W_out)
    dxp = np.zeros((N, C, H + 2 * p, W + 2 * p))
    for i in range(k):
        for j in range(k):
            dxp[:, :, i:i + t * H_out:t, j:j + t * W_out:t] += cols[:, i, j].transpose(1, 0, 2, 3)
    return dxp[:, :, p:p + H, p:p + W]
