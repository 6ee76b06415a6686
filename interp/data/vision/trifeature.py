"""Trifeature-style images (Hermann & Lampinen 2020): one object with a shape, a colour and a texture.

Any one feature is the class (`label`), another the spurious attribute (`spurious`), correlated with
the class at `strength`; the third is uniform and independent. Which feature a model uses, and how
that changes under distillation, is then measurable feature by feature.
"""
from __future__ import annotations

import numpy as np
import torch

from interp.data.vision import render
from interp.data.vision.imageset import (
    STREAM_ATTRS,
    STREAM_LABELS,
    STREAM_NOISE,
    STREAM_OTHER,
    STREAM_POSE,
    ImageSet,
    balanced_labels,
    override,
    register,
    rng,
    spurious_attributes,
)

FEATURES = ("shape", "colour", "texture")
TRI_COLOURS = ("red", "green", "blue", "yellow", "magenta", "cyan")


def _names(feature: str, k: int) -> tuple[str, ...]:
    return {"shape": render.SHAPES, "colour": TRI_COLOURS, "texture": render.TEXTURES}[feature][:k]


@register("trifeature")
def trifeature(n: int, split: str = "train", label: str = "shape", spurious: str = "colour",
               strength: float | None = 0.9, seed: int = 0, size: int = 32, n_values: int = 4, noise: float = 0.03,
               attributes=None) -> ImageSet:
    """`n` images; class = value of feature `label`, attribute = value of feature `spurious` (aligned with
    the class with probability `strength`; None: independent), the third feature uniform. Each feature
    takes `n_values` values (2..6). `factors` holds all three per image."""
    if label not in FEATURES or spurious not in FEATURES or label == spurious:
        raise ValueError(f"label and spurious must be two different features of {FEATURES}, got {label!r} and "
                         f"{spurious!r}.")
    if not 2 <= n_values <= 6:
        raise ValueError(f"n_values must be in 2..6 (shapes, colours and textures available), got {n_values}.")
    if size < 16:
        raise ValueError(f"size must be at least 16 pixels for textures to be visible, got {size}.")
    third = next(f for f in FEATURES if f not in (label, spurious))
    labels = balanced_labels(n, n_values, rng(seed, split, STREAM_LABELS))
    attrs = override(spurious_attributes(labels, n_values, strength, rng(seed, split, STREAM_ATTRS)),
                     attributes, n_values, "attributes")
    other = rng(seed, split, STREAM_OTHER)
    values = {label: labels, spurious: attrs, third: other.integers(0, n_values, n)}
    phases = other.uniform(0, 2 * np.pi, (n, 2))
    tint = torch.as_tensor(other.uniform(-0.05, 0.05, (n, 3)), dtype=torch.float32)
    bg = torch.as_tensor(other.uniform(0.0, 0.2, n), dtype=torch.float32)
    poses = render.draw_poses(rng(seed, split, STREAM_POSE), n, scale=(0.55, 0.8), rotate_deg=20, shift=0.15)
    x, y = render.object_coords(poses, size)
    mask = render.shape_masks(values["shape"], x, y)[:, None]                              # [n, 1, H, W]
    pattern = render.textures(values["texture"], phases, size, period=max(size / 6, 3.0))[:, None]
    rgb = (render.colours(TRI_COLOURS)[torch.as_tensor(values["colour"])] + tint).clamp(0, 1)  # [n, 3]
    images = mask * pattern * rgb[:, :, None, None] + (1 - mask) * bg[:, None, None, None]
    images = render.finish(images, rng(seed, split, STREAM_NOISE), noise)
    kwargs = dict(n=n, split=split, label=label, spurious=spurious, strength=strength, seed=seed, size=size,
                  n_values=n_values, noise=noise)
    factors = {f: torch.as_tensor(v) for f, v in values.items()}
    return ImageSet(images, factors[label], factors[spurious], _names(label, n_values), _names(spurious, n_values),
                    {"generator": "trifeature", "kwargs": kwargs}, {f: factors[f] for f in FEATURES})
