"""The training loop: AdamW + linear warmup/decay + gradient clipping, debiasing and KD losses.

:func:`train_model` trains in place with a progress bar (line updates in logs); the model is in ``.train()``
mode while training and left in ``.eval()`` mode after. Losses: ``erm``, ``poe``, ``reweight``, ``focal``
(need ``bias_probs``), ``conf_reg`` (needs ``bias_probs`` and a teacher), ``kd`` (needs a teacher) and
``group_reweight`` (needs ``example_weights``) and ``group_dro`` (Sagawa et al. 2020; every example needs a
``"group"``, as ``ImageSet.examples()`` give). Image examples (``pixel_values``) take the same path. The
teacher is frozen and deterministic (eval mode, fixed inputs), so its logits on the training set are
computed **once** before training and reused every epoch.
"""
from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from interp.progress import bar as progress_bar
from interp.train import losses as L
from interp.train.batching import Encoded, encode, iter_batches, predict_logits
from interp.train.config import NEEDS_BIAS, NEEDS_GROUPS, NEEDS_TEACHER, NEEDS_WEIGHTS, TrainConfig, seed_everything
from interp.train.images import EncodedImages


def _batch_loss(cfg: TrainConfig, logits, y, pb, t_logits, progress: float = 0.0, w=None, g=None,
                dro: L.GroupDRO | None = None) -> torch.Tensor:
    if cfg.loss == "group_dro" and dro is not None:
        return dro(logits, y, g)
    if cfg.loss == "group_reweight":
        return L.weighted_erm_loss(logits, y, w, normalize=cfg.reweight_normalize)
    if cfg.loss == "erm":
        return L.erm_loss(logits, y)
    if cfg.loss == "poe":
        if cfg.bias_anneal < 1.0:  # annealed PoE (Utama et al. 2020): p_b^lam renormalised, lam 1 -> bias_anneal
            lam = 1.0 - (1.0 - cfg.bias_anneal) * progress
            pb = torch.softmax(lam * torch.log(pb.clamp_min(1e-12)), dim=-1)
        return L.poe_loss(logits, pb, y)
    if cfg.loss == "reweight":
        return L.reweight_loss(logits, pb, y, normalize=cfg.reweight_normalize)
    if cfg.loss == "focal":
        return L.focal_loss(logits, pb, y, gamma=cfg.gamma)
    if cfg.loss == "conf_reg":
        return L.conf_reg_loss(logits, torch.softmax(t_logits, -1), pb, y)
    if cfg.loss == "kd":
        return L.kd_loss(logits, t_logits, y if cfg.alpha < 1 else None, temperature=cfg.temperature, alpha=cfg.alpha)
    raise ValueError(cfg.loss)  # pragma: no cover


def example_groups(examples: Sequence[dict]) -> tuple[torch.Tensor, list]:
    """``[n]`` group indices from each example's ``"group"`` (sorted distinct values: index order) and the values."""
    if any("group" not in e for e in examples):
        raise ValueError("loss 'group_dro' needs a 'group' in every training example (ImageSet.examples() carry one).")
    values, inverse = np.unique(np.asarray([e["group"] for e in examples]), return_inverse=True)
    return torch.as_tensor(inverse.reshape(-1), dtype=torch.long), values.tolist()


def train_model(model, tokenizer, train_examples: Sequence[dict], config: TrainConfig, *,
                bias_probs: np.ndarray | torch.Tensor | None = None, teacher=None,
                teacher_logits: torch.Tensor | None = None, teacher_tokenizer=None,
                progress: bool | None = None, desc: str | None = None, num_threads: int | None = None,
                dev_examples: Sequence[dict] | None = None,
                example_weights: np.ndarray | torch.Tensor | None = None) -> dict[str, Any]:
    """Train ``model`` in place; returns a history dict. The model is left in eval mode.

    ``dev_examples`` (labelled, held out) with ``config.eval_every``: dev accuracy is recorded every
    ``eval_every`` steps and at the end (``history["curve"]``: step, mean training loss since the last
    point, dev accuracy); with ``config.select_best`` the weights of the best dev accuracy are restored
    at the end (the first best, so ties keep the earlier checkpoint).

    ``num_threads``: torch intra-op threads while training (restored after). On a shared, loaded CPU one
    thread is often faster than two (thread synchronisation), dramatically so for tiny models.

    ``bias_probs``: ``[n, n_labels]`` frozen bias-only probabilities per training example (label order of
    the model). ``teacher`` (a model) or precomputed ``teacher_logits`` ``[n, n_labels]`` for ``kd`` /
    ``conf_reg``. ``example_weights`` ``[n]``: per-example loss weights for ``group_reweight`` (e.g.
    ``interp.train.vision.group_weights``: every group weighs the same in total).
    """
    cfg = config
    n = len(train_examples)
    if n == 0:
        raise ValueError("no training examples")
    if num_threads:
        old_threads = torch.get_num_threads()
        torch.set_num_threads(num_threads)
        try:
            return train_model(model, tokenizer, train_examples, config, bias_probs=bias_probs, teacher=teacher,
                               teacher_logits=teacher_logits, teacher_tokenizer=teacher_tokenizer,
                               progress=progress, desc=desc, dev_examples=dev_examples,
                               example_weights=example_weights)
        finally:
            torch.set_num_threads(old_threads)
    seed_everything(cfg.seed)
    enc = encode(tokenizer, train_examples, cfg.max_length, model.config.label2id)
    if (enc.labels < 0).any() and not (cfg.loss == "kd" and cfg.alpha == 1.0):
        raise ValueError("training examples need labels")
    pb = None
    if cfg.loss in NEEDS_BIAS:
        if bias_probs is None:
            raise ValueError(f"loss {cfg.loss!r} needs bias_probs (frozen bias-only model probabilities)")
        pb = torch.as_tensor(np.asarray(bias_probs), dtype=torch.float32)
        if pb.shape != (n, model.config.num_labels):
            raise ValueError(f"bias_probs must be [{n}, {model.config.num_labels}], got {tuple(pb.shape)}")
    w = None
    if cfg.loss in NEEDS_WEIGHTS:
        if example_weights is None:
            raise ValueError(f"loss {cfg.loss!r} needs example_weights [n] (e.g. interp.train.vision.group_weights)")
        w = torch.as_tensor(np.asarray(example_weights), dtype=torch.float32)
        if w.shape != (n,) or not bool(torch.isfinite(w).all()) or bool((w < 0).any()):
            raise ValueError(f"example_weights must be [{n}] finite and >= 0, got shape {tuple(w.shape)}")
    g = dro = None
    if cfg.loss in NEEDS_GROUPS:
        g, group_values = example_groups(train_examples)
        dro = L.GroupDRO(len(group_values), cfg.dro_eta)
    t_logits = None
    if cfg.loss in NEEDS_TEACHER:
        if teacher_logits is None:
            if teacher is None:
                raise ValueError(f"loss {cfg.loss!r} needs a teacher (or teacher_logits)")
            from interp.compat import check_compatible
            check_compatible(teacher, model, teacher_tokenizer or tokenizer, tokenizer)
            t_enc = enc if teacher_tokenizer is None else encode(teacher_tokenizer, train_examples, cfg.max_length,
                                                                               with_labels=False)
            teacher_logits = predict_logits(teacher, teacher_tokenizer or tokenizer, t_enc, cfg.eval_batch_size)
        t_logits = torch.as_tensor(teacher_logits, dtype=torch.float32)
        if t_logits.shape != (n, model.config.num_labels):
            raise ValueError(f"teacher_logits must be [{n}, {model.config.num_labels}], got {tuple(t_logits.shape)}")

    steps_per_epoch = math.ceil(n / cfg.batch_size)
    total = max(1, int(round(cfg.epochs * steps_per_epoch)))
    warmup = int(cfg.warmup_ratio * total)
    if cfg.freeze_word_embeddings:
        model.get_input_embeddings().weight.requires_grad_(False)
    decay: list[torch.nn.Parameter] = []
    no_decay: list[torch.nn.Parameter] = []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if p.dim() < 2 or "LayerNorm" in name or "layer_norm" in name else decay).append(p)
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr)

    def lr_lambda(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        return max(0.0, (total - step) / max(1, total - warmup))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda)
    gen = torch.Generator().manual_seed(cfg.seed)
    if cfg.select_best and not dev_examples:
        raise ValueError("select_best needs dev_examples: a held-out, labelled split to choose the checkpoint on")
    dev = encode(tokenizer, dev_examples, cfg.max_length, model.config.label2id) if dev_examples else None
    curve: list[dict] = []
    best: tuple[float, int, dict] | None = None

    def evaluate_dev(dev: Encoded | EncodedImages) -> None:
        nonlocal best
        acc = float((predict_logits(model, tokenizer, dev, cfg.eval_batch_size).argmax(-1) == dev.labels)
                    .double().mean())
        since = losses[(curve[-1]["step"] if curve else 0):]
        curve.append({"step": step, "loss": float(np.mean(since)) if since else float("nan"), "dev_acc": acc})
        if cfg.select_best and (best is None or acc > best[0]):
            best = (acc, step, {k: v.detach().clone() for k, v in model.state_dict().items()})
        model.train()

    model.train()
    losses: list[float] = []
    step = 0
    t0 = time.perf_counter()
    bar = progress_bar(total=total, desc=desc or f"train[{cfg.loss}]", disable=progress is False)
    try:
        while step < total:
            for idx, batch in iter_batches(enc, cfg.batch_size, shuffle=True, generator=gen):
                if step >= total:
                    break
                logits = model(**batch).logits
                y = enc.labels[idx]
                loss = _batch_loss(cfg, logits, y, pb[idx] if pb is not None else None,
                                   t_logits[idx] if t_logits is not None else None, step / total,
                                   w[idx] if w is not None else None, g[idx] if g is not None else None, dro)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.max_grad_norm:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
                opt.step()
                sched.step()
                losses.append(float(loss.detach()))
                step += 1
                bar.update(1)
                if step % 10 == 0:
                    bar.set_postfix(loss=f"{np.mean(losses[-10:]):.3f}")
                if dev is not None and cfg.eval_every and (step % cfg.eval_every == 0 or step == total):
                    evaluate_dev(dev)
    finally:
        bar.close()
        model.eval()
    out: dict[str, Any] = {"steps": total, "train_seconds": time.perf_counter() - t0, "loss_first": losses[0],
           "loss_last10": float(np.mean(losses[-10:])), "n_train": n}
    if dro is not None:  # the final group weights, by group value
        out["dro_q"] = dict(zip(map(str, group_values), dro.q.tolist()))
    if curve:
        out["curve"] = curve
    if best is not None:
        model.load_state_dict(best[2])
        out.update(selected_step=best[1], selected_dev_acc=best[0])
    return out
