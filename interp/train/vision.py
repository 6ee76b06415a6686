"""Image classifiers for the vision studies, and the debiasing inputs their training needs.

- `tiny_vit`, `tiny_resnet`, `tiny_lenet`: `transformers` ViT / ResNet / LeNet-5-style (`interp.lenet`)
  classifiers from small configurations (no
  torchvision, no download), labelled with the data's class names so teacher and student agree on the
  label order. Train them with `interp.train.trainer.train_model` on `ImageSet.examples()`: the same
  loop, losses and KD as the text models.
- `group_weights`: per-example weights for `loss="group_reweight"` (every group weighs the same).
- `attribute_bias_probs`: the attribute-only bias model, P(class | spurious attribute) counted on the
  training set, as `bias_probs` for PoE, reweighting or focal loss.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import transformers as T


def _labels(label_names: Sequence[str]) -> dict:
    names = [str(x) for x in label_names]
    if len(names) < 2 or len(set(names)) != len(names):
        raise ValueError(f"label_names must be at least two distinct names, got {names}.")
    return {"num_labels": len(names), "id2label": dict(enumerate(names)),
            "label2id": {x: i for i, x in enumerate(names)}}


def tiny_vit(label_names: Sequence[str], image_size: int = 16, patch_size: int = 4, d: int = 32, layers: int = 2,
             heads: int = 4, seed: int = 0, dropout: float = 0.0) -> T.ViTForImageClassification:
    """A small ViT classifier (eager attention, so patterns can be read), initialised from `seed`, in eval mode."""
    if image_size % patch_size:
        raise ValueError(f"image_size {image_size} must be a multiple of patch_size {patch_size}.")
    kwargs: dict[str, Any] = dict(hidden_size=d, num_hidden_layers=layers, num_attention_heads=heads,
                                  intermediate_size=2 * d, image_size=image_size, patch_size=patch_size,
                                  hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout,
                                  attn_implementation="eager", **_labels(label_names))
    cfg = T.ViTConfig(**kwargs)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return T.ViTForImageClassification(cfg).eval()


def tiny_resnet(label_names: Sequence[str], hidden_sizes: Sequence[int] = (8, 16), depths: Sequence[int] = (1, 1),
                embedding_size: int = 8, layer_type: str = "basic", seed: int = 0) -> T.ResNetForImageClassification:
    """A small ResNet classifier (`layer_type` "basic" or "bottleneck"), initialised from `seed`, in eval mode."""
    if len(hidden_sizes) != len(depths):
        raise ValueError(f"hidden_sizes {list(hidden_sizes)} and depths {list(depths)} need one entry per stage.")
    cfg = T.ResNetConfig(num_channels=3, embedding_size=embedding_size, hidden_sizes=list(hidden_sizes),
                         depths=list(depths), layer_type=layer_type, downsample_in_first_stage=False,
                         **_labels(label_names))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return T.ResNetForImageClassification(cfg).eval()


def tiny_lenet(label_names: Sequence[str], channels: Sequence[int] = (6, 16), kernel_size: int = 5,
               pool_size: int = 4, fc: Sequence[int] = (120, 84), seed: int = 0):
    """A LeNet-5-style CNN classifier (`interp.lenet`: conv-ReLU-pool stages, then fully connected layers),
    initialised from `seed`, in eval mode."""
    from interp.lenet import LeNetConfig, LeNetForImageClassification

    cfg = LeNetConfig(channels=channels, kernel_size=kernel_size, pool_size=pool_size, fc=fc, **_labels(label_names))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return LeNetForImageClassification(cfg).eval()


def group_weights(groups: Sequence[int] | torch.Tensor | np.ndarray) -> np.ndarray:
    """[n] float64 weights `n / (G * n_g)` (G: groups present, n_g: size of example's group): every group
    carries the same total weight and the weights average 1, so the loss scale stays ERM's."""
    g = np.asarray(groups.cpu() if isinstance(groups, torch.Tensor) else groups).astype(np.int64)
    if g.ndim != 1 or g.size == 0:
        raise ValueError(f"groups must be a non-empty [n] array of group indices, got shape {g.shape}.")
    values, inverse, counts = np.unique(g, return_inverse=True, return_counts=True)
    return g.size / (len(values) * counts[inverse].astype(np.float64))


def attribute_bias_probs(labels, attributes, n_classes: int, smoothing: float = 1.0,
                         fit_labels=None, fit_attributes=None) -> np.ndarray:
    """[n, n_classes] bias-only probabilities P(class | attribute) for each example, counted on
    (`fit_labels`, `fit_attributes`) (default: the examples themselves) with add-`smoothing` counts.

    With a discrete spurious attribute this table is the best any attribute-only model can do, so it is
    the natural bias model for PoE / reweighting (Clark et al. 2019) on generated images."""
    y = np.asarray(labels).astype(np.int64)
    a = np.asarray(attributes).astype(np.int64)
    fy = y if fit_labels is None else np.asarray(fit_labels).astype(np.int64)
    fa = a if fit_attributes is None else np.asarray(fit_attributes).astype(np.int64)
    if y.shape != a.shape or fy.shape != fa.shape:
        raise ValueError("labels and attributes must have the same shape [n].")
    if smoothing < 0:
        raise ValueError(f"smoothing must be >= 0, got {smoothing}.")
    n_attr = int(max(a.max(), fa.max())) + 1
    counts = np.full((n_attr, n_classes), float(smoothing))
    np.add.at(counts, (fa, fy), 1.0)
    totals = counts.sum(1, keepdims=True)
    if (totals == 0).any():
        raise ValueError("an attribute value never occurs in the fitting data and smoothing is 0: P(class | "
                         "attribute) is undefined; use smoothing > 0.")
    return (counts / totals)[a]


def evaluate_images(model, data, batch_size: int = 256) -> dict:
    """The fairness study's numbers for one model on an `ImageSet` (the attribute as the group):
    accuracy, per-class and per-group accuracy, worst-group accuracy, individual fairness over every
    counterfactual attribute value, and for two classes DPD and EOD across attribute values."""
    from interp.metrics import (
        demographic_parity_difference,
        equalized_odds_difference,
        group_accuracies,
        individual_fairness,
        per_class_accuracy,
    )
    from interp.train.trainer import predict_logits

    logits = predict_logits(model, None, data.examples(), batch_size)  # [n, n_labels]
    pred = logits.argmax(-1).numpy()
    y, groups = data.labels.numpy(), data.groups.numpy()
    cf_logits = [predict_logits(model, None, cf.examples(), batch_size) for cf in data.all_counterfactuals()]
    by_group = group_accuracies(y, pred, groups)
    out = {"accuracy": float(np.mean(pred == y)),
           "per_class_accuracy": per_class_accuracy(y, pred, len(data.label_names)).tolist(),
           "group_accuracy": {data.group_names[g]: a for g, a in by_group.items()},
           "worst_group_accuracy": min(by_group.values()),
           "individual_fairness": individual_fairness(pred, [c.argmax(-1).numpy() for c in cf_logits],
                                                      torch.softmax(logits, -1).numpy(),
                                                      [torch.softmax(c, -1).numpy() for c in cf_logits])}
    if len(data.label_names) == 2:
        attrs = data.attributes.numpy()
        out["dpd"] = demographic_parity_difference(pred, attrs)
        out["eod"] = equalized_odds_difference(y, pred, attrs)
    return out
