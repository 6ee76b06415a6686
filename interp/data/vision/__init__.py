"""Offline image data with a controllable spurious attribute, every image carrying (class, attribute).

- `coloured_digits`: bitmap-font digits, the stroke colour spurious (Coloured MNIST without MNIST).
- `trifeature`: shape x colour x texture, any feature the class, another spurious (Hermann & Lampinen 2020).
- `waterbirds`: an object on a land or water background, the background spurious.

Each returns an `ImageSet` (images [n, 3, H, W] in [0, 1], labels, attributes, groups, `examples()`,
`counterfactual()`), seeded and identical across processes.
"""
from interp.data.vision.digits import coloured_digits
from interp.data.vision.imageset import GENERATORS, ImageSet
from interp.data.vision.trifeature import trifeature
from interp.data.vision.waterbirds import waterbirds

__all__ = ["GENERATORS", "ImageSet", "coloured_digits", "trifeature", "waterbirds"]
