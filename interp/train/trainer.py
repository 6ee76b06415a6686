"""A small, fast CPU training loop for sequence classifiers, with debiasing and KD losses, and a cache.

- :class:`TrainConfig`: every knob (loss, optimiser, schedule, KD temperature/alpha, focal gamma, seed).
- :func:`encode`: tokenise once up front (no padding); :func:`iter_batches` pads each batch to its
  longest sequence (dynamic padding).
- :func:`predict_logits`: eval-mode logits for a list of examples (length-sorted batches, original order).
- :func:`train_model`: AdamW + linear warmup/decay + gradient clipping, a progress bar (line updates in logs); the model is in
  ``.train()`` mode while training and left in ``.eval()`` mode after. Losses: ``erm``, ``poe``,
  ``reweight``, ``focal`` (need ``bias_probs``), ``conf_reg`` (needs ``bias_probs`` and a teacher) and
  ``kd`` (needs a teacher). The teacher is frozen and deterministic (eval mode, fixed inputs), so its logits
  on the training set are computed **once** before training and reused every epoch.
- :func:`train_and_save`: build -> train -> evaluate -> save (``save_pretrained`` + tokenizer +
  ``train_config.json``) atomically (temp folder in the same parent, then ``os.replace``). A completed
  folder whose recorded config equals the requested one is reused, not retrained; a different config
  raises unless ``overwrite=True``.
- :func:`iterative_kd`: multi-round KD in the born-again sense (Furlanello et al. 2018): the student of
  round ``k`` is the teacher of round ``k + 1``; every round's student is built afresh by the same
  ``build_student`` (same architecture and initialisation), only the teacher changes. (The "teacher
  assistant" chain of shrinking sizes, Mirzadeh et al. 2020, is a different method and is not this.)
"""
from __future__ import annotations

import json
import math
import os
import random
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from interp import provenance
from interp.progress import bar as progress_bar
from interp.train import losses as L

__all__ = [
    "LOSSES",
    "TrainConfig",
    "Encoded",
    "seed_everything",
    "encode",
    "iter_batches",
    "predict_logits",
    "train_model",
    "train_and_save",
    "load_trained",
    "is_complete",
    "iterative_kd",
    "CONFIG_FILE",
]

LOSSES = ("erm", "poe", "reweight", "conf_reg", "focal", "kd")
NEEDS_BIAS = ("poe", "reweight", "conf_reg", "focal")
NEEDS_TEACHER = ("conf_reg", "kd")
CONFIG_FILE = "train_config.json"


@dataclass
class TrainConfig:
    """Training hyper-parameters. ``alpha`` weights the KD (KL) term: ``alpha=1`` is pure distillation."""

    loss: str = "erm"
    epochs: float = 2.0
    batch_size: int = 32
    lr: float = 5e-5
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    max_grad_norm: float = 1.0
    max_length: int = 48
    seed: int = 0
    temperature: float = 1.0
    alpha: float = 0.5
    gamma: float = 2.0
    reweight_normalize: str = "batch"
    eval_batch_size: int = 128
    freeze_word_embeddings: bool = False  # ~25% faster steps on CPU for MiniLM; the matrix stays the base model's
    eval_every: int = 0         # steps between dev evaluations (0: none); the curve goes into the history
    select_best: bool = False   # keep the checkpoint of best dev accuracy (needs dev data and eval_every)
    bias_anneal: float = 1.0    # PoE only: the bias log-probabilities are scaled from 1 down to this value

    def __post_init__(self):
        if self.loss not in LOSSES:
            raise ValueError(f"unknown loss {self.loss!r}; expected one of {LOSSES}")
        if self.epochs <= 0 or self.batch_size < 1 or self.lr <= 0:
            raise ValueError("epochs, batch_size and lr must be positive")
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {self.alpha}")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if self.select_best and self.eval_every <= 0:
            raise ValueError("select_best needs eval_every > 0 (and dev data) to know which checkpoint is best")
        if not 0.0 <= self.bias_anneal <= 1.0:
            raise ValueError(f"bias_anneal must be in [0, 1], got {self.bias_anneal}")

    def to_dict(self) -> dict:
        return asdict(self)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU) RNGs."""
    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.manual_seed(seed)


# --- data -------------------------------------------------------------------------------------
@dataclass
class Encoded:
    """Tokenised examples (unpadded id lists) and integer labels (``-1`` when absent)."""

    input_ids: list[list[int]]
    token_type_ids: list[list[int]] | None
    labels: torch.Tensor
    pad_id: int = 0

    def __len__(self) -> int:
        return len(self.input_ids)


def _label_ids(examples: Sequence[dict], label2id: dict[str, int] | None) -> torch.Tensor:
    out = []
    for ex in examples:
        y = ex.get("label")
        if y is None:
            out.append(-1)
        elif isinstance(y, (int, np.integer)):
            out.append(int(y))
        else:
            if not label2id or y not in label2id:
                raise KeyError(f"label {y!r} not in the model's label2id {label2id}; set config.id2label/label2id "
                               "to the data's label names")
            out.append(int(label2id[y]))
    return torch.tensor(out, dtype=torch.long)


def encode(tokenizer, examples: Sequence[dict], max_length: int = 48,
           label2id: dict[str, int] | None = None, with_labels: bool = True) -> Encoded:
    """Tokenise ``premise``/``hypothesis`` pairs (or ``text``) once, truncated to ``max_length``, unpadded.

    String labels are mapped with ``label2id``; ``with_labels=False`` ignores labels (all ``-1``)."""
    if examples and "premise" in examples[0]:
        enc = tokenizer([e["premise"] for e in examples], [e["hypothesis"] for e in examples],
                        truncation=True, max_length=max_length, padding=False)
    else:
        enc = tokenizer([e["text"] for e in examples], truncation=True, max_length=max_length, padding=False)
    tt = enc.get("token_type_ids")
    labels = _label_ids(examples, label2id) if with_labels else torch.full((len(examples),), -1, dtype=torch.long)
    return Encoded(list(enc["input_ids"]), list(tt) if tt is not None else None, labels,
                   pad_id=tokenizer.pad_token_id or 0)


def _collate(enc: Encoded, idx: Sequence[int]) -> dict[str, torch.Tensor]:
    n = max(len(enc.input_ids[i]) for i in idx)
    ids = torch.full((len(idx), n), enc.pad_id, dtype=torch.long)
    mask = torch.zeros((len(idx), n), dtype=torch.long)
    tt = torch.zeros((len(idx), n), dtype=torch.long) if enc.token_type_ids is not None else None
    for r, i in enumerate(idx):
        seq = enc.input_ids[i]
        ids[r, :len(seq)] = torch.tensor(seq)
        mask[r, :len(seq)] = 1
        if tt is not None:
            tt[r, :len(seq)] = torch.tensor(enc.token_type_ids[i])
    batch = {"input_ids": ids, "attention_mask": mask}
    if tt is not None:
        batch["token_type_ids"] = tt
    return batch


def iter_batches(enc: Encoded, batch_size: int, shuffle: bool = False, generator: torch.Generator | None = None,
                 by_length: bool = False) -> Iterable[tuple[torch.Tensor, dict[str, torch.Tensor]]]:
    """Yield ``(indices, padded batch)``. ``by_length`` sorts by length (inference only: less padding)."""
    n = len(enc)
    if shuffle:
        order = torch.randperm(n, generator=generator).tolist()
    elif by_length:
        order = sorted(range(n), key=lambda i: len(enc.input_ids[i]))
    else:
        order = list(range(n))
    for s in range(0, n, batch_size):
        idx = order[s:s + batch_size]
        yield torch.tensor(idx), _collate(enc, idx)


@torch.no_grad()
def predict_logits(model, tokenizer, examples: Sequence[dict] | Encoded, batch_size: int = 128,
                   max_length: int = 48) -> torch.Tensor:
    """Eval-mode float32 logits ``[n, n_labels]`` in the examples' order."""
    enc = examples if isinstance(examples, Encoded) else encode(tokenizer, examples, max_length, with_labels=False)
    was_training = model.training
    model.eval()
    out = None
    for idx, batch in iter_batches(enc, batch_size, by_length=True):
        logits = model(**batch).logits.float()
        if out is None:
            out = torch.empty((len(enc), logits.shape[-1]), dtype=torch.float32)
        out[idx] = logits
    if was_training:
        model.train()
    if out is None:
        return torch.empty((0, model.config.num_labels))
    return out


# --- training ---------------------------------------------------------------------------------
def _batch_loss(cfg: TrainConfig, logits, y, pb, t_logits, progress: float = 0.0) -> torch.Tensor:
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


def train_model(model, tokenizer, train_examples: Sequence[dict], config: TrainConfig, *,
                bias_probs: np.ndarray | torch.Tensor | None = None, teacher=None,
                teacher_logits: torch.Tensor | None = None, teacher_tokenizer=None,
                progress: bool | None = None, desc: str | None = None, num_threads: int | None = None,
                dev_examples: Sequence[dict] | None = None) -> dict[str, Any]:
    """Train ``model`` in place; returns a history dict. The model is left in eval mode.

    ``dev_examples`` (labelled, held out) with ``config.eval_every``: dev accuracy is recorded every
    ``eval_every`` steps and at the end (``history["curve"]``: step, mean training loss since the last
    point, dev accuracy); with ``config.select_best`` the weights of the best dev accuracy are restored
    at the end (the first best, so ties keep the earlier checkpoint).

    ``num_threads``: torch intra-op threads while training (restored after). On a shared, loaded CPU one
    thread is often faster than two (thread synchronisation), dramatically so for tiny models.

    ``bias_probs``: ``[n, n_labels]`` frozen bias-only probabilities per training example (label order of
    the model). ``teacher`` (a model) or precomputed ``teacher_logits`` ``[n, n_labels]`` for ``kd`` /
    ``conf_reg``.
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
                               progress=progress, desc=desc, dev_examples=dev_examples)
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
    decay, no_decay = [], []
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

    def evaluate_dev() -> None:
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
                                   t_logits[idx] if t_logits is not None else None, step / total)
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
                    evaluate_dev()
    finally:
        bar.close()
        model.eval()
    out = {"steps": total, "train_seconds": time.perf_counter() - t0, "loss_first": losses[0],
           "loss_last10": float(np.mean(losses[-10:])), "n_train": n}
    if curve:
        out["curve"] = curve
    if best is not None:
        model.load_state_dict(best[2])
        out.update(selected_step=best[1], selected_dev_acc=best[0])
    return out


# --- saving and caching -----------------------------------------------------------------------
def _normalise(obj: Any) -> Any:
    return json.loads(json.dumps(obj, sort_keys=True, default=str))


def is_complete(path: str | os.PathLike) -> bool:
    """True when ``path`` is a finished training folder (has ``train_config.json`` with status complete)."""
    f = Path(path) / CONFIG_FILE
    if not f.is_file():
        return False
    try:
        return json.loads(f.read_text()).get("status") == "complete"
    except (OSError, json.JSONDecodeError):
        return False


def load_trained(path: str | os.PathLike, model_class=None):
    """``(model, tokenizer, record)`` from a folder written by :func:`train_and_save` (model in eval mode)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    path = Path(path)
    cls = model_class or AutoModelForSequenceClassification
    model = cls.from_pretrained(path, attn_implementation="eager").eval()
    tok = AutoTokenizer.from_pretrained(path)
    rec = json.loads((path / CONFIG_FILE).read_text()) if (path / CONFIG_FILE).is_file() else {}
    return model, tok, rec


def _save_atomic(out_dir: Path, model, tokenizer, record: dict) -> None:
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".tmp-{out_dir.name}-"))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / CONFIG_FILE).write_text(json.dumps(record, indent=2, sort_keys=True, default=str) + "\n")
        if out_dir.exists() and not is_complete(out_dir):
            shutil.rmtree(out_dir)  # stale partial folder (not written by us: ours are atomic)
        try:
            os.replace(tmp, out_dir)
        except OSError:
            if is_complete(out_dir):  # another process finished the same job first: keep theirs
                shutil.rmtree(tmp, ignore_errors=True)
                return
            raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def train_and_save(out_dir: str | os.PathLike, build: Callable[[], tuple[Any, Any]], train_examples: Sequence[dict],
                   config: TrainConfig, *, bias_probs=None, teacher: str | os.PathLike | tuple | None = None,
                   evaluate: Callable[[Any, Any], dict] | None = None, extra: dict | None = None,
                   overwrite: bool = False, progress: bool | None = None, num_threads: int | None = None,
                   dev_examples: Sequence[dict] | None = None) -> Path:
    """Train a model and save it atomically to ``out_dir``, or reuse a completed folder (cache).

    ``build()`` returns ``(model, tokenizer)`` (called only when training is needed). ``teacher`` is a path
    to a trained folder or a ``(model, tokenizer)`` pair. ``evaluate(model, tokenizer) -> dict`` adds metrics.
    ``extra`` (JSON-able: data spec, student spec, teacher path...) is part of the cache key together
    with ``config``. Returns ``out_dir``.
    """
    out_dir = Path(out_dir)
    key = _normalise({"train": config.to_dict(), **(extra or {})})
    if is_complete(out_dir) and not overwrite:
        rec = json.loads((out_dir / CONFIG_FILE).read_text())
        if _normalise(rec.get("config")) == key:
            return out_dir
        raise ValueError(f"{out_dir} holds a model trained with a different config; pass overwrite=True or use "
                         f"another folder.\nstored: {rec.get('config')}\nrequested: {key}")
    model, tokenizer = build()
    t_model = t_tok = None
    if teacher is not None:
        if isinstance(teacher, (str, os.PathLike)):
            t_model, t_tok, _ = load_trained(teacher)
        else:
            t_model, t_tok = teacher
    history = train_model(model, tokenizer, train_examples, config, bias_probs=bias_probs, teacher=t_model,
                          teacher_tokenizer=t_tok if t_tok is not None and t_tok is not tokenizer else None,
                          progress=progress, desc=out_dir.name, num_threads=num_threads, dev_examples=dev_examples)
    metrics = dict(evaluate(model, tokenizer)) if evaluate is not None else {}
    record = provenance.record(key, seed=config.seed, status="complete", history=history, metrics=metrics,
                               n_params=sum(p.numel() for p in model.parameters()))
    if overwrite and out_dir.exists():
        shutil.rmtree(out_dir)
    _save_atomic(out_dir, model, tokenizer, record)
    return out_dir


def iterative_kd(out_root: str | os.PathLike, teacher: str | os.PathLike, build_student: Callable[[], tuple[Any, Any]],
                 train_examples: Sequence[dict], config: TrainConfig, rounds: int, *, evaluate=None,
                 extra: dict | None = None, progress: bool | None = None, name: str = "round",
                 num_threads: int | None = None) -> list[Path]:
    """Born-again multi-round KD: round 1 distils ``teacher``; round ``k+1`` distils round ``k``'s student.

    Each round's student comes from ``build_student()`` (same architecture and init every round) and is
    saved to ``out_root/{name}{k}`` (cached like :func:`train_and_save`; the teacher is recorded relative
    to ``out_root``). Returns the round folders.
    """
    if config.loss != "kd":
        raise ValueError("iterative_kd needs config.loss == 'kd'")
    if rounds < 1:
        raise ValueError("rounds must be >= 1")
    out_root = Path(out_root)
    paths: list[Path] = []
    current = Path(teacher)
    for k in range(1, rounds + 1):
        # the teacher relative to out_root ("round1", "../teacher"): the cache survives moving the tree
        ref = os.path.relpath(current.resolve(), out_root.resolve())
        ex = {**(extra or {}), "teacher": ref, "round": k, "rounds_kind": "born_again"}
        p = train_and_save(out_root / f"{name}{k}", build_student, train_examples, config, teacher=current,
                           evaluate=evaluate, extra=ex, progress=progress, num_threads=num_threads)
        paths.append(p)
        current = p
    return paths
