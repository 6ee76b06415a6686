"""Training hyper-parameters (:class:`TrainConfig`), the loss names, and seeding.

Why its own module: the loop, the checkpoint cache (the config is part of the cache key) and the zoo all
read the config; none of them needs the others to describe a run.
"""
from __future__ import annotations

import random
from dataclasses import asdict, dataclass

import numpy as np
import torch

LOSSES = ("erm", "poe", "reweight", "conf_reg", "focal", "kd", "group_reweight", "group_dro")
NEEDS_BIAS = ("poe", "reweight", "conf_reg", "focal")
NEEDS_TEACHER = ("conf_reg", "kd")
NEEDS_WEIGHTS = ("group_reweight",)
NEEDS_GROUPS = ("group_dro",)  # every training example carries a "group" (e.g. ImageSet.examples())


@dataclass
class TrainConfig:
    """Training hyper-parameters. ``alpha`` weights the KD (KL) term: ``alpha=1`` is pure distillation."""

    loss: str = "erm"
    epochs: float = 2.0
    batch_size: int = 32
    lr: float = 5e-5
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    max_grad_norm: float = 1.0
    max_length: int = 48
    seed: int = 0
    temperature: float = 1.0
    alpha: float = 0.5
    gamma: float = 2.0
    reweight_normalize: str = "batch"
    eval_batch_size: int = 128
    freeze_word_embeddings: bool = False  # ~25% faster steps on CPU for MiniLM; the matrix stays the base model's
    eval_every: int = 0         # steps between dev evaluations (0: none); the curve goes into the history
    select_best: bool = False   # keep the checkpoint of best dev accuracy (needs dev data and eval_every)
    bias_anneal: float = 1.0    # PoE only: the bias log-probabilities are scaled from 1 down to this value
    dro_eta: float = 0.01       # group DRO only: step size of the exponentiated-gradient group weights

    def __post_init__(self):
        if self.loss not in LOSSES:
            raise ValueError(f"unknown loss {self.loss!r}; expected one of {LOSSES}")
        if self.epochs <= 0 or self.batch_size < 1 or self.lr <= 0:
            raise ValueError("epochs, batch_size and lr must be positive")
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {self.alpha}")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if self.select_best and self.eval_every <= 0:
            raise ValueError("select_best needs eval_every > 0 (and dev data) to know which checkpoint is best")
        if self.dro_eta < 0:
            raise ValueError(f"dro_eta must be >= 0, got {self.dro_eta}")
        if not 0.0 <= self.bias_anneal <= 1.0:
            raise ValueError(f"bias_anneal must be in [0, 1], got {self.bias_anneal}")

    def to_dict(self) -> dict:
        """The config as recorded with a model and compared when a cached one is reused: `dro_eta` only
        for group DRO, so the records of every other loss (and the caches built before it existed) match."""
        d = asdict(self)
        if self.loss not in NEEDS_GROUPS:
            del d["dro_eta"]
        return d


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU) RNGs."""
    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.manual_seed(seed)
