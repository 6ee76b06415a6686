"""kd-interp: mechanistic interpretability of knowledge distillation."""

__version__ = "0.1.0"
