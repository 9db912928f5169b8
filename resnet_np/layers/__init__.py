"""Layers with hand-written forward and backward passes."""
from .activations import Identity, LeakyReLU, ReLU, Sigmoid, Tanh, get_activation
from .base import Layer, Sequential
from .dense import Dense

__all__ = ["Layer", "Sequential", "Dense", "ReLU", "LeakyReLU", "Sigmoid", "Tanh",
           "Identity", "get_activation"]
