"""The trainer's image path: examples with `pixel_values` become one stacked tensor, batches are slices.

`interp.train.trainer.encode` and `iter_batches` hand image examples here, so the training loop, its
losses, KD, evaluation and caching are the ones text models use.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch


@dataclass
class EncodedImages:
    """Stacked images and integer labels (``-1`` when absent): the image counterpart of ``Encoded``."""

    pixel_values: torch.Tensor  # [n, channels, H, W]
    labels: torch.Tensor        # [n]

    def __len__(self) -> int:
        return int(self.pixel_values.shape[0])


def encode_images(examples: Sequence[dict], labels: torch.Tensor) -> EncodedImages:
    """Stack every example's ``pixel_values`` ([channels, H, W], all the same shape) once."""
    shapes = {tuple(torch.as_tensor(e["pixel_values"]).shape) for e in examples}
    if len(shapes) != 1:
        raise ValueError(f"Image examples must all have one shape [channels, H, W]; got {sorted(shapes)}. "
                         "Generate or resize them to one size.")
    if len(next(iter(shapes))) != 3:
        raise ValueError(f"pixel_values must be [channels, H, W] per example, got shape {next(iter(shapes))}.")
    pix = torch.stack([torch.as_tensor(e["pixel_values"], dtype=torch.float32) for e in examples])
    return EncodedImages(pix, labels)


def iter_image_batches(enc: EncodedImages, batch_size: int, shuffle: bool = False,
                       generator: torch.Generator | None = None
                       ) -> Iterable[tuple[torch.Tensor, dict[str, torch.Tensor]]]:
    """Yield ``(indices, {"pixel_values": [batch, channels, H, W]})``, shuffled like the text batches."""
    n = len(enc)
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    for s in range(0, n, batch_size):
        idx = order[s:s + batch_size]
        yield idx, {"pixel_values": enc.pixel_values[idx]}
