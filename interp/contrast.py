"""Clean/corrupted input pairs and the metric that patching, attribution and circuits score against.

A `Contrast` holds two token batches of identical shape (clean and corrupted, row i of one is the
minimal counterpart of row i of the other) and a per-example metric of the logits. Scores are
normalised so that 0 = corrupted and 1 = clean: `(m - m_corrupt) / (m_clean - m_corrupt)`, where each
m is the metric averaged over all pairs (a ratio of means: per-pair normalisation explodes on pairs
whose clean/corrupt difference is near zero).

Metric. For a 3-way NLI model we use the entailment log-odds
`z_ent - logsumexp(z_others) = log p(ent) / (1 - p(ent))`: invariant to adding a constant to all
logits (like a logit difference), it reduces to the ordinary logit difference for 2-way models, and
it does not depend on how the model splits the non-entailment mass between neutral and
contradiction (HANS collapses those two). `Prob` gives p(target) instead.

Token alignment. Position-wise patching needs position i of the clean input to correspond to
position i of the corrupted one. `make_contrast` tokenises clean and corrupted texts into one
padded batch and then, per pair: `align="strict"` (default) raises naming the first pair whose
token lengths differ; `align="pad"` accepts length differences (both rows are padded to the same
width, each keeps its own attention mask; only meaningful when the difference is trailing);
`align="drop"` drops mismatched pairs and records how many.

HANS pairs (`hans_pairs`):
- `"break_overlap"`: clean = a HANS lexical-overlap example (every hypothesis word is in the
  premise; a heuristic-reliant model says entailment), corrupted = the same hypothesis with every
  overlapping content word replaced by a same-category word absent from the premise (the heuristic
  now says non-entailment). Components that restore the clean metric carry the overlap signal.
- `"swap"`: clean = `ln_subject/object_swap` non-entailment ("The A saw the B" / "The B saw the A"),
  corrupted = the entailing identity hypothesis (premise repeated): same words, same length, the
  pair differs only in word order, i.e. in what an overlap heuristic ignores.
"""
from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from interp.inputs import as_examples

Metric = Callable[[torch.Tensor], torch.Tensor]  # logits [n, n_labels] -> [n]


def _resolve_label(subject: Any, target: int | str) -> int:
    if isinstance(target, int):
        return target
    labels = [str(x).lower() for x in subject.labels]
    if target.lower() in labels:
        return labels.index(target.lower())
    raise KeyError(f"Label {target!r} is not among the model's labels {subject.labels}; pass a label index "
                   "(e.g. target=0) for a model whose head has no label names.")


@dataclass
class LogOdds:
    """`z[target] - logsumexp(z[others])` per example: the log-odds of the target label."""

    target: int = 0

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:  # [n, n_labels] -> [n]
        others = torch.cat([logits[:, :self.target], logits[:, self.target + 1:]], dim=1)
        return logits[:, self.target] - torch.logsumexp(others, dim=1)

    def describe(self) -> str:
        return f"log-odds of label {self.target} (z_t - logsumexp(z_other))"


@dataclass
class Prob:
    """Softmax probability of the target label per example."""

    target: int = 0

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:  # [n, n_labels] -> [n]
        return torch.softmax(logits, dim=-1)[:, self.target]

    def describe(self) -> str:
        return f"probability of label {self.target}"


def make_metric(subject: Any, kind: str = "logodds", target: int | str = "entailment") -> Metric:
    """`LogOdds` or `Prob` of the named label (falls back to an index for unnamed heads)."""
    t = _resolve_label(subject, target)
    if kind == "logodds":
        return LogOdds(t)
    if kind == "prob":
        return Prob(t)
    raise ValueError(f"Unknown metric kind {kind!r}; choose 'logodds' or 'prob'.")


def metric_values(metric: Metric, logits: torch.Tensor) -> torch.Tensor:
    """Apply a metric and insist on one scalar per example: [n]."""
    out = metric(logits)
    n = logits.shape[0]
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"The metric returned {type(out).__name__}; it must return a tensor with one scalar per "
                        f"example (shape [{n}]) from logits [{n}, n_labels].")
    if out.dim() == 2 and out.shape[1] == 1:
        out = out[:, 0]
    if out.shape != (n,):
        raise ValueError(f"The metric returned shape {tuple(out.shape)}; it must return one scalar per example, "
                         f"shape [{n}] (e.g. a logit difference per row), not a mean or a per-label vector.")
    return out


@dataclass
class Contrast:
    """Clean and corrupted batches of the same shape, with the metric; rows correspond."""

    clean: dict[str, torch.Tensor]     # input_ids etc. [n, pos]
    corrupt: dict[str, torch.Tensor]   # same keys and shapes
    metric: Metric
    ids: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(next(iter(self.clean.values())).shape[0])

    @property
    def n_pos(self) -> int:
        """Positions per example: tokens of text, the ViT's [CLS] + patches of images (0 for feature maps)."""
        return int(self.clean["input_ids"].shape[1]) if "input_ids" in self.clean else int(self.meta.get("n_pos", 0))

    def slice(self, start: int, stop: int) -> Contrast:
        return Contrast({k: v[start:stop] for k, v in self.clean.items()},
                        {k: v[start:stop] for k, v in self.corrupt.items()}, self.metric, self.ids[start:stop],
                        self.meta)

    def batches(self, batch_size: int):
        for start in range(0, len(self), batch_size):
            yield self.slice(start, start + batch_size)


_EMPTY = ("The contrast is empty: {what}, so there is nothing to patch or score. Pass at least one "
          "clean/corrupted pair (for HANS pairs, n >= 1 and subcases that exist; for a .jsonl file, lines of "
          "{{'clean': {{...}}, 'corrupt': {{...}}}}).")


def make_contrast(subject: Any, clean: Sequence[dict], corrupt: Sequence[dict], metric: Metric | None = None,
                  align: str = "strict", max_length: int = 128) -> Contrast:
    """Tokenise clean/corrupted examples into same-shape batches; see the module doc for `align`."""
    if align not in ("strict", "pad", "drop"):
        raise ValueError(f"align must be 'strict', 'pad' or 'drop', not {align!r}.")
    clean, corrupt = list(clean), list(corrupt)
    if not clean or not corrupt:
        raise ValueError(_EMPTY.format(what=f"make_contrast was given {len(clean)} clean and {len(corrupt)} "
                                            "corrupted examples"))
    clean, corrupt = as_examples(clean), as_examples([dict(c, id=f"corrupt:{i}") for i, c in enumerate(corrupt)])
    if len(clean) != len(corrupt):
        raise ValueError(f"{len(clean)} clean examples but {len(corrupt)} corrupted ones; they must pair up.")
    both = subject.tokenize(list(clean) + list(corrupt), max_length=max_length)
    n = len(clean)
    lengths = both["attention_mask"].sum(1) if "attention_mask" in both else None
    keep = list(range(n))
    dropped = 0
    if lengths is not None:
        bad = [i for i in range(n) if int(lengths[i]) != int(lengths[n + i])]
        if bad and align == "strict":
            i = bad[0]
            tok = subject.tokenizer
            a = tok.convert_ids_to_tokens(both["input_ids"][i][: int(lengths[i])].tolist())
            b = tok.convert_ids_to_tokens(both["input_ids"][n + i][: int(lengths[n + i])].tolist())
            raise ValueError(
                f"{len(bad)} of {n} pairs have clean and corrupted inputs of different token lengths, so positions do "
                f"not correspond; first: pair {clean[i]['id']!r}: clean has {len(a)} tokens {a}, corrupted has "
                f"{len(b)} {b}. Use align='pad' (trailing differences only) or align='drop', or build "
                "length-matched pairs.")
        if align == "drop":
            keep = [i for i in range(n) if i not in set(bad)]
            dropped = len(bad)
            if not keep:
                raise ValueError("align='drop' dropped every pair: no clean/corrupted pair has matching token lengths.")
    idx = torch.tensor(keep)
    c = {k: v[idx] for k, v in both.items()}
    r = {k: v[idx + n] for k, v in both.items()}
    if "attention_mask" in c:  # trim shared trailing padding
        width = int(torch.maximum(c["attention_mask"].sum(1).max(), r["attention_mask"].sum(1).max()))
        c = {k: v[:, :width] for k, v in c.items()}
        r = {k: v[:, :width] for k, v in r.items()}
    if metric is None:
        metric = make_metric(subject, "logodds", "entailment" if "entailment" in
                             [str(x).lower() for x in subject.labels] else 0)
    meta = {"align": align, "dropped": dropped, "n": len(keep),
            "metric": getattr(metric, "describe", lambda: repr(metric))()}
    if "input_ids" not in c and getattr(subject.arch, "layout", "tokens") == "tokens":  # ViT: positions of a layer
        from interp.engine import layer_inputs
        with torch.no_grad():
            meta["n_pos"] = int(layer_inputs(subject, {k: v[:1] for k, v in c.items()})[0].shape[1])
    return Contrast(c, r, metric, [clean[i]["id"] for i in keep], meta)


# --- HANS pairs ----------------------------------------------------------------------------------
def _categories() -> list[list[str]]:
    from interp.data import hans_gen as g
    cats = [g.NOUNS_SG, g.NOUNS_PL, g.TRANSITIVE, g.INTRANSITIVE, g.PLACES, g.ADJS, g.PARTICIPLES,
            sorted({o for os in g.UNDERSTOOD.values() for o in os})]
    return [list(c) for c in cats]


def break_overlap(example: dict, rng: random.Random, same_length: Callable[[str, str], bool] | None = None) -> dict:
    """The example with each hypothesis content word that occurs in the premise replaced by a
    same-category word absent from the premise (and, if given, with `same_length(old, new)`)."""
    cats = _categories()
    prem = {w.lower().strip(".") for w in example["premise"].split()}
    out = []
    for w in example["hypothesis"].split():
        low = w.lower()
        cat = next((c for c in cats if low in c), None)
        if cat is None or low not in prem:
            out.append(w)
            continue
        options = [x for x in cat if x not in prem and x != low and (same_length is None or same_length(low, x))]
        if not options:
            raise ValueError(f"No same-category, same-length replacement for {w!r} in {example.get('id')!r}.")
        new = rng.choice(options)
        out.append(new[0].upper() + new[1:] if w[0].isupper() else new)
    return dict(example, hypothesis=" ".join(out), label="non-entailment", id=f"{example.get('id', '')}:broken")


def hans_pairs(n: int = 256, kind: str = "break_overlap", seed: int = 0, tokenizer: Any = None,
               subcases: Sequence[str] | None = None) -> tuple[list[dict], list[dict]]:
    """(clean, corrupted) HANS-style example lists, `n` pairs, seeded; see the module doc for `kind`.

    With a tokenizer, replacement words are restricted to ones with the same number of word pieces
    so that token lengths match.
    """
    from interp.data.hans_gen import generate_hans

    if n < 1:
        raise ValueError(_EMPTY.format(what=f"hans_pairs(n={n}) asks for no pairs"))
    rng = random.Random(seed)
    if kind == "swap":
        pool = [e for e in generate_hans(n_per_subcase=max(n, 1), seed=seed) if e["subcase"] == "ln_subject/object_swap"]
        clean = pool[:n]
        corrupt = [dict(e, hypothesis=e["premise"], label="entailment", id=f"{e['id']}:identity") for e in clean]
        return _nonempty(clean, corrupt, kind, None)
    if kind != "break_overlap":
        raise ValueError(f"Unknown HANS pair kind {kind!r}; choose 'break_overlap' or 'swap'.")
    subcases = subcases or ["ln_subject/object_swap", "ln_passive", "ln_preposition", "ln_relative_clause",
                            "ln_conjunction"]
    per = -(-n // len(subcases))
    pool = [e for e in generate_hans(n_per_subcase=per, seed=seed) if e["subcase"] in subcases]
    rng.shuffle(pool)
    same = None
    if tokenizer is not None:
        pieces: dict[str, int] = {}  # word -> number of word pieces (each word tokenized once)

        def n_pieces(w: str) -> int:
            if w not in pieces:
                pieces[w] = len(tokenizer.tokenize(w))
            return pieces[w]

        def same(a: str, b: str) -> bool:
            return n_pieces(a) == n_pieces(b)
    clean = pool[:n]
    corrupt = [break_overlap(e, rng, same) for e in clean]
    return _nonempty(clean, corrupt, kind, subcases)


def _nonempty(clean: list[dict], corrupt: list[dict], kind: str,
              subcases: Sequence[str] | None) -> tuple[list[dict], list[dict]]:
    """(clean, corrupt), or the empty-contrast error naming what selected nothing."""
    if not clean:
        from interp.data.hans_gen import SUBCASES
        what = f"hans_pairs(kind={kind!r}" + (f", subcases={list(subcases)}" if subcases else "") + ") found no " \
               f"examples (known subcases: {', '.join(SUBCASES)})"
        raise ValueError(_EMPTY.format(what=what))
    return clean, corrupt
