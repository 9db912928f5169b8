"""Step-through tables: every named intermediate and gradient of a block, in order.

    >>> import resnet_np as rn
    >>> block = rn.DenseResidualBlock(4, skip=2, rng=0)
    >>> x = np.random.default_rng(0).standard_normal((8, 4)).astype(np.float32)
    >>> out = block(x); dx = block.backward(np.ones_like(out))
    >>> print(intermediates_table(block))       # doctest: +ELLIPSIS
    key       label                            shape       mean      std  zeros
    a_l       a^[l]                            (8, 4)  ...
    a_l2      a^[l+2] = g(z^[l+2] + shortcut)  (8, 4)  ...
"""
import numpy as np


def _table(pairs, labels):
    """Aligned rows: key, label, shape, mean, std and fraction of exact zeros."""
    rows = [(key, labels.get(key, key), str(np.shape(v)), np.asarray(v)) for key, v in pairs.items()]
    wk = max([3] + [len(r[0]) for r in rows])
    wl = max([5] + [len(r[1]) for r in rows])
    ws = max([5] + [len(r[2]) for r in rows])
    lines = [f"{'key':<{wk}}  {'label':<{wl}}  {'shape':<{ws}}  {'mean':>8} {'std':>8} {'zeros':>6}"]
    for key, label, shape, v in rows:
        lines.append(f"{key:<{wk}}  {label:<{wl}}  {shape:<{ws}}  {float(v.mean()):>8.4f} "
                     f"{float(v.std()):>8.4f} {float(np.mean(v == 0)):>6.1%}")
    return "\n".join(lines)


def intermediates_table(block):
    """One line per named intermediate of the last forward: label, shape, mean, std, zeros."""
    return _table(block.intermediates(), block.LABELS)


def gradients_table(block):
    """One line per named gradient of the last backward, output first, split at a^[l] last."""
    return _table(block.gradients(), block.LABELS)
