"""Look inside a network: step-through tables, gradient norms, the identity-path audit.

    step_through(model, x)          every layer's output and every block's a^[l], z^[l+1], ...
    gradient_norms(model, x, y, L)  ||dL/da|| at the input of each unit, and ||dL/dW||
    identity_path_report(model)     does a^[l] reach the next block unchanged? any linear path?
    linearity_probe(block, x)       R^2 of the best affine fit of a block, frozen ReLU units

The tools read a model through the Layer interface only: they temporarily wrap the
`forward` / `backward` of its sub-layers (an instance attribute, removed afterwards)
to record what each one received and returned. Nothing in the model changes.
Homes: walk.py (units, recording), step.py (tables, step_through, gradient_norms),
paths.py (identity_path_report, linearity_probe).
"""
from .paths import IdentityPathReport, identity_path_report, linearity_probe
from .step import StepThrough, gradient_norms, gradients_table, intermediates_table, step_through
from .walk import units

__all__ = ["step_through", "StepThrough", "gradient_norms", "identity_path_report",
           "IdentityPathReport", "linearity_probe", "units", "intermediates_table",
           "gradients_table"]
