"""Figures with matplotlib, imported only when a figure is asked for.

The rest of the library never imports matplotlib (nor this package), so
`import resnet_np` stays fast and works where matplotlib cannot open a window.

    figures.py       training curves, gradient norms, parameter bars, masks
    block_trace.py   plot_block_trace: one residual block as its diagram, values on it
    seeds.py         plot_seed_curves, plot_seed_points: means with intervals over seeds
"""
from .block_trace import plot_block_trace
from .figures import (plot_block_pass, plot_curve_panels, plot_error_vs_depth,
                      plot_gradient_norms, plot_grouped_bars, plot_history, plot_segmentation,
                      plot_shortcut_params, plot_step_losses)
from .seeds import plot_seed_curves, plot_seed_points

__all__ = ["plot_block_trace", "plot_block_pass", "plot_curve_panels", "plot_error_vs_depth",
           "plot_gradient_norms", "plot_grouped_bars", "plot_history", "plot_segmentation",
           "plot_shortcut_params", "plot_step_losses", "plot_seed_curves", "plot_seed_points"]
