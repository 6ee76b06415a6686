"""Seeded generator of 3-way NLI data whose lexical overlap is a controllable, imperfect cue.

Why: to study whether a teacher's debiasing survives distillation we need training data with a
known spurious cue (hypothesis words all in the premise -> entailment, as in HANS) whose strength
we set, while the true labelling rule stays learnable from structure and meaning.

Definitions (word = lower-cased whitespace token, punctuation dropped):
- ``overlap``: fraction of hypothesis words (tokens, with repetition) whose word occurs in the premise.
- *high overlap*: ``overlap == 1.0`` (every hypothesis word is in the premise: the HANS
  lexical-overlap heuristic and the Clark et al. 2019 "all words in premise" feature).
- ``aligned``: the example agrees with the heuristic, i.e. (label == "entailment") == high overlap.
- ``bias``: the exact fraction of aligned examples within every label
  (= P(high overlap | entailment) = P(low overlap | neutral) = P(low overlap | contradiction)).
  Labels are balanced (n/3 each), so P(entailment | high overlap) = bias / (2 - bias):
  0.5 makes overlap independent of entailment, 1.0 makes it a perfect cue, 0.0 an inverted one.

Every construction fixes the label by its meaning; the overlap is then measured, and a draw whose
measured overlap class is not the one requested is redrawn. Bias-conflicting examples therefore need
the real rule: e.g. role swaps, "never", "instead of", "X and not Y" are contradictions with full
overlap; "if", "perhaps", "guessed that", "or" make full-overlap neutrals; passives, hypernyms and
synonyms make low-overlap entailments. Vocabulary is everyday English (whole words in the BERT uncased
vocabulary) and disjoint in content words from ``interp.data.hans_gen`` so HANS tests generalisation.

Modules: interp.data.nli_vocab (vocabulary), interp.data.nli_constructions (the labelled constructions and
their pools), this one (overlap measure and the seeded, duplicate-free generation).
"""

from __future__ import annotations

import random

from interp.data.nli_constructions import POOLS, _Draw
from interp.data.nli_vocab import CONTENT_WORDS, LABELS  # noqa: F401  (CONTENT_WORDS: re-exported, as before the split)


# --- overlap ------------------------------------------------------------------------------------
def words(sentence: str) -> list[str]:
    """Lower-cased word tokens of a sentence, punctuation tokens dropped."""
    return [w for w in sentence.lower().split() if any(c.isalnum() for c in w)]


def lexical_overlap(premise: str, hypothesis: str) -> float:
    """Fraction of hypothesis word tokens whose word occurs in the premise (0 for an empty hypothesis)."""
    p, h = set(words(premise)), words(hypothesis)
    return sum(w in p for w in h) / len(h) if h else 0.0


def _sentence(text: str) -> str:
    text = " ".join(text.split())
    return text[0].upper() + text[1:] + " ."


def _generate(n: int, bias: float, rng: random.Random, seen: set[tuple[str, str]], prefix: str) -> list[dict]:
    if not 0.0 <= bias <= 1.0:
        raise ValueError(f"bias must be in [0, 1], got {bias}")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    labels = [LABELS[i % 3] for i in range(n)]
    plan: list[tuple[str, bool]] = []
    for lab in LABELS:
        n_lab = labels.count(lab)
        n_aligned = round(bias * n_lab)
        flags = [True] * n_aligned + [False] * (n_lab - n_aligned)
        plan += [(lab, a) for a in flags]
    rng.shuffle(plan)
    d = _Draw(rng)
    out = []
    for i, (lab, aligned) in enumerate(plan):
        want_high = aligned if lab == "entailment" else not aligned
        for _ in range(1000):
            make = rng.choice(POOLS[lab][want_high])
            p, h = make(d)
            premise, hypothesis = _sentence(p), _sentence(h)
            ov = lexical_overlap(premise, hypothesis)
            if (ov == 1.0) == want_high and (premise, hypothesis) not in seen and premise != hypothesis:
                break
        else:  # pragma: no cover - pools are large; reaching this means a broken construction
            raise RuntimeError(f"could not draw a new {lab} example with high overlap={want_high}")
        seen.add((premise, hypothesis))
        out.append({"id": f"{prefix}{i}", "premise": premise, "hypothesis": hypothesis, "label": lab,
                    "overlap": ov, "aligned": aligned, "construction": make.__name__})
    return out


def generate_nli(n: int, bias: float = 0.9, seed: int = 0) -> list[dict]:
    """``n`` examples {id, premise, hypothesis, label, overlap, aligned, construction}; labels balanced,
    a fraction ``bias`` of each label aligned with the overlap heuristic (see module docstring);
    no duplicate (premise, hypothesis) pairs; same seed -> same list."""
    return _generate(n, bias, random.Random(f"nli-{seed}"), set(), f"nli{seed}-")


def generate_nli_splits(n_train: int, n_test: int, bias: float = 0.9, test_bias: float | None = None,
                        seed: int = 0) -> dict[str, list[dict]]:
    """Train and held-out test sets with no (premise, hypothesis) pair in common.

    ``test_bias`` defaults to ``bias`` (in-distribution test); use 0.5 for a cue-neutral test, and the
    per-example ``aligned`` flag to score the bias-conflicting subset.
    """
    train = generate_nli(n_train, bias, seed)
    seen = {(e["premise"], e["hypothesis"]) for e in train}
    test = _generate(n_test, bias if test_bias is None else test_bias, random.Random(f"nli-test-{seed}"),
                     seen, f"nli{seed}-test-")
    return {"train": train, "test": test}
