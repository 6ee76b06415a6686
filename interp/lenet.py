"""A LeNet-5-style CNN image classifier as a `transformers` model (the fairness study's ResNet-20 -> LeNet-5
student on Trifeature), so that it trains, saves, loads and is read like the ViT and ResNet classifiers.

Structure: `lenet.embedder` (identity: the input image, site `embed`), `lenet.stages` (one block per stage:
conv k x k with same padding -> ReLU -> 2x2 max pool; site `blocks.{l}.hook_resid_post`, a feature map
[batch, channels, h, w], as ResNet stage outputs), `lenet.pooler` (adaptive average pool to `pool_size`),
then `classifier` (flatten -> fully connected layers with ReLU -> logits). Importing this module registers
the `lenet` model type with `AutoConfig` / `AutoModelForImageClassification`.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import transformers as T
from torch import nn
from transformers.modeling_outputs import ImageClassifierOutput


class LeNetConfig(T.PretrainedConfig):
    """Sizes of a LeNet-5-style classifier: conv `channels` per stage, `kernel_size`, fully connected widths `fc`."""

    model_type = "lenet"

    def __init__(self, num_channels: int = 3, channels: Sequence[int] = (6, 16), kernel_size: int = 5,
                 pool_size: int = 4, fc: Sequence[int] = (120, 84), **kwargs: Any) -> None:
        self.num_channels = num_channels
        self.channels = list(channels)
        self.kernel_size = kernel_size
        self.pool_size = pool_size
        self.fc = list(fc)
        super().__init__(**kwargs)


class LeNetStage(nn.Module):
    """conv (same padding) -> ReLU -> 2x2 max pool: [batch, c_in, h, w] -> [batch, c_out, h // 2, w // 2]."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel_size, padding=kernel_size // 2)
        self.pool = nn.MaxPool2d(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(torch.relu(self.conv(x)))


class LeNetModel(nn.Module):
    """The convolutional trunk: embedder (identity), stages, pooler."""

    def __init__(self, config: LeNetConfig) -> None:
        super().__init__()
        self.embedder = nn.Identity()
        sizes = [config.num_channels, *config.channels]
        self.stages = nn.ModuleList(LeNetStage(a, b, config.kernel_size) for a, b in zip(sizes, sizes[1:]))
        self.pooler = nn.AdaptiveAvgPool2d(config.pool_size)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        h = self.embedder(pixel_values)
        for stage in self.stages:
            h = stage(h)
        return self.pooler(h)


class LeNetForImageClassification(T.PreTrainedModel):
    """LeNet-5-style image classifier; `forward(pixel_values, labels=None)` -> `ImageClassifierOutput`."""

    config_class = LeNetConfig
    base_model_prefix = "lenet"
    main_input_name = "pixel_values"

    def __init__(self, config: LeNetConfig) -> None:
        super().__init__(config)
        self.lenet = LeNetModel(config)
        widths = [config.channels[-1] * config.pool_size ** 2, *config.fc]
        layers: list[nn.Module] = [nn.Flatten()]
        for a, b in zip(widths, widths[1:]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        self.classifier = nn.Sequential(*layers, nn.Linear(widths[-1], int(config.num_labels or 0)))
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_uniform_(module.weight, nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)

    def forward(self, pixel_values: torch.Tensor, labels: torch.Tensor | None = None, **kwargs: Any
                ) -> ImageClassifierOutput:
        logits = self.classifier(self.lenet(pixel_values))  # [batch, n_labels]
        loss = nn.functional.cross_entropy(logits, labels) if labels is not None else None
        return ImageClassifierOutput(loss=loss, logits=logits)


def register() -> None:
    """Make `lenet` folders loadable by the Auto classes (idempotent)."""
    T.AutoConfig.register("lenet", LeNetConfig, exist_ok=True)
    T.AutoModelForImageClassification.register(LeNetConfig, LeNetForImageClassification, exist_ok=True)


register()
