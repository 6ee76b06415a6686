"""Read, write and score HANS (McCoy et al. 2019) in its official tab-separated format.

File format: a header line, then one tab-separated line per example with the official columns
``HANS_COLUMNS``. Files written by ``write_hans`` add one trailing column, ``overlap``: a JSON list
giving, for each token of ``sentence2.split()``, the index in ``sentence1.split()`` of the premise
token it copies, or -1. Official readers index columns by header name, so the extra column is
harmless to them; ``load_hans`` reads both kinds identically (``overlap`` is absent for official files).

Scoring follows the official ``evaluate_heur_output.py``: a 3-way prediction is collapsed to
entailment vs non-entailment (neutral and contradiction -> non-entailment), then accuracy is
reported per heuristic x gold label (6 numbers), per subcase (30) and per template.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

HANS_COLUMNS: tuple[str, ...] = (
    "gold_label", "sentence1_binary_parse", "sentence2_binary_parse", "sentence1_parse",
    "sentence2_parse", "sentence1", "sentence2", "pairID", "heuristic", "subcase", "template")
ALIGN_COLUMN = "overlap"
HANS_LABELS: tuple[str, str] = ("entailment", "non-entailment")
_TO_BINARY = {"entailment": "entailment", "neutral": "non-entailment", "contradiction": "non-entailment",
              "non-entailment": "non-entailment"}


def load_hans(path: str | Path) -> list[dict]:
    """Examples {id, premise, hypothesis, label, heuristic, subcase, template, the four parses
    [, overlap]} from an official or ``write_hans`` file. Raises ValueError naming missing columns,
    or an unknown label with its line number."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    if not lines:
        raise ValueError(f"{path}: empty file (expected a header with columns {', '.join(HANS_COLUMNS)})")
    header = lines[0].rstrip("\r").split("\t")
    if len(header) == 1:
        start = lines[0][:40] + ("..." if len(lines[0]) > 40 else "")
        raise ValueError(f"{path}: not a HANS file: the first line is not a tab-separated header (it starts "
                         f"{start!r}; expected the columns {', '.join(HANS_COLUMNS)})")
    missing = [c for c in HANS_COLUMNS if c not in header]
    if missing:
        raise ValueError(f"{path}: missing HANS column(s): {', '.join(missing)} (found: {', '.join(header)})")
    col = {name: i for i, name in enumerate(header)}
    out = []
    for lineno, line in enumerate(lines[1:], start=2):
        line = line.rstrip("\r")
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) < len(header):
            raise ValueError(f"{path}:{lineno}: {len(parts)} fields, header has {len(header)}")
        row = {name: parts[i] for name, i in col.items()}
        if row["gold_label"] not in HANS_LABELS:
            raise ValueError(f"{path}:{lineno}: unknown label {row['gold_label']!r} (expected one of {HANS_LABELS})")
        ex = {"id": row["pairID"], "premise": row["sentence1"], "hypothesis": row["sentence2"],
              "label": row["gold_label"], "heuristic": row["heuristic"], "subcase": row["subcase"],
              "template": row["template"], "premise_parse": row["sentence1_parse"],
              "hypothesis_parse": row["sentence2_parse"], "premise_binary_parse": row["sentence1_binary_parse"],
              "hypothesis_binary_parse": row["sentence2_binary_parse"]}
        if ALIGN_COLUMN in col and row[ALIGN_COLUMN].strip():
            ex["overlap"] = json.loads(row[ALIGN_COLUMN])
        out.append(ex)
    return out


def write_hans(examples: Iterable[Mapping], path: str | Path) -> None:
    """Write examples in the official format; adds the trailing ``overlap`` column when any example has one.
    Missing parse fields are written as empty strings."""
    examples = list(examples)
    with_align = any("overlap" in e for e in examples)
    header = list(HANS_COLUMNS) + ([ALIGN_COLUMN] if with_align else [])
    rows = ["\t".join(header)]
    for e in examples:
        if e["label"] not in HANS_LABELS:
            raise ValueError(f"example {e.get('id')!r}: label {e['label']!r} is not one of {HANS_LABELS}")
        fields = [e["label"], e.get("premise_binary_parse", ""), e.get("hypothesis_binary_parse", ""),
                  e.get("premise_parse", ""), e.get("hypothesis_parse", ""), e["premise"], e["hypothesis"],
                  str(e["id"]), e["heuristic"], e["subcase"], e["template"]]
        if with_align:
            fields.append(json.dumps(e["overlap"]) if "overlap" in e else "")
        if any("\t" in f or "\n" in f for f in fields):
            raise ValueError(f"example {e.get('id')!r}: a field contains a tab or newline")
        rows.append("\t".join(fields))
    Path(path).write_text("\n".join(rows) + "\n", encoding="utf-8")


def to_binary(label: str) -> str:
    """Collapse a 3-way NLI label (or a HANS label) to entailment / non-entailment."""
    try:
        return _TO_BINARY[label]
    except KeyError:
        raise ValueError(f"unknown NLI label {label!r}; expected one of {sorted(_TO_BINARY)}") from None


def _pred_labels(examples: Sequence[Mapping], predictions, labels: Sequence[str] | None) -> list[str]:
    if isinstance(predictions, Mapping):
        missing = [e["id"] for e in examples if e["id"] not in predictions]
        if missing:
            raise ValueError(f"no prediction for {len(missing)} example(s), e.g. {missing[:3]}")
        predictions = [predictions[e["id"]] for e in examples]
    predictions = list(predictions)
    if len(predictions) != len(examples):
        raise ValueError(f"{len(predictions)} predictions for {len(examples)} examples")
    out = []
    for p in predictions:
        if not isinstance(p, str):
            if labels is None:
                raise ValueError("integer predictions need `labels` (the model's id -> label order)")
            p = labels[int(p)]
        out.append(to_binary(p))
    return out


def score_hans(examples: Sequence[Mapping], predictions, labels: Sequence[str] | None = None) -> dict:
    """Accuracy on HANS-format examples.

    ``predictions``: a sequence aligned with ``examples`` or a mapping id -> prediction; each a label
    string (3-way or binary) or a class index into ``labels`` (e.g. ``nli_gen.LABELS``).
    Returns {"overall", "by_heuristic_label": {heuristic: {gold label: acc}}, "by_subcase",
    "by_template", "n"}; accuracies are fractions in [0, 1].
    """
    preds = _pred_labels(examples, predictions, labels)
    hl: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    sub: dict[str, list[int]] = defaultdict(list)
    tmp: dict[str, list[int]] = defaultdict(list)
    for e, p in zip(examples, preds):
        ok = int(p == e["label"])
        hl[e["heuristic"]][e["label"]].append(ok)
        sub[e["subcase"]].append(ok)
        tmp[e["template"]].append(ok)
    mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
    return {
        "overall": mean([int(p == e["label"]) for e, p in zip(examples, preds)]) if preds else float("nan"),
        "by_heuristic_label": {h: {lab: mean(v) for lab, v in d.items()} for h, d in hl.items()},
        "by_subcase": {k: mean(v) for k, v in sub.items()},
        "by_template": {k: mean(v) for k, v in tmp.items()},
        "n": len(preds),
    }
