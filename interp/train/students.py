"""Student construction for BERT-family sequence classifiers.

Three ways to make a student from a teacher (``transformers`` ``*ForSequenceClassification`` whose encoder
layers live under ``<base>.encoder.layer.{i}`` — BERT, RoBERTa, ELECTRA, MiniLM):

- :func:`student_from_teacher_layers`: fewer layers, initialised by copying the teacher's embeddings, the
  chosen encoder layers (in the given order), the pooler and the classifier head (DistilBERT-style
  "take every other layer" init: ``[0, 2, 4]`` of a 6-layer teacher).
- :func:`random_student`: fewer and/or narrower layers (hidden size, heads, intermediate size), randomly
  initialised with the architecture's own ``_init_weights``; same vocabulary and labels as the teacher.
- :func:`make_student`: one entry point for a :class:`StudentSpec` (used by the trainer and the zoo).

:func:`check_compatible` (re-exported from :mod:`interp.compat`, its one home) raises a clear error when a
teacher and a student cannot be paired: different label orders (``config.id2label``), vocabulary sizes or
tokenizers.
"""
from __future__ import annotations

import copy
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import torch
from transformers import AutoModelForSequenceClassification, PretrainedConfig, PreTrainedModel

from interp.compat import check_compatible

__all__ = [
    "StudentSpec",
    "student_from_teacher_layers",
    "random_student",
    "make_student",
    "check_compatible",
    "encoder_layer_prefix",
    "num_layers",
]

_LAYER_RE = re.compile(r"^(.*?\bencoder\.layer\.)(\d+)(\..*)$")


@dataclass
class StudentSpec:
    """How to build a student. ``init``: ``"teacher_layers"`` (copy ``layers`` from the teacher) or
    ``"random"`` (random weights; ``num_layers`` and optional ``hidden_size`` / ``num_heads`` /
    ``intermediate_size``, which default to the teacher's). ``seed`` seeds random init."""

    init: str = "teacher_layers"
    layers: list[int] | None = field(default_factory=lambda: [0, 2, 4])
    num_layers: int | None = None
    hidden_size: int | None = None
    num_heads: int | None = None
    intermediate_size: int | None = None
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def num_layers(model_or_config) -> int:
    cfg = model_or_config.config if isinstance(model_or_config, PreTrainedModel) else model_or_config
    return int(cfg.num_hidden_layers)


def encoder_layer_prefix(model: PreTrainedModel) -> str:
    """The state-dict prefix of the encoder layers, e.g. ``"bert.encoder.layer."``."""
    for key in model.state_dict():
        m = _LAYER_RE.match(key)
        if m:
            return m.group(1)
    raise TypeError(
        f"{type(model).__name__} has no '<base>.encoder.layer.<i>' parameters; only BERT-family encoders "
        "(BERT, RoBERTa, ELECTRA, MiniLM) are supported for student construction")


def _new_model(config: PretrainedConfig, model_class, seed: int) -> PreTrainedModel:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = model_class(config)
    return model


def _model_class(teacher: PreTrainedModel):
    return type(teacher)


def student_from_teacher_layers(teacher: PreTrainedModel, layers: Sequence[int] = (0, 2, 4)) -> PreTrainedModel:
    """A ``len(layers)``-layer copy of ``teacher``: embeddings, the given encoder layers (student layer ``j``
    = teacher layer ``layers[j]``), pooler and classifier are copied exactly; nothing is random. Returned in
    eval mode."""
    layers = [int(i) for i in layers]
    n = num_layers(teacher)
    if not layers:
        raise ValueError("layers must name at least one teacher layer")
    bad = [i for i in layers if not 0 <= i < n]
    if bad:
        raise IndexError(f"teacher layer index out of range: {bad} (teacher has {n} layers, valid 0..{n - 1})")
    prefix = encoder_layer_prefix(teacher)
    config = copy.deepcopy(teacher.config)
    config.num_hidden_layers = len(layers)
    student = _new_model(config, _model_class(teacher), seed=0)
    sd = teacher.state_dict()
    new_sd = {}
    for key, value in sd.items():
        m = _LAYER_RE.match(key)
        if m and m.group(1) == prefix:
            continue
        new_sd[key] = value.detach().clone()
    for j, i in enumerate(layers):
        src = f"{prefix}{i}."
        for key, value in sd.items():
            if key.startswith(src):
                new_sd[f"{prefix}{j}." + key[len(src):]] = value.detach().clone()
    missing, unexpected = student.load_state_dict(new_sd, strict=False)
    missing = [k for k in missing if "position_ids" not in k]
    if missing or unexpected:
        raise RuntimeError(f"student state dict mismatch: missing={missing[:5]}, unexpected={unexpected[:5]}")
    student.config.kd_init = {"init": "teacher_layers", "layers": layers}
    return student.eval()  # like from_pretrained: ready to analyse; the trainer calls .train() itself


def random_student(teacher_or_config, num_layers: int | None = None, hidden_size: int | None = None,
                   num_heads: int | None = None, intermediate_size: int | None = None, seed: int = 0,
                   model_class=None) -> PreTrainedModel:
    """A randomly initialised student with the teacher's vocabulary, labels and architecture family.

    Unspecified sizes default to the teacher's. ``intermediate_size`` defaults to the teacher's ratio
    ``intermediate / hidden`` times the new hidden size. Returned in eval mode.
    """
    if isinstance(teacher_or_config, PreTrainedModel):
        base = teacher_or_config.config
        model_class = model_class or type(teacher_or_config)
    else:
        base = teacher_or_config
    config = copy.deepcopy(base)
    if num_layers is not None:
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        config.num_hidden_layers = int(num_layers)
    if hidden_size is not None:
        ratio = base.intermediate_size / base.hidden_size
        config.hidden_size = int(hidden_size)
        if intermediate_size is None:
            config.intermediate_size = int(round(ratio * hidden_size))
    if num_heads is not None:
        config.num_attention_heads = int(num_heads)
    if intermediate_size is not None:
        config.intermediate_size = int(intermediate_size)
    if config.hidden_size % config.num_attention_heads:
        raise ValueError(f"hidden_size {config.hidden_size} is not divisible by num_attention_heads "
                         f"{config.num_attention_heads}")
    if model_class is None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            student = AutoModelForSequenceClassification.from_config(config)
    else:
        student = _new_model(config, model_class, seed)
    student.config.kd_init = {"init": "random", "seed": int(seed)}
    return student.eval()  # like from_pretrained: ready to analyse; the trainer calls .train() itself


def make_student(teacher: PreTrainedModel, spec: StudentSpec | dict) -> PreTrainedModel:
    """Build a student from a :class:`StudentSpec` (or its dict form)."""
    if isinstance(spec, dict):
        spec = StudentSpec(**spec)
    if spec.init == "teacher_layers":
        if spec.hidden_size not in (None, teacher.config.hidden_size) or spec.num_heads not in (None, teacher.config.num_attention_heads):
            raise ValueError("init='teacher_layers' copies teacher weights, so hidden_size/num_heads must match the teacher; "
                             "use init='random' for a narrower student")
        return student_from_teacher_layers(teacher, spec.layers or [0, 2, 4])
    if spec.init == "random":
        n = spec.num_layers if spec.num_layers is not None else (len(spec.layers) if spec.layers else None)
        return random_student(teacher, num_layers=n, hidden_size=spec.hidden_size, num_heads=spec.num_heads,
                              intermediate_size=spec.intermediate_size, seed=spec.seed)
    raise ValueError(f"unknown student init {spec.init!r}; expected 'teacher_layers' or 'random'")
