"""Drawing primitives shared by the generators: colours, random poses, shape masks, textures, noise.

Everything is vectorised over a batch and deterministic: random numbers come in as numpy arrays drawn
by the caller from its own streams.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

# Name -> RGB in [0, 1]. Distinct hues at similar saturation: colour alone is easy to read.
PALETTE: dict[str, tuple[float, float, float]] = {
    "red": (0.90, 0.10, 0.10), "green": (0.10, 0.75, 0.15), "blue": (0.15, 0.30, 1.00),
    "yellow": (0.95, 0.90, 0.10), "magenta": (0.90, 0.10, 0.90), "cyan": (0.10, 0.85, 0.90),
    "orange": (1.00, 0.55, 0.00), "purple": (0.50, 0.20, 0.90), "white": (0.95, 0.95, 0.95),
    "brown": (0.55, 0.30, 0.10),
}
SHAPES = ("circle", "square", "triangle", "diamond", "plus", "ring")
TEXTURES = ("solid", "hstripes", "vstripes", "diagonal", "checker", "dots")


def colours(names: tuple[str, ...]) -> torch.Tensor:
    """[k, 3] RGB of the named colours."""
    return torch.tensor([PALETTE[c] for c in names], dtype=torch.float32)


def draw_poses(gen: np.random.Generator, n: int, scale: tuple[float, float], rotate_deg: float,
               shift: float) -> np.ndarray:
    """[n, 4] (scale, angle in radians, dx, dy); dx, dy in normalised image units ([-1, 1] spans the image)."""
    s = gen.uniform(*scale, n)
    a = gen.uniform(-1.0, 1.0, n) * math.radians(rotate_deg)
    d = gen.uniform(-shift, shift, (n, 2))
    return np.stack([s, a, d[:, 0], d[:, 1]], axis=1)


def object_coords(poses: np.ndarray, size: int, supersample: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """Object-frame coordinates (x, y), each [n, size * ss, size * ss], of every output pixel centre: the
    inverse of the pose (scale, rotation about the shifted centre), so a shape drawn at |x|, |y| <= 1 in
    object frame lands scaled, rotated and shifted in the image."""
    m = size * supersample
    lin = (torch.arange(m, dtype=torch.float64) + 0.5) / m * 2 - 1  # pixel centres in [-1, 1]
    yy, xx = torch.meshgrid(lin, lin, indexing="ij")                 # [m, m]
    p = torch.as_tensor(poses, dtype=torch.float64)
    s, a, dx, dy = (p[:, i, None, None] for i in range(4))
    u, v = xx[None] - dx, yy[None] - dy
    x = (torch.cos(a) * u + torch.sin(a) * v) / s
    y = (-torch.sin(a) * u + torch.cos(a) * v) / s
    return x, y


def shape_masks(shape_ids: np.ndarray, x: torch.Tensor, y: torch.Tensor, supersample: int = 2) -> torch.Tensor:
    """[n, H, W] float32 coverage in [0, 1] of each example's shape (index into SHAPES), anti-aliased by
    averaging a `supersample` x `supersample` grid per pixel. Shapes fill about |x|, |y| <= 0.8."""
    r = 0.8
    ax, ay, rad = x.abs(), y.abs(), torch.sqrt(x * x + y * y)
    table = {
        "circle": rad <= r,
        "square": (ax <= 0.8 * r) & (ay <= 0.8 * r),
        "triangle": (y >= -r) & (y <= 0.7 * r) & (ax <= 0.6 * (y + r)),
        "diamond": ax + ay <= 1.1 * r,
        "plus": ((ax <= r / 3) & (ay <= r)) | ((ay <= r / 3) & (ax <= r)),
        "ring": (rad <= r) & (rad >= 0.55 * r),
    }
    masks = torch.stack([table[s] for s in SHAPES], 1).to(torch.float32)  # [n, n_shapes, m, m]
    idx = torch.as_tensor(shape_ids, dtype=torch.long)
    hard = masks[torch.arange(len(idx)), idx]                            # [n, m, m]
    return F.avg_pool2d(hard[:, None], supersample)[:, 0]                 # [n, H, W]


def textures(texture_ids: np.ndarray, phases: np.ndarray, size: int, period: float) -> torch.Tensor:
    """[n, H, W] float32 in {0.35, 1}: each example's texture (index into TEXTURES) with its phase
    ([n, 2], radians) and period in pixels. Texture never hides the shape (its low value is 0.35)."""
    lin = torch.arange(size, dtype=torch.float64) + 0.5
    yy, xx = torch.meshgrid(lin, lin, indexing="ij")
    ph = torch.as_tensor(phases, dtype=torch.float64)
    px, py = ph[:, 0, None, None], ph[:, 1, None, None]
    w = 2 * math.pi / period
    sx, sy = torch.sin(w * xx[None] + px), torch.sin(w * yy[None] + py)
    table = {
        "solid": torch.ones_like(sx, dtype=torch.bool),
        "hstripes": sy > 0,
        "vstripes": sx > 0,
        "diagonal": torch.sin(w * (xx[None] + yy[None]) / math.sqrt(2) + px) > 0,
        "checker": sx * sy > 0,
        "dots": (sx > 0.4) & (sy > 0.4),
    }
    pats = torch.stack([table[t] for t in TEXTURES], 1).to(torch.float32)  # [n, n_textures, H, W]
    idx = torch.as_tensor(texture_ids, dtype=torch.long)
    return 0.35 + 0.65 * pats[torch.arange(len(idx)), idx]


def finish(images: torch.Tensor, gen: np.random.Generator, noise: float) -> torch.Tensor:
    """Add pixel noise (std `noise`, drawn from `gen`) and clip to [0, 1]: [n, 3, H, W] float32."""
    eps = torch.as_tensor(gen.standard_normal(images.shape), dtype=torch.float32)
    return (images + noise * eps).clamp_(0.0, 1.0).contiguous()
