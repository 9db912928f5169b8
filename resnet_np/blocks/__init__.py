"""Residual blocks that keep every intermediate by name.

Andrew Ng's two-layer residual block, one example as a column:

    z^[l+1] = W^[l+1] a^[l] + b^[l+1]          a^[l+1] = g(z^[l+1])
    z^[l+2] = W^[l+2] a^[l+1] + b^[l+2]        a^[l+2] = g(z^[l+2] + a^[l])

DenseResidualBlock, BasicBlock and PreActBlock write that recipe out in their own
`forward` and `backward`, one line per quantity, named as in the notation. After
`forward`, `block.intermediates()` returns the arrays under the keys a_l, z_l1, a_l1,
z_l2, shortcut, a_l2 (`block.LABELS` maps each key to the notation). After
`backward`, `block.gradients()` returns da_l2, dz_l2, ... and the gradient reaching
a^[l] split into the part that came along the shortcut and the part that came through
the branch: da_l = da_l_shortcut + da_l_branch.

Pre-activation blocks (He et al. 2016) move g and BN in front of each weight
layer and put nothing after the addition:

    h^[l]   = g(BN(a^[l]))          z^[l+1] = conv1(h^[l])
    h^[l+1] = g(BN(z^[l+1]))        z^[l+2] = conv2(h^[l+1])
    a^[l+2] = z^[l+2] + shortcut    (no g: the identity path stays linear)

Their keys are a_l, h_l, z_l1, h_l1, z_l2, shortcut, a_l2.

Where to read what:
    dense.py   DenseResidualBlock: Ng's block, forward and backward written out
    conv.py    BasicBlock and PreActBlock written out; Bottleneck (three layers)
    base.py    ResidualBlock: the named records, and the same recipe as a loop over k
               for blocks of another depth (Bottleneck, skip 1 and 3); tests assert that
               the loop and the written-out passes give identical numbers
"""
from .base import SKIPS, VARIANTS, ResidualBlock
from .conv import BasicBlock, Bottleneck, PreActBlock
from .dense import DenseResidualBlock

__all__ = ["ResidualBlock", "DenseResidualBlock", "BasicBlock", "PreActBlock", "Bottleneck",
           "SKIPS", "VARIANTS"]
