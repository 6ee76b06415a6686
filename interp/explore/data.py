"""The explorer's data model: one JSON-ready dict with everything the page shows.

`gather` reads what a results folder of `interp compare` already holds (head map, head-by-head
effects, activation and weight patching against the teacher) and, given the two models, computes the
rest: the chosen HANS examples with their tokens, both models' attention patterns and metric on each,
the CKA grid, both layer x head activation-patching maps and both edge-level circuits. A part that
can be neither read nor computed is listed in `missing` with the reason and the command that computes
it; the page shows that note in its panel.

Schema (version 1), every key always present (None when missing):
  teacher / student        {"name", "n_layers", "n_heads"}
  layer_map                {student layer (str): teacher layer}
  head_map                 [{"student": [l, h], "teacher": [l, h] | None, "score", "flagged", "dead"}]
  examples                 [{"id", "premise", "hypothesis", "subcase", "heuristic", "label", "tokens",
                             "sep" (index of the first [SEP]), "metric": {"teacher", "student"}}]
  attention                {"teacher" | "student": [per example: base64 of uint8 [L, H, n, n] (p * 255)]}
  cka                      {"grid": [teacher layer][student layer], "debiased", "n"}
  patching                 {"teacher" | "student": {"scores": [l][h], "unit", "no_signal", "signal"}}
  circuits                 {"teacher" | "student": {"edges": [[edge, score]], "no_signal", "signal",
                             "faithfulness", "faithfulness_ci95", "n_candidates"}}
  head_by_head             rows of `interp.compare.head_by_head` (student head "l.h", total/direct effects)
  attribution              {"cross" | "cross_direct" | "weight": {"l.h": {"share", "ci95", "no_signal",
                             "delta", "delta_ci95"}}, "gap": {...}}  (student head -> share of the gap)
  missing                  {part: {"why", "command"}}
"""
from __future__ import annotations

import base64
import json
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

SCHEMA = 1
PARTS = ("head_map", "examples", "attention", "cka", "patching", "circuits", "head_by_head", "attribution")
KINDS = ("q", "k", "v", "in")


def _clean(x: Any) -> Any:
    """JSON-safe copy: NaN/inf -> None, tuples -> lists, numpy scalars -> Python."""
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, (np.floating, float)):
        x = float(x)
        return x if math.isfinite(x) else None
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.ndarray):
        return _clean(x.tolist())
    return x


def encode_attention(p: np.ndarray) -> str:
    """[L, H, n, n] probabilities -> base64 of uint8 (p * 255, rounded)."""
    q = np.clip(np.rint(np.asarray(p, dtype=np.float64) * 255), 0, 255).astype(np.uint8)
    return base64.b64encode(q.tobytes()).decode("ascii")


def decode_attention(s: str, n_layers: int, n_heads: int, n_tok: int) -> np.ndarray:
    """Inverse of `encode_attention` (to 1/255)."""
    q = np.frombuffer(base64.b64decode(s), dtype=np.uint8)
    return q.reshape(n_layers, n_heads, n_tok, n_tok).astype(np.float64) / 255


# --- reading a results folder ---------------------------------------------------------------------
def _head_key(component: str) -> str | None:
    """'head 1.2<-T1.2' -> '1.2'; other components -> None."""
    m = re.match(r"head (\d+)\.(\d+)<-", component)
    return f"{m.group(1)}.{m.group(2)}" if m else None


def _shares(rows: Sequence[dict]) -> dict[str, dict]:
    out = {}
    for r in rows:
        key = _head_key(r["component"])
        if key is not None:
            out[key] = {"share": r.get("restored"), "ci95": r.get("ci95"), "no_signal": bool(r.get("no_signal")),
                        "delta": r.get("delta"), "delta_ci95": r.get("delta_ci95")}
    return out


def attribution_from_results(attr: dict) -> dict:
    """Per student head, the share of the teacher-student margin gap closed by activation patching
    (total and direct) and by weight patching (when run)."""
    out: dict[str, Any] = {"cross": _shares(attr.get("margin", [])),
                           "cross_direct": _shares(attr.get("margin_direct", [])),
                           "weight": None, "weight_skipped": None, "gap": None}
    w = attr.get("weight_teacher", {})
    if "margin" in w:
        out["weight"] = _shares(w["margin"])
    else:
        out["weight_skipped"] = w.get("skipped", "not in the results")
    rows = attr.get("margin") or []
    if rows:
        g = rows[0]
        out["gap"] = {"teacher_minus_student": g.get("gap_teacher_minus_student"), "ci95": g.get("gap_ci95"),
                      "significant": g.get("gap_significant")}
    return out


def read_results(results: str | Path) -> dict | None:
    """results.json's `results` of an `interp compare` folder, or None when there is none."""
    path = Path(results) / "results.json"
    if not path.exists():
        return None
    return json.loads(path.read_text())["results"]


# --- computing from the models --------------------------------------------------------------------
def pick_examples(n: int, seed: int = 0) -> list[dict]:
    """`n` examples of our HANS generator spread over the 30 subcases (round robin), seeded."""
    from interp.data.hans_gen import generate_hans

    per = max(1, -(-n // 30))
    by_sub: dict[str, list[dict]] = {}
    for ex in generate_hans(per, seed=seed):
        by_sub.setdefault(ex["subcase"], []).append(ex)
    out: list[dict] = []
    for i in range(per):
        for sub in by_sub:
            if len(out) < n and i < len(by_sub[sub]):
                out.append(by_sub[sub][i])
    return out


def default_metric(labels: Sequence[str]) -> Any:
    """The entailment margin of NLI models; the log-odds of label 0 otherwise (as make_contrast's default)."""
    from interp.compare import entailment_margin
    from interp.contrast import LogOdds

    return entailment_margin(labels) if "entailment" in [str(x).lower() for x in labels] else LogOdds(0)


def examples_and_attention(teacher: Any, student: Any, examples: Sequence[dict]) -> tuple[list[dict], dict]:
    """Tokens, both models' entailment margin and attention patterns for each example (one at a time,
    trimmed to its real tokens)."""
    margin = default_metric(teacher.labels)
    exs: list[dict] = []
    att: dict[str, list[str]] = {"teacher": [], "student": []}
    for ex in examples:
        if "pixel_values" in ex:  # an image: [CLS] and its patches in row-major order
            n = int(engine_positions(teacher, ex))
            tokens, sep = ["[CLS]"] + [f"patch{i}" for i in range(n - 1)], n - 1
            ex = {"premise": f"image {ex.get('id')}", "hypothesis": "", **ex}
        else:
            ids = teacher.tokenize([ex])["input_ids"][0].tolist()
            tokens = teacher.tokenizer.convert_ids_to_tokens(ids)
            sep = tokens.index(teacher.tokenizer.sep_token) if teacher.tokenizer.sep_token in tokens else len(tokens) - 1
        metric = {}
        for role, subject in (("teacher", teacher), ("student", student)):
            logits, cache = subject.run([ex], read="blocks.*.attn.hook_pattern")
            metric[role] = float(margin(logits)[0])
            p = np.stack([cache["pattern", l][0].float().cpu().numpy() for l in range(subject.n_layers)])
            att[role].append(encode_attention(p[:, :, : len(tokens), : len(tokens)]))
        exs.append({"id": ex.get("id"), "premise": ex["premise"], "hypothesis": ex["hypothesis"],  # images: a label
                    "subcase": ex.get("subcase"), "heuristic": ex.get("heuristic"), "label": ex.get("label"),
                    "tokens": tokens, "sep": sep, "metric": metric})
    return exs, att


def engine_positions(subject: Any, example: dict) -> int:
    """Positions one example has inside the layers (a ViT image: [CLS] + patches)."""
    import torch

    from interp.engine import layer_inputs

    with torch.no_grad():
        return int(layer_inputs(subject, subject.tokenize([example]))[0].shape[1])


def cka_part(teacher: Any, student: Any, examples: Sequence[dict]) -> dict:
    """Debiased linear CKA of mean-pooled layer outputs, teacher layer x student layer."""
    from interp.capture import capture
    from interp.cka import cka_grid

    site = "blocks.*.hook_resid_post"
    ct = capture(teacher, examples, site, pool="mean", progress=False)
    cs = capture(student, examples, site, pool="mean", progress=False)
    grid = cka_grid(ct, cs, debiased=True)
    return {"grid": np.asarray(grid.grid).tolist(), "debiased": True, "n": len(examples),
            "site": "hook_resid_post, mean over tokens"}


def contrast_pairs(tokenizer: Any, n_pairs: int, seed: int = 0) -> tuple[list[dict], list[dict]]:
    """HANS clean/corrupted pairs (overlap broken, same token lengths) for patching and circuits."""
    from interp.contrast import hans_pairs

    return hans_pairs(n_pairs, seed=seed, tokenizer=tokenizer)


def patching_part(subject: Any, contrast: Any) -> dict:
    """Layer x head activation patching (denoising) of one model."""
    from interp.patching import patch

    r = patch(subject, contrast, "head", allow_no_signal=True)
    values = r.raw - r.corrupt_metric if r.no_signal else r.scores
    return {"scores": values.tolist(), "no_signal": r.no_signal, "signal": r.signal,
            "unit": "raw metric change (no signal)" if r.no_signal else "share of the clean - corrupted gap"}


def circuit_part(circuit: Any) -> dict:
    """The drawn part of an edge-level Circuit: its pruned edges with scores, and the guard's verdict."""
    m = circuit.metadata
    return {"edges": [[e, circuit.scores[e]] for e in circuit.edges], "no_signal": bool(m.get("no_signal")),
            "signal": m.get("signal"), "faithfulness": m.get("faithfulness"),
            "faithfulness_ci95": m.get("faithfulness_ci95"), "completeness": m.get("completeness"),
            "n_candidates": m.get("n_candidates"), "metric": m.get("metric")}


def circuits_part(subject: Any, contrast: Any, cache_dir: Path | None, role: str) -> dict:
    """Edge-level AtP circuit of one model (allow_no_signal), cached as `cache_dir/circuit_{role}.json`
    under the model's fingerprint."""
    from interp.circuits import Circuit, discover

    path = cache_dir / f"circuit_{role}.json" if cache_dir is not None else None
    if path is not None and path.exists():
        c = Circuit.from_json(path)
        if c.metadata.get("fingerprint") == subject.fingerprint and c.metadata.get("n_pairs") == len(contrast):
            return circuit_part(c)
    c = discover(subject, contrast, level="edge", method="atp", allow_no_signal=True)
    if path is not None:
        c.to_json(path)
    return circuit_part(c)


def _load(model: Any, name: str, device: str) -> Any:
    from interp.subject import Subject, load_subject

    if model is None or isinstance(model, Subject):
        return model
    return load_subject(model, name=name, device=device)


def _info(subject: Any) -> dict:
    return {"name": subject.name, "n_layers": subject.n_layers, "n_heads": subject.n_heads}


def gather(teacher: Any = None, student: Any = None, results: str | Path | None = None, n_examples: int = 30,
           n_pairs: int = 32, seed: int = 0, device: str = "auto", circuits: bool = True,
           pairs: tuple[Sequence[dict], Sequence[dict]] | None = None,
           examples: Sequence[dict] | None = None) -> dict:
    """Everything the explorer shows, as a JSON-ready dict (see the module doc).

    `teacher`, `student`: Subjects or checkpoint folders (optional: without them only what `results`
    holds is shown). `results`: an `interp compare` folder (optional); computed circuits are cached in
    its `explore/` subfolder. `n_examples` HANS examples are shown; `n_pairs` clean/corrupted pairs
    drive the patching maps and circuits (HANS with the lexical overlap broken, `interp.hans_pairs`;
    `pairs=(clean, corrupted)` replaces them). `examples` replaces the HANS examples shown; image pairs
    (ViT) need both, as dicts with `pixel_values`.
    """
    t, s = _load(teacher, "teacher", device), _load(student, "student", device)
    if (t is None) != (s is None):
        raise ValueError("Pass both teacher and student, or neither (results only).")
    res = read_results(results) if results is not None else None
    models = t is not None
    where = str(results) if results is not None else "RESULTS"
    cmd_compare = f"interp compare --teacher TEACHER --student STUDENT --out {where}"
    cmd_explore = f"interp explore {where} --teacher TEACHER --student STUDENT"
    missing: dict[str, dict] = {}
    data: dict[str, Any] = {"schema": SCHEMA, **{p: None for p in PARTS}, "layer_map": None,
                            "teacher": None, "student": None, "metric": "entailment margin: logit(entailment) - "
                            "logsumexp(other logits)", "results": str(results) if results is not None else None}
    if res is None and not models:
        raise ValueError(f"Nothing to show: {where} has no results.json and no models were given. Run "
                         f"`{cmd_compare}`, or pass teacher= and student=.")
    if res is not None:
        data["layer_map"] = res["pair"]["layer_map"]
        data["head_map"] = res["head_map"]["matches"]
        data["head_by_head"] = res["head_by_head"]
        data["attribution"] = attribution_from_results(res["attribution"])
        if data["attribution"]["weight"] is None:
            missing["weight"] = {"why": f"weight patching was not run: {data['attribution']['weight_skipped']}",
                                 "command": None}
        names = (res["pair"]["teacher"], res["pair"]["student"])
    else:
        why = "no results folder" if results is None else f"{where}/results.json does not exist"
        for part in ("head_by_head", "attribution"):
            missing[part] = {"why": why, "command": cmd_compare}
    if models and res is not None and results is not None:
        config = json.loads((Path(results) / "results.json").read_text()).get("config", {})
        stale = [r for r, m in (("teacher", t), ("student", s)) if config.get(r) not in (None, m.fingerprint)]
        if stale:
            raise ValueError(f"{where}/results.json was computed for a different {' and '.join(stale)} "
                             f"(weight fingerprints differ): rerun `{cmd_compare}` or pass the models it used.")
    if models:
        from interp.pair import make_pair, match_heads

        data["teacher"], data["student"] = _info(t), _info(s)
        if "entailment" not in [str(x).lower() for x in t.labels]:  # image classifiers: log-odds of label 0
            data["metric"] = default_metric(t.labels).describe()
        examples = list(examples) if examples is not None else pick_examples(n_examples, seed)
        if pairs is None and "pixel_values" in examples[0]:
            raise ValueError("An image pair has no default contrast pairs: pass pairs=(clean, corrupted) images.")
        if data["layer_map"] is None:
            pair = make_pair(t, s, data=examples)
            data["layer_map"] = {str(k): v for k, v in pair.layer_map.items()}
        layer_map = {int(k): int(v) for k, v in data["layer_map"].items()}
        if data["head_map"] is None:
            data["head_map"] = match_heads(t, s, examples, layer_map).to_json()
        data["examples"], data["attention"] = examples_and_attention(t, s, examples)
        data["cka"] = cka_part(t, s, examples)
        from interp.contrast import make_contrast

        clean, corrupt = pairs if pairs is not None else contrast_pairs(t.tokenizer, n_pairs, seed)
        contrasts = {"teacher": make_contrast(t, clean, corrupt), "student": make_contrast(s, clean, corrupt)}
        data["patching"] = {role: patching_part(m, contrasts[role]) for role, m in (("teacher", t), ("student", s))}
        if circuits:
            cache = Path(results) / "explore" if results is not None else None
            data["circuits"] = {role: circuits_part(m, contrasts[role], cache, role)
                                for role, m in (("teacher", t), ("student", s))}
        else:
            missing["circuits"] = {"why": "circuits were not computed (circuits=False)", "command": cmd_explore}
    else:
        assert res is not None  # without models, results are required (checked above)
        hm = data["head_map"]
        t_heads = 1 + max(int(m["teacher"][1]) for m in hm if m["teacher"])
        t_total = len(res["head_map"]["score"])  # [teacher heads, student heads], flattened (layer, head)
        data["teacher"] = {"name": names[0], "n_layers": t_total // t_heads, "n_heads": t_heads}
        data["student"] = {"name": names[1], "n_layers": 1 + max(m["student"][0] for m in hm),
                           "n_heads": 1 + max(m["student"][1] for m in hm)}
        for part in ("examples", "attention", "cka", "patching", "circuits"):
            missing[part] = {"why": "the models were not given, so this was not computed", "command": cmd_explore}
    if data["head_map"] is None:
        missing["head_map"] = {"why": "no head map", "command": cmd_compare}
    data["missing"] = missing
    return _clean(data)


# --- the diff of two circuits through the head map (the page computes the same) --------------------
def node_to_teacher(node: str, data: dict) -> str | None:
    """A student node's teacher counterpart: matched head, MLP of the mapped layer, input, logits."""
    if node in ("input", "logits"):
        return node
    m = re.fullmatch(r"L(\d+)(?:H(\d+)|M)", node)
    if m is None:
        return None
    l = int(m.group(1))
    if m.group(2) is None:
        tl = (data.get("layer_map") or {}).get(str(l))
        return None if tl is None else f"L{tl}M"
    for e in data.get("head_map") or []:
        if e["student"] == [l, int(m.group(2))]:
            return f"L{e['teacher'][0]}H{e['teacher'][1]}" if e["teacher"] else None
    return None


def edge_to_teacher(edge: str, data: dict) -> str | None:
    sender, rest = edge.split("->")
    receiver, kind = rest.rsplit(".", 1)
    s, r = node_to_teacher(sender, data), node_to_teacher(receiver, data)
    return None if s is None or r is None else f"{s}->{r}.{kind}"


def visible_edges(circuit: dict | None, threshold: float = 0.0, cap: int | None = None,
                  kinds: Sequence[str] = KINDS) -> list[tuple[str, float]]:
    """The edges the page draws: |score| >= threshold, kind on, the `cap` largest by |score| (ties by name)."""
    if not circuit or circuit.get("no_signal"):
        return []
    rows = [(e, s) for e, s in circuit["edges"] if s is not None and abs(s) >= threshold
            and e.rsplit(".", 1)[1] in kinds]
    rows.sort(key=lambda r: (-abs(r[1]), r[0]))
    return rows if cap is None else rows[:cap]


def edge_diff(data: dict, threshold: float = 0.0, cap: int | None = None,
              kinds: Sequence[str] = KINDS) -> dict[str, list[str]]:
    """Teacher edges preserved / lost in the student, and student edges new (no teacher counterpart in
    the teacher's drawn edges), mapping student edges through the layer and head maps."""
    circ = data.get("circuits") or {}
    t = {e for e, _ in visible_edges(circ.get("teacher"), threshold, cap, kinds)}
    s = [e for e, _ in visible_edges(circ.get("student"), threshold, cap, kinds)]
    mapped = {e: edge_to_teacher(e, data) for e in s}
    hit = {m for m in mapped.values() if m is not None}
    return {"preserved": sorted(t & hit), "lost": sorted(t - hit),
            "new": sorted(e for e, m in mapped.items() if m is None or m not in t)}
