"""Train once, save atomically, reuse: the trained-model cache.

:func:`train_and_save`: build -> train -> evaluate -> save (``save_pretrained`` + tokenizer +
``train_config.json``) atomically (temp folder in the same parent, then ``os.replace``). A completed folder
whose recorded config equals the requested one is reused, not retrained; a different config raises unless
``overwrite=True``. :func:`load_trained` and :func:`is_complete` read such folders.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from interp import provenance
from interp.loading import IMAGE_MODEL_TYPES  # trained and saved without a tokenizer
from interp.train.config import TrainConfig
from interp.train.loop import train_model

CONFIG_FILE = "train_config.json"


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
    import transformers as T

    from interp import lenet  # noqa: F401  (registers the LeNet model type with the Auto classes)

    path = Path(path)
    image = T.AutoConfig.from_pretrained(path).model_type in IMAGE_MODEL_TYPES
    cls = model_class or (T.AutoModelForImageClassification if image else T.AutoModelForSequenceClassification)
    model = cls.from_pretrained(path, attn_implementation="eager").eval()
    tok = None if image else T.AutoTokenizer.from_pretrained(path)
    rec = json.loads((path / CONFIG_FILE).read_text()) if (path / CONFIG_FILE).is_file() else {}
    return model, tok, rec


def _save_atomic(out_dir: Path, model, tokenizer, record: dict) -> None:
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".tmp-{out_dir.name}-"))
    try:
        model.save_pretrained(tmp)
        if tokenizer is not None:  # image models have none
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
                   dev_examples: Sequence[dict] | None = None, example_weights=None) -> Path:
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
                          progress=progress, desc=out_dir.name, num_threads=num_threads, dev_examples=dev_examples,
                          example_weights=example_weights)
    metrics = dict(evaluate(model, tokenizer)) if evaluate is not None else {}
    record = provenance.record(key, seed=config.seed, status="complete", history=history, metrics=metrics,
                               n_params=sum(p.numel() for p in model.parameters()))
    if overwrite and out_dir.exists():
        shutil.rmtree(out_dir)
    _save_atomic(out_dir, model, tokenizer, record)
    return out_dir
