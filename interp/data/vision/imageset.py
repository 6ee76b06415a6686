"""ImageSet: generated images with their class and spurious-attribute labels, and how to re-render them.

Every generator in this package returns an `ImageSet`. Its randomness comes from numpy's SeedSequence
streams keyed by (seed, split, stream), never from Python's `hash()`, so a set is identical in every
process. Labels, attributes and nuisances (pose, noise) are drawn from separate streams with shapes that
depend only on `n`: re-rendering with other attributes (`counterfactual`) changes the attribute and
nothing else, which is what counterfactual (individual) fairness needs.

Strength of the spurious correlation: `strength = P(attribute == aligned(label))` with
`aligned(label) = label % n_attributes`; otherwise the attribute is uniform over the other values.
`strength = 1 / n_attributes` (or None) makes the attribute independent of the label; 0 reverses it.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

SPLITS = {"train": 0, "val": 1, "test": 2}
# Streams of one (seed, split): one job each, so that overriding one leaves the others untouched.
STREAM_LABELS, STREAM_ATTRS, STREAM_POSE, STREAM_NOISE, STREAM_OTHER = range(5)
GENERATORS: dict[str, Callable[..., ImageSet]] = {}


def register(name: str) -> Callable:
    """Register a generator under `name`, so that an ImageSet can re-render itself from its spec."""
    def wrap(fn: Callable) -> Callable:
        GENERATORS[name] = fn
        return fn
    return wrap


def rng(seed: int, split: str, stream: int) -> np.random.Generator:
    """The numpy Generator of one stream: deterministic across processes and platforms."""
    if split not in SPLITS:
        raise ValueError(f"Unknown split {split!r}; choose one of {tuple(SPLITS)}.")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}.")
    return np.random.default_rng(np.random.SeedSequence([int(seed), SPLITS[split], stream]))


def balanced_labels(n: int, n_classes: int, gen: np.random.Generator) -> np.ndarray:
    """[n] class indices, each class n // n_classes or one more times, in random order."""
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}.")
    return gen.permutation(np.arange(n) % n_classes)


def check_strength(strength: float | None, n_attributes: int) -> float:
    """The strength as a float (None -> independent: 1 / n_attributes), or a clear error."""
    if strength is None:
        return 1.0 / n_attributes
    if not 0.0 <= float(strength) <= 1.0:
        raise ValueError(f"strength is P(attribute == aligned(label)) and must be in [0, 1], got {strength}; "
                         f"{1 / n_attributes:.3g} makes the attribute independent of the label, 0 reverses it.")
    return float(strength)


def spurious_attributes(labels: np.ndarray, n_attributes: int, strength: float | None,
                        gen: np.random.Generator) -> np.ndarray:
    """[n] attributes: aligned(label) with probability `strength`, else uniform over the other values.

    Two draws of size n whatever the strength, so the stream's use does not depend on it."""
    p = check_strength(strength, n_attributes)
    u = gen.random(labels.shape[0])
    other = gen.integers(0, max(n_attributes - 1, 1), labels.shape[0])
    aligned = labels % n_attributes
    return np.where(u < p, aligned, (aligned + 1 + other) % n_attributes)


def override(values: np.ndarray, given: Any, n_values: int, what: str) -> np.ndarray:
    """`given` (an int for all, or [n] values) in place of the drawn `values`, checked."""
    if given is None:
        return values
    out = np.broadcast_to(np.asarray(given.cpu() if isinstance(given, torch.Tensor) else given, dtype=np.int64),
                          values.shape).copy()
    if out.min() < 0 or out.max() >= n_values:
        raise ValueError(f"{what} must be in 0..{n_values - 1}, got values from {out.min()} to {out.max()}.")
    return out


@dataclass
class ImageSet:
    """Images with their class and spurious attribute. `images` [n, 3, H, W] float32 in [0, 1]."""

    images: torch.Tensor           # [n, 3, H, W]
    labels: torch.Tensor           # [n] long: the class
    attributes: torch.Tensor       # [n] long: the spurious attribute
    label_names: tuple[str, ...]
    attribute_names: tuple[str, ...]
    spec: dict[str, Any]           # {"generator": name, "kwargs": {...}}: enough to re-render the set
    factors: dict[str, torch.Tensor] = field(default_factory=dict)  # every generative factor, [n] each

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def ids(self) -> list[str]:
        k = self.spec["kwargs"]
        return [f"{self.spec['generator']}-{k['split']}-s{k['seed']}-{i}" for i in range(len(self))]

    @property
    def n_attributes(self) -> int:
        return len(self.attribute_names)

    @property
    def groups(self) -> torch.Tensor:
        """[n] group index `label * n_attributes + attribute` (names in `group_names`)."""
        return self.labels * self.n_attributes + self.attributes

    @property
    def group_names(self) -> list[str]:
        return [f"{c}/{a}" for c in self.label_names for a in self.attribute_names]

    @property
    def aligned(self) -> torch.Tensor:
        """[n] bool: the attribute is the one the label predicts in training (`label % n_attributes`)."""
        return self.attributes == self.labels % self.n_attributes

    def measured_strength(self) -> float:
        """Fraction of aligned examples: the empirical P(attribute == aligned(label))."""
        return float(self.aligned.double().mean())

    def examples(self) -> list[dict]:
        """One dict per image (`id`, `pixel_values` [3, H, W], `label`, `attribute`, `group`) for
        `capture`, `Subject.run` and the trainer."""
        groups = self.groups.tolist()
        return [{"id": i, "pixel_values": x, "label": int(y), "attribute": int(a), "group": g}
                for i, x, y, a, g in zip(self.ids, self.images, self.labels.tolist(), self.attributes.tolist(),
                                         groups)]

    def counterfactual(self, attributes: int | torch.Tensor | np.ndarray | None = None) -> ImageSet:
        """The same images (same class, pose, noise) re-rendered with other spurious attributes.

        `attributes`: an int for every image or [n] values; None shifts each to the next value
        (`(a + 1) % n_attributes`). Exact: re-rendering with the original attributes gives the same bytes."""
        if attributes is None:
            attributes = (self.attributes + 1) % self.n_attributes
        fn = GENERATORS[self.spec["generator"]]
        return fn(**self.spec["kwargs"], attributes=attributes)

    def all_counterfactuals(self) -> list[ImageSet]:
        """One counterfactual per other attribute value: shift 1 .. n_attributes - 1."""
        return [self.counterfactual((self.attributes + s) % self.n_attributes) for s in range(1, self.n_attributes)]
