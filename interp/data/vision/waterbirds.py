"""Waterbirds-style composites (Sagiv et al. 2020 / Sagawa et al. 2020): an object on a background.

The class is the object (`landbird`: triangles and diamonds; `waterbird`: circles and rings, any of
five colours independent of the class), the spurious attribute the background (`land`: green-brown
blotches; `water`: blue horizontal waves), aligned with the class with probability `strength`
(0.95 in the original training set). The background covers most pixels and is easier to read than
the object's outline, so ERM learns it: worst-group accuracy is the number to watch.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

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

CLASSES = ("landbird", "waterbird")
BACKGROUNDS = ("land", "water")
_OBJECT_SHAPES = (("triangle", "diamond"), ("circle", "ring"))  # per class
_OBJECT_COLOURS = ("white", "yellow", "red", "orange", "magenta")


def backgrounds(kinds: np.ndarray, gen: np.random.Generator, size: int) -> torch.Tensor:
    """[n, 3, H, W]: land (green/brown blotches) or water (blue waves), from draws of fixed shape."""
    n = len(kinds)
    blot = torch.as_tensor(gen.uniform(0, 1, (n, 1, 4, 4)), dtype=torch.float32)
    blot = F.interpolate(blot, size=(size, size), mode="bilinear", align_corners=False)      # [n, 1, H, W]
    phase = torch.as_tensor(gen.uniform(0, 2 * math.pi, (n, 1, 1, 1)), dtype=torch.float32)
    period = torch.as_tensor(gen.uniform(size / 5, size / 3, (n, 1, 1, 1)), dtype=torch.float32)
    lin = torch.arange(size, dtype=torch.float32) + 0.5
    yy, xx = torch.meshgrid(lin, lin, indexing="ij")
    waves = 0.5 + 0.5 * torch.sin(2 * math.pi * yy / period + phase + 0.6 * torch.sin(xx / 3))  # [n, 1, H, W]
    green, brown = torch.tensor([0.25, 0.55, 0.15]), torch.tensor([0.50, 0.38, 0.18])
    deep, light = torch.tensor([0.05, 0.20, 0.55]), torch.tensor([0.30, 0.55, 0.85])
    land = blot * green[None, :, None, None] + (1 - blot) * brown[None, :, None, None]
    water = waves * light[None, :, None, None] + (1 - waves) * deep[None, :, None, None]
    is_water = torch.as_tensor(kinds == 1)[:, None, None, None]
    return torch.where(is_water, water, land)


@register("waterbirds")
def waterbirds(n: int, split: str = "train", strength: float | None = 0.95, seed: int = 0, size: int = 32,
               noise: float = 0.03, attributes=None) -> ImageSet:
    """`n` composites (classes balanced); attribute = background, aligned (land for landbirds, water for
    waterbirds) with probability `strength` (None: independent, 0.5 here)."""
    if size < 16:
        raise ValueError(f"size must be at least 16 pixels to draw an object on a background, got {size}.")
    labels = balanced_labels(n, 2, rng(seed, split, STREAM_LABELS))
    attrs = override(spurious_attributes(labels, 2, strength, rng(seed, split, STREAM_ATTRS)), attributes, 2,
                     "attributes")
    other = rng(seed, split, STREAM_OTHER)
    variant = other.integers(0, 2, n)
    colour = other.integers(0, len(_OBJECT_COLOURS), n)
    bg = backgrounds(attrs, rng(seed, split, STREAM_OTHER + 1), size)
    shape_ids = np.array([render.SHAPES.index(_OBJECT_SHAPES[c][v]) for c, v in zip(labels, variant)])
    poses = render.draw_poses(rng(seed, split, STREAM_POSE), n, scale=(0.4, 0.6), rotate_deg=15, shift=0.3)
    x, y = render.object_coords(poses, size)
    mask = render.shape_masks(shape_ids, x, y)[:, None]                                    # [n, 1, H, W]
    rgb = render.colours(_OBJECT_COLOURS)[torch.as_tensor(colour)][:, :, None, None]      # [n, 3, 1, 1]
    images = render.finish(mask * rgb + (1 - mask) * bg, rng(seed, split, STREAM_NOISE), noise)
    kwargs = dict(n=n, split=split, strength=strength, seed=seed, size=size, noise=noise)
    lab, att = torch.as_tensor(labels), torch.as_tensor(attrs)
    return ImageSet(images, lab, att, CLASSES, BACKGROUNDS, {"generator": "waterbirds", "kwargs": kwargs},
                    {"object": lab, "background": att, "shape": torch.as_tensor(shape_ids),
                     "colour": torch.as_tensor(colour)})
