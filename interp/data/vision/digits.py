"""Coloured digits: 5x7 bitmap-font glyphs with random pose and ink, coloured by a spurious attribute.

The Coloured-MNIST setting without MNIST (no download, no scikit-learn): the class is the digit, the
spurious attribute the stroke colour (`DIGIT_COLOURS[a]`), correlated with the class at `strength`
(see `interp.data.vision.imageset`). Pose (scale, rotation, shift) and noise vary per image, so the
shape must be read, while the colour is a one-pixel shortcut.
"""
from __future__ import annotations

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

DIGIT_COLOURS = ("red", "green", "blue", "yellow", "magenta", "cyan", "orange", "purple", "white", "brown")
_FONT = {  # 5 wide, 7 high
    0: (".###.", "#...#", "#..##", "#.#.#", "##..#", "#...#", ".###."),
    1: ("..#..", ".##..", "..#..", "..#..", "..#..", "..#..", ".###."),
    2: (".###.", "#...#", "....#", "...#.", "..#..", ".#...", "#####"),
    3: ("#####", "...#.", "..#..", "...#.", "....#", "#...#", ".###."),
    4: ("...#.", "..##.", ".#.#.", "#..#.", "#####", "...#.", "...#."),
    5: ("#####", "#....", "####.", "....#", "....#", "#...#", ".###."),
    6: ("..##.", ".#...", "#....", "####.", "#...#", "#...#", ".###."),
    7: ("#####", "....#", "...#.", "..#..", ".#...", ".#...", ".#..."),
    8: (".###.", "#...#", "#...#", ".###.", "#...#", "#...#", ".###."),
    9: (".###.", "#...#", "#...#", ".####", "....#", "...#.", ".##.."),
}


def glyphs() -> torch.Tensor:
    """[10, 9, 9] float32: the digit bitmaps centred on a 9x9 canvas (one empty cell around them)."""
    out = torch.zeros(10, 9, 9)
    for d, rows in _FONT.items():
        out[d, 1:8, 2:7] = torch.tensor([[c == "#" for c in row] for row in rows], dtype=torch.float32)
    return out


def ink(labels: np.ndarray, poses: np.ndarray, size: int) -> torch.Tensor:
    """[n, size, size] stroke coverage in [0, 1]: each label's glyph under its pose (bilinear)."""
    x, y = render.object_coords(poses, size, supersample=1)                # [n, size, size] each
    grid = torch.stack([x, y], -1).to(torch.float32)                        # [n, H, W, 2]
    src = glyphs()[torch.as_tensor(labels, dtype=torch.long)][:, None]       # [n, 1, 9, 9]
    out = F.grid_sample(src, grid, mode="bilinear", padding_mode="zeros", align_corners=False)[:, 0]
    return (out * 1.5).clamp(0.0, 1.0)                                       # bolder strokes


@register("coloured_digits")
def coloured_digits(n: int, split: str = "train", strength: float | None = 0.9, seed: int = 0, size: int = 16,
                    n_classes: int = 10, noise: float = 0.05, attributes=None) -> ImageSet:
    """`n` coloured digits of classes 0..n_classes-1 (balanced); attribute = stroke colour, equal to
    the class's colour with probability `strength` (None: independent; 0: never). `attributes`
    overrides the drawn colours (counterfactuals). Images [n, 3, size, size] in [0, 1]."""
    if not 2 <= n_classes <= 10:
        raise ValueError(f"n_classes must be in 2..10 (one glyph and one colour per class), got {n_classes}.")
    if size < 8:
        raise ValueError(f"size must be at least 8 pixels to draw a 5x7 glyph, got {size}.")
    labels = balanced_labels(n, n_classes, rng(seed, split, STREAM_LABELS))
    attrs = override(spurious_attributes(labels, n_classes, strength, rng(seed, split, STREAM_ATTRS)),
                     attributes, n_classes, "attributes")
    poses = render.draw_poses(rng(seed, split, STREAM_POSE), n, scale=(0.85, 1.1), rotate_deg=12, shift=0.12)
    other = rng(seed, split, STREAM_OTHER)
    tint = torch.as_tensor(other.uniform(-0.06, 0.06, (n, 3)), dtype=torch.float32)   # [n, 3]
    bg = torch.as_tensor(other.uniform(0.0, 0.15, n), dtype=torch.float32)            # [n]
    a = ink(labels, poses, size)[:, None]                                               # [n, 1, H, W]
    rgb = (render.colours(DIGIT_COLOURS[:n_classes])[torch.as_tensor(attrs)] + tint).clamp(0, 1)  # [n, 3]
    images = a * rgb[:, :, None, None] + (1 - a) * bg[:, None, None, None]
    images = render.finish(images, rng(seed, split, STREAM_NOISE), noise)
    kwargs = dict(n=n, split=split, strength=strength, seed=seed, size=size, n_classes=n_classes, noise=noise)
    lab, att = torch.as_tensor(labels), torch.as_tensor(attrs)
    return ImageSet(images, lab, att, tuple(str(d) for d in range(n_classes)), DIGIT_COLOURS[:n_classes],
                    {"generator": "coloured_digits", "kwargs": kwargs}, {"digit": lab, "colour": att})
