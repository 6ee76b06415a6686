"""Checks of a study (`interp.study`) against its files, before any model weights are read: checkpoint
folders (config.json, tokenizers, label orders, architectures of references, layer maps in range) and
the data file. Each failure is one `UserError` naming the study key and the fix."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from interp.errors import UserError
from interp.study import Study


@dataclass(frozen=True)
class FolderInfo:
    """What a checkpoint folder's config.json and tokenizer say."""

    path: str
    model_type: str
    n_layers: int
    shape: tuple
    labels: tuple[str, ...]
    vocab: dict | None


def folder_info(path: str, key: str, where: str) -> FolderInfo:
    """config.json and tokenizer of the folder of models.<key>; a UserError naming the key otherwise."""
    from interp.commands._inputs import model_info
    from interp.loading import NLI_LABELS

    info = model_info(path, option=f"{where}: models.{key} =")
    if info.model_type == "vit":
        raise UserError(f"{where}: models.{key} = {path}: a ViT reads images; a study runs on NLI text "
                        "(BERT, RoBERTa or DistilBERT classifiers)")
    cfg = json.loads((Path(path) / "config.json").read_text())
    if any(a.endswith("ForSequenceClassification") for a in (cfg.get("architectures") or [])):
        id2label = cfg.get("id2label") or {}
        labels = tuple(str(id2label[k]) for k in sorted(id2label, key=int))
    else:  # a bare encoder gets a new NLI head in this order (interp.loading.load_folder)
        labels = tuple(NLI_LABELS)
    if "entailment" not in [x.strip().lower() for x in labels]:
        raise UserError(f"{where}: models.{key} = {path}: its labels {list(labels)} have no \"entailment\"; HANS "
                        "needs an NLI classifier (set id2label in config.json to the label names)")
    shape = tuple(cfg.get(k) for k in ("model_type", "num_hidden_layers", "n_layers", "hidden_size", "dim",
                                       "num_attention_heads", "n_heads", "intermediate_size", "hidden_dim"))
    return FolderInfo(path, info.model_type, info.n_layers, shape, labels, _vocab(path, key, where))


def _vocab(path: str, key: str, where: str) -> dict:
    import transformers as T

    p = Path(path)
    if not any((p / f).exists() for f in ("tokenizer_config.json", "vocab.txt", "tokenizer.json", "vocab.json")):
        raise UserError(f"{where}: models.{key} = {path}: no tokenizer in the folder; save one next to the model "
                        "with tokenizer.save_pretrained(folder)")
    try:
        return T.AutoTokenizer.from_pretrained(p, local_files_only=True).get_vocab()
    except (OSError, ValueError) as e:
        raise UserError(f"{where}: models.{key} = {path}: the tokenizer cannot be read ({e})") from None


def check_folders(study: Study, paths: dict[str, str]) -> dict[str, FolderInfo]:
    """Every pair's folders against each other: same tokenizer and label order, references of the
    student's architecture, layer maps in range. `paths`: model name -> folder (zoo models resolved)."""
    from interp.metrics import check_label_order

    where = study.where()
    infos = {name: folder_info(paths[name], name, where) for name in study.model_names()}
    for p in study.pairs:
        label = f"[[pair]] {p.name!r}"
        t, s = infos[p.teacher], infos[p.student]
        others = [("teacher", p.teacher, t)] + ([("reference", p.reference, infos[p.reference])] if p.reference else [])
        for role, name, o in others:
            if o.vocab != s.vocab:
                raise UserError(f"{where}: {label}: {role} {name!r} and student {p.student!r} use different tokenizers "
                                "(vocabularies differ), so positions and attention cannot be compared: save the "
                                f"{role}'s tokenizer with the student (tokenizer.save_pretrained)")
            try:
                check_label_order(o.labels, s.labels, names=(f"{role} {name!r}", f"student {p.student!r}"))
            except ValueError as e:
                raise UserError(f"{where}: {label}: {e}; make both config.json id2label orders agree (and the "
                                "classifier rows with them)") from None
        if p.reference:
            r = infos[p.reference]
            if r.shape != s.shape:
                raise UserError(f"{where}: {label}: reference {p.reference!r} has another architecture than student "
                                f"{p.student!r} (config {r.shape} vs {s.shape}); a reference must be a student of the "
                                "same shape (e.g. the no-KD student or the student at initialisation)")
        if p.layer_map is not None:
            bad = [(k, v) for k, v in p.layer_map.items() if not (0 <= k < s.n_layers and 0 <= v < t.n_layers)]
            if bad:
                raise UserError(f"{where}: {label} layer-map: entries {bad} are out of range (student layers "
                                f"0..{s.n_layers - 1}, teacher layers 0..{t.n_layers - 1})")
    return infos


def check_data_source(study: Study) -> None:
    """The data file exists and has a known format (read in full by `interp.study_run.load_examples`)."""
    if study.data_source == "generate":
        return
    p = Path(study.data_source)
    if not p.is_file():
        raise UserError(f"{study.where()}: data.source = {str(p)!r}: no such file (a HANS .txt/.tsv, e.g. the official "
                        "heuristics_evaluation_set.txt or `interp data hans --out hans.txt`, or a .jsonl of "
                        "premise/hypothesis/label lines; or source = \"generate\")")
    if p.suffix not in (".txt", ".tsv", ".jsonl", ".json"):
        raise UserError(f"{study.where()}: data.source = {str(p)!r}: unknown format {p.suffix or '(none)'!r}; use a "
                        "HANS .txt/.tsv or a .jsonl file")
