"""Input checks for the CLI: every path, file and model is checked here, before any model is loaded,
and wrong input becomes a one-line `UserError` that says how to fix it."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from interp.errors import UserError

SUPPORTED_MODEL_TYPES = ("bert", "roberta", "distilbert", "vit")
MAKE_HANS = "make one with `interp data hans --out hans.txt`"


@dataclass(frozen=True)
class ModelInfo:
    """What a checkpoint folder's config.json says (read without loading weights)."""
    path: Path
    model_type: str
    n_layers: int


def model_info(path: str, role: str = "model", option: str | None = None) -> ModelInfo:
    """Check that `path` is a HuggingFace checkpoint folder of a supported family; no weights are read.
    Errors name `--<role>`, or `option` (e.g. a study file's key) when given."""
    name = option or f"--{role}"
    p = Path(path)
    if not p.exists():
        raise UserError(f"{name} {path}: no such folder (expected a HuggingFace checkpoint folder with config.json)")
    if not p.is_dir():
        raise UserError(f"{name} {path}: is a file; expected a HuggingFace checkpoint folder with config.json")
    cfg_path = p / "config.json"
    if not cfg_path.exists():
        raise UserError(f"{name} {path}: not a HuggingFace checkpoint folder (no config.json); save one with "
                        "model.save_pretrained(path) and tokenizer.save_pretrained(path)")
    try:
        cfg = json.loads(cfg_path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise UserError(f"{name} {path}: config.json is not valid JSON ({e})") from None
    mtype = str(cfg.get("model_type", ""))
    if mtype not in SUPPORTED_MODEL_TYPES:
        raise UserError(f"{name} {path}: model type {mtype or '(none)'!r} is not supported; kd-interp supports "
                        f"{', '.join(SUPPORTED_MODEL_TYPES)} classifiers")
    n_layers = cfg.get("num_hidden_layers", cfg.get("n_layers"))
    return ModelInfo(p, mtype, int(n_layers) if n_layers is not None else 0)


def load_model(path: str, role: str = "model", device: str = "auto", **kwargs: Any) -> Any:
    """`interp.subject.load_subject` on a checked folder; a model it refuses (architecture, tokenizer,
    device) becomes a UserError naming the option."""
    import interp.subject

    model_info(path, role)
    try:
        return interp.subject.load_subject(path, device=device, **kwargs)
    except (ValueError, TypeError, OSError, RuntimeError) as e:
        raise UserError(f"--{role} {path}: cannot be loaded: {e}") from e


def read_data(path: str, option: str = "--data") -> list[dict]:
    """Examples from a .jsonl file or a HANS .txt/.tsv file, with one-line errors."""
    from interp.datafiles import read_examples

    p = Path(path)
    if not p.is_file():
        raise UserError(f"{option} {path}: no such file" + ("" if p.suffix in (".jsonl", ".json") else f" ({MAKE_HANS})"))
    examples = _read_nonempty(read_examples, p, option, "")
    bad = next((i for i, ex in enumerate(examples, 1) if not isinstance(ex, dict)
                or not (("premise" in ex and "hypothesis" in ex) or "text" in ex)), None)
    if bad is not None:
        raise UserError(f"{option} {path}: example {bad} has neither premise/hypothesis nor text fields")
    for i, ex in enumerate(examples):
        ex.setdefault("id", str(i))
    return examples


def read_hans(path: str, option: str = "--data") -> list[dict]:
    """HANS-format examples (tab-separated, official columns); anything else is a one-line error."""
    from interp.data.hans import load_hans

    p = Path(path)
    if not p.is_file():
        raise UserError(f"{option} {path}: no such file ({MAKE_HANS})")
    if p.suffix in (".jsonl", ".json"):
        raise UserError(f"{option} {path}: needs a HANS tab-separated file (.txt/.tsv with the official "
                        f"columns), not JSON lines; {MAKE_HANS}")
    return _read_nonempty(load_hans, p, option, f" ({MAKE_HANS})")


def _read_nonempty(reader, p: Path, option: str, hint: str) -> list[dict]:
    """`reader(p)` with its parse errors and an empty file as one-line user errors."""
    try:
        examples = reader(p)
    except (ValueError, UnicodeDecodeError) as e:
        raise UserError(f"{option} {p}: {e}") from None
    if not examples:
        raise UserError(f"{option} {p}: no examples in the file{hint}")
    return examples


def require_labels(examples: list[dict], path: str, why: str) -> None:
    """Every example has an NLI or HANS label (entailment / non-entailment / neutral / contradiction)."""
    from interp.data.hans import to_binary

    for i, ex in enumerate(examples, 1):
        lab = ex.get("label", ex.get("gold_label"))
        try:
            to_binary(str(lab))
        except ValueError:
            raise UserError(f"--data {path}: {why} needs a label on every example; example {i} has "
                            f"{'none' if lab is None else repr(lab)} (expected entailment, non-entailment, "
                            f"neutral or contradiction; HANS files have one: {MAKE_HANS})") from None


def read_pairs(path: str) -> tuple[list[dict], list[dict]]:
    """Clean and corrupted examples from a .jsonl file of {"clean": {...}, "corrupt": {...}} lines."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"--pairs {path}: no such file (expected hans:break_overlap, hans:swap or a .jsonl file "
                        "of {\"clean\": {...}, \"corrupt\": {...}} lines)")
    clean, corrupt = [], []
    for lineno, line in enumerate(p.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise UserError(f"--pairs {path}: line {lineno}: not valid JSON ({e.msg})") from None
        if not isinstance(row, dict) or "clean" not in row or "corrupt" not in row:
            raise UserError(f"--pairs {path}: line {lineno} needs \"clean\" and \"corrupt\" keys")
        clean.append(row["clean"])
        corrupt.append(row["corrupt"])
    if not clean:
        from interp.contrast import _EMPTY
        raise UserError(f"--pairs {path}: " + _EMPTY.format(what="the file has no pairs"))
    return clean, corrupt


def check_out(path: str) -> Path:
    """An output folder: absent or a folder, not a file."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise UserError(f"--out {path}: is a file; give a folder")
    return p

