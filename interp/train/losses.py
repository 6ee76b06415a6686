"""Debiasing losses and knowledge distillation losses.

Conventions (all functions):

- ``logits`` / ``z_m``: main-model logits, ``[batch, n_cls]`` (any float dtype).
- ``bias_probs`` / ``p_b``: probabilities of a *frozen* bias-only model, ``[batch, n_cls]``, rows summing
  to 1, in the same label order as the logits. They are treated as constants (detached).
- ``labels`` / ``y``: gold class indices, ``[batch]`` (long).
- Every loss returns a scalar averaged over the batch (``reduction="mean"``) unless ``reduction="none"``
  (per-example vector) or ``"sum"``.

Formulas (see ``/work/shared/DESIGN.md``, "Bias data"):

- Product of experts (Clark et al. 2019; He et al. 2019): ``CE(log_softmax(z_m) + log p_b, y)``. The sum
  is renormalised by the softmax inside CE. Only the main model receives gradients.
- Example reweighting (Clark et al. 2019; Schuster et al. 2019): ``w_i = 1 - p_b(y_i)``,
  ``L = sum_i w_i CE_i / B`` (``normalize="batch"``, the default) or ``sum_i w_i CE_i / sum_i w_i``
  (``normalize="weights"``: the gradient scale stays comparable to ERM when the bias is confident).
- Confidence regularisation (Utama et al. 2020, "Mind the trade-off"): the (biased) teacher's
  probabilities are scaled ``S_j = p_t,j ** (1 - p_b(y)) / sum_k p_t,k ** (1 - p_b(y))`` and used as soft
  targets, ``L = -sum_j S_j log p_m,j``. When the bias model is sure of the gold label the targets become
  uniform (the example is down-weighted softly); when it is not, they are the teacher's distribution.
- Debiased focal loss (Karimi Mahabadi et al. 2020): ``L = -(1 - p_b(y))^gamma log p_m(y)``.
- Group DRO (Sagawa et al. 2020, Algorithm 1): per batch, the mean loss of each group present
  ``l_g = sum_{i in g} CE_i / n_g`` (0 for a group absent from the batch), then the exponentiated-gradient
  step on the group weights ``q_g <- q_g exp(eta l_g) / sum_h q_h exp(eta l_h)`` and
  ``L = sum_g q_g l_g`` with the updated ``q`` (held by :class:`GroupDRO` across batches).
- Hinton et al. (2015) knowledge distillation:
  ``L = alpha * T^2 * KL(softmax(z_t/T) || softmax(z_s/T)) + (1 - alpha) * CE(z_s, y)``.
  **alpha weights the distillation (KL) term**: ``alpha=0`` is plain cross-entropy on gold labels,
  ``alpha=1`` is pure distillation. The ``T^2`` factor keeps the soft-target gradient magnitude roughly
  independent of ``T`` (the gradient of the KL w.r.t. ``z_s`` scales like ``1/T^2`` for large ``T``).
  KL is averaged over the batch ("batchmean").
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = [
    "erm_loss",
    "poe_loss",
    "reweight_loss",
    "conf_reg_targets",
    "conf_reg_loss",
    "focal_loss",
    "group_losses",
    "dro_step",
    "GroupDRO",
    "kd_loss",
    "soft_cross_entropy",
    "weighted_erm_loss",
]

_EPS = 1e-12


def _reduce(per_example: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return per_example.mean()
    if reduction == "sum":
        return per_example.sum()
    if reduction == "none":
        return per_example
    raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def _check(logits: torch.Tensor, labels: torch.Tensor | None = None, probs: torch.Tensor | None = None,
           name: str = "bias_probs") -> None:
    if logits.dim() != 2:
        raise ValueError(f"logits must be [batch, n_cls], got shape {tuple(logits.shape)}")
    if labels is not None and labels.shape != logits.shape[:1]:
        raise ValueError(f"labels must be [batch]={logits.shape[0]}, got shape {tuple(labels.shape)}")
    if probs is not None and probs.shape != logits.shape:
        raise ValueError(f"{name} must have the logits' shape {tuple(logits.shape)}, got {tuple(probs.shape)}")


def _gold(probs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return probs.gather(1, labels.long().unsqueeze(1)).squeeze(1)


def erm_loss(logits: torch.Tensor, labels: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Plain cross-entropy."""
    _check(logits, labels)
    return F.cross_entropy(logits, labels.long(), reduction=reduction)


def poe_loss(logits: torch.Tensor, bias_probs: torch.Tensor, labels: torch.Tensor,
             reduction: str = "mean") -> torch.Tensor:
    """Product of experts: ``CE(log_softmax(z_m) + log p_b, y)``; ``p_b`` is detached and clamped at 1e-12."""
    _check(logits, labels, bias_probs)
    log_pb = torch.log(bias_probs.detach().to(logits.dtype).clamp_min(_EPS))
    combined = F.log_softmax(logits, dim=-1) + log_pb
    return F.cross_entropy(combined, labels.long(), reduction=reduction)


def reweight_loss(logits: torch.Tensor, bias_probs: torch.Tensor, labels: torch.Tensor,
                  normalize: str = "batch", reduction: str = "mean") -> torch.Tensor:
    """Example reweighting, ``w_i = 1 - p_b(y_i)``.

    ``normalize="batch"`` (default): ``sum_i w_i CE_i / B``. ``normalize="weights"``:
    ``sum_i w_i CE_i / sum_i w_i`` (falls back to ``/B`` if all weights are 0). ``reduction="none"``
    returns the unnormalised ``w_i CE_i``.
    """
    _check(logits, labels, bias_probs)
    weights = 1.0 - _gold(bias_probs.detach().to(logits.dtype), labels)
    per = weights * F.cross_entropy(logits, labels.long(), reduction="none")
    if reduction == "none":
        return per
    if reduction == "sum":
        return per.sum()
    if reduction != "mean":
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    if normalize == "batch":
        return per.mean()
    if normalize == "weights":
        total = weights.sum()
        return per.sum() / total if float(total) > 0 else per.mean()
    raise ValueError(f"normalize must be 'batch' or 'weights', got {normalize!r}")


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """``-sum_j targets_j log softmax(logits)_j`` per example."""
    _check(logits, probs=targets, name="targets")
    per = -(targets.to(logits.dtype) * F.log_softmax(logits, dim=-1)).sum(-1)
    return _reduce(per, reduction)


def conf_reg_targets(teacher_probs: torch.Tensor, bias_probs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Utama et al. (2020) scaled teacher targets: ``p_t ** (1 - p_b(y))``, renormalised per row."""
    _check(teacher_probs, labels, bias_probs)
    exponent = (1.0 - _gold(bias_probs.detach().to(teacher_probs.dtype), labels)).unsqueeze(1)
    # Work in log space: p ** e = exp(e * log p); softmax renormalises.
    log_pt = torch.log(teacher_probs.detach().clamp_min(_EPS))
    return torch.softmax(exponent * log_pt, dim=-1)


def conf_reg_loss(logits: torch.Tensor, teacher_probs: torch.Tensor, bias_probs: torch.Tensor,
                  labels: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Confidence regularisation: CE of the main model against :func:`conf_reg_targets`.

    ``teacher_probs`` are the probabilities (not logits) of the teacher, usually an ERM-trained model of the
    same architecture (Utama et al. 2020 self-distil from the biased model).
    """
    _check(logits, labels, bias_probs)
    targets = conf_reg_targets(teacher_probs.to(logits.dtype), bias_probs, labels)
    return soft_cross_entropy(logits, targets, reduction=reduction)


def focal_loss(logits: torch.Tensor, bias_probs: torch.Tensor, labels: torch.Tensor, gamma: float = 2.0,
               reduction: str = "mean") -> torch.Tensor:
    """Debiased focal loss ``-(1 - p_b(y))^gamma log p_m(y)`` (Karimi Mahabadi et al. 2020)."""
    _check(logits, labels, bias_probs)
    if gamma < 0:
        raise ValueError(f"gamma must be >= 0, got {gamma}")
    weights = (1.0 - _gold(bias_probs.detach().to(logits.dtype), labels)).clamp_min(0.0) ** gamma
    per = weights * F.cross_entropy(logits, labels.long(), reduction="none")
    return _reduce(per, reduction)


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor | None = None,
            temperature: float = 1.0, alpha: float = 0.5, reduction: str = "mean") -> torch.Tensor:
    """Hinton KD: ``alpha * T^2 * KL(softmax(z_t/T) || softmax(z_s/T)) + (1 - alpha) * CE(z_s, y)``.

    ``alpha`` weights the KL (distillation) term. ``labels`` may be None only when ``alpha == 1``.
    The teacher logits are detached. ``reduction="mean"`` averages the per-example KL over the batch
    ("batchmean"), like the CE term.
    """
    _check(student_logits, labels, teacher_logits, name="teacher_logits")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    T = float(temperature)
    log_ps = F.log_softmax(student_logits / T, dim=-1)
    log_pt = F.log_softmax(teacher_logits.detach().to(student_logits.dtype) / T, dim=-1)
    kl = (log_pt.exp() * (log_pt - log_ps)).sum(-1)
    per = alpha * T * T * kl
    if alpha < 1.0:
        if labels is None:
            raise ValueError("labels are required when alpha < 1")
        per = per + (1.0 - alpha) * F.cross_entropy(student_logits, labels.long(), reduction="none")
    return _reduce(per, reduction)


def weighted_erm_loss(logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor, normalize: str = "batch",
                      reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy with given per-example weights ``w_i`` (group reweighting: ``w_i`` inversely
    proportional to the size of example i's group). ``normalize`` as in :func:`reweight_loss`:
    ``sum_i w_i CE_i / B`` ("batch") or ``/ sum_i w_i`` ("weights")."""
    _check(logits, labels)
    if weights.shape != labels.shape:
        raise ValueError(f"weights must be [batch]={labels.shape[0]}, got shape {tuple(weights.shape)}")
    w = weights.detach().to(logits.dtype)
    per = w * F.cross_entropy(logits, labels.long(), reduction="none")
    if reduction != "mean":
        return _reduce(per, reduction)
    if normalize == "batch":
        return per.mean()
    if normalize == "weights":
        total = w.sum()
        return per.sum() / total if float(total) > 0 else per.mean()
    raise ValueError(f"normalize must be 'batch' or 'weights', got {normalize!r}")


def group_losses(per_example: torch.Tensor, groups: torch.Tensor, n_groups: int) -> torch.Tensor:
    """``[n_groups]`` mean of ``per_example`` ``[batch]`` over each group's examples (0 where a group has none)."""
    if per_example.shape != groups.shape:
        raise ValueError(f"groups must be [batch]={per_example.shape[0]}, got shape {tuple(groups.shape)}")
    g = groups.long()
    if g.numel() and (int(g.min()) < 0 or int(g.max()) >= n_groups):
        raise ValueError(f"group indices must be in 0..{n_groups - 1}, got {g.min()}..{g.max()}")
    total = torch.zeros(n_groups, dtype=per_example.dtype, device=per_example.device).index_add(0, g, per_example)
    count = torch.bincount(g, minlength=n_groups).to(per_example.dtype)
    return total / count.clamp_min(1)


def dro_step(q: torch.Tensor, losses_g: torch.Tensor, eta: float) -> torch.Tensor:
    """One exponentiated-gradient step on the group weights: ``q exp(eta l) / sum(q exp(eta l))`` (``l``
    detached); computed in log space, so large ``eta * l`` does not overflow."""
    if eta < 0:
        raise ValueError(f"eta must be >= 0, got {eta}")
    logits = torch.log(q.clamp_min(_EPS)) + eta * losses_g.detach().to(q.dtype)
    return torch.softmax(logits, dim=0)


class GroupDRO:
    """Online group DRO (Sagawa et al. 2020): keeps the group weights ``q`` ``[n_groups]`` (uniform at first)
    and, per batch, updates them with :func:`dro_step` before returning ``sum_g q_g l_g``."""

    def __init__(self, n_groups: int, eta: float = 0.01) -> None:
        if n_groups < 1:
            raise ValueError(f"n_groups must be >= 1, got {n_groups}")
        if eta < 0:
            raise ValueError(f"eta must be >= 0, got {eta}")
        self.eta = float(eta)
        self.q = torch.full((n_groups,), 1.0 / n_groups, dtype=torch.float64)

    def __call__(self, logits: torch.Tensor, labels: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
        _check(logits, labels)
        per_group = group_losses(F.cross_entropy(logits, labels.long(), reduction="none"), groups, len(self.q))
        self.q = dro_step(self.q, per_group, self.eta)
        return (self.q.to(per_group.dtype) * per_group).sum()
