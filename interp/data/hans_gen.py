"""Seeded HANS-style generator (our own code and vocabulary) covering all 30 HANS subcases.

Why: HANS (McCoy et al. 2019) probes the lexical-overlap, subsequence and constituent heuristics.
We regenerate it from a seed so that experiments can draw fresh, duplicate-free sets, and so that
each example carries its parse trees and a token alignment of hypothesis to premise tokens
(which token-level interpretability needs and the official file lacks).

Each example is built as a small labelled tree; the hypothesis reuses premise subtrees, so
alignment is exact: ``overlap[j]`` is the index (in ``premise.split()``) of the premise token that
hypothesis token ``j`` (in ``hypothesis.split()``) is a copy of, or -1 for a new token.
Examples have the keys of ``interp.data.hans.load_hans``: id, premise, hypothesis, label,
heuristic, subcase, template, overlap, plus the four parse strings.

Modules: interp.data.hans_vocab (vocabulary), interp.data.hans_trees (trees, builder, rendering,
alignment), interp.data.hans_templates (templates and the subcase table), this one (generation).
"""

from __future__ import annotations

import random

from interp.data.hans_templates import SUBCASES, TEMPLATE_NAMES
from interp.data.hans_trees import (  # noqa: F401  (re-exported, as before the split)
    _B,
    Leaf,
    Tree,
    _cap,
    alignment,
    render_binary_parse,
    render_parse,
    tree_leaves,
    tree_spans,
)
from interp.data.hans_vocab import (  # noqa: F401  (re-exported: the vocabulary, as before the split)
    ADJS,
    ADV_ENT,
    ADV_NONENT,
    CONTENT_WORDS,
    FACTIVE,
    HEURISTICS,
    IF_CONJS,
    INTRANSITIVE,
    NONFACTIVE,
    NOUNS_PL,
    NOUNS_SG,
    NPS_VERBS,
    NPZ_CONJS,
    NPZ_VERBS,
    PARTICIPLES,
    PASSIVE_OK,
    PLACES,
    PREPS,
    RELS,
    SINCE_CONJS,
    TRANSITIVE,
    UNDERSTOOD,
)


def _example(prem: Tree, hyp: Tree, subcase: str, template: str, idx: int) -> dict:
    heuristic, label, _ = SUBCASES[subcase]
    return {
        "id": f"hg{idx}", "premise": " ".join(_cap([l[1] for l in tree_leaves(prem)])),
        "hypothesis": " ".join(_cap([l[1] for l in tree_leaves(hyp)])), "label": label,
        "heuristic": heuristic, "subcase": subcase, "template": template,
        "overlap": alignment(prem, hyp),
        "premise_parse": render_parse(prem), "hypothesis_parse": render_parse(hyp),
        "premise_binary_parse": render_binary_parse(prem), "hypothesis_binary_parse": render_binary_parse(hyp),
        "premise_tree": prem,
    }


def generate_hans(n_per_subcase: int = 1000, seed: int = 0, keep_trees: bool = False) -> list[dict]:
    """``n_per_subcase`` examples for each of the 30 HANS subcases, reproducible from ``seed``,
    with no duplicate (premise, hypothesis) pair. ``keep_trees`` keeps the premise tree
    (``premise_tree``, nested tuples) for structural checks."""
    rng = random.Random(f"hans-{seed}")
    out: list[dict] = []
    seen: set[tuple[str, str]] = set()
    for subcase, (_, _, templates) in SUBCASES.items():
        for _ in range(n_per_subcase):
            for _attempt in range(10_000):
                t = rng.choice(templates)
                prem, hyp = t(_B(rng))
                ex = _example(prem, hyp, subcase, TEMPLATE_NAMES[t], len(out))
                key = (ex["premise"], ex["hypothesis"])
                if key not in seen:
                    break
            else:
                raise RuntimeError(f"subcase {subcase!r} cannot give {n_per_subcase} distinct examples")
            seen.add(key)
            if not keep_trees:
                del ex["premise_tree"]
            out.append(ex)
    return out
