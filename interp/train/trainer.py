"""A small, fast CPU training loop for sequence classifiers, with debiasing and KD losses, and a cache.

The names live in one module per job; this module gathers them (``from interp.train.trainer import X``):

- :mod:`interp.train.config`: :class:`TrainConfig` (every knob: loss, optimiser, schedule, KD
  temperature/alpha, focal gamma, seed), the loss names, :func:`seed_everything`.
- :mod:`interp.train.batching`: :func:`encode` (tokenise once, unpadded), :func:`iter_batches` (dynamic
  padding), :func:`predict_logits` (eval-mode logits in the examples' order).
- :mod:`interp.train.loop`: :func:`train_model` (AdamW + warmup/decay + clipping; losses ``erm``, ``poe``,
  ``reweight``, ``focal``, ``conf_reg``, ``kd``, ``group_reweight``, ``group_dro``; teacher logits computed once).
- :mod:`interp.train.checkpoints`: :func:`train_and_save` (atomic save, reused when the config matches),
  :func:`load_trained`, :func:`is_complete`.
- :mod:`interp.train.iterative`: :func:`iterative_kd` (born-again multi-round KD).
"""
from __future__ import annotations

from interp.train.batching import Encoded, encode, iter_batches, predict_logits
from interp.train.checkpoints import CONFIG_FILE, is_complete, load_trained, train_and_save
from interp.train.config import LOSSES, NEEDS_BIAS, NEEDS_TEACHER, TrainConfig, seed_everything
from interp.train.iterative import iterative_kd
from interp.train.loop import train_model

__all__ = [
    "LOSSES",
    "NEEDS_BIAS",
    "NEEDS_TEACHER",
    "TrainConfig",
    "Encoded",
    "seed_everything",
    "encode",
    "iter_batches",
    "predict_logits",
    "train_model",
    "train_and_save",
    "load_trained",
    "is_complete",
    "iterative_kd",
    "CONFIG_FILE",
]
