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
"""

from __future__ import annotations

import random
from collections.abc import Callable

LABELS: tuple[str, str, str] = ("entailment", "neutral", "contradiction")

# --- vocabulary -------------------------------------------------------------------------------
PEOPLE: dict[str, str] = {  # singular -> plural
    "boy": "boys", "girl": "girls", "man": "men", "woman": "women", "child": "children",
    "farmer": "farmers", "nurse": "nurses", "cook": "cooks", "driver": "drivers",
    "singer": "singers", "dancer": "dancers", "pilot": "pilots", "soldier": "soldiers",
    "chef": "chefs", "painter": "painters", "teacher": "teachers", "player": "players",
    "priest": "priests", "guard": "guards", "sailor": "sailors", "hunter": "hunters",
    "clerk": "clerks", "coach": "coaches", "king": "kings", "queen": "queens",
}
# verb: (past, base, ing, past participle)
PERSON_VERBS: list[tuple[str, str, str, str]] = [
    ("pushed", "push", "pushing", "pushed"), ("followed", "follow", "following", "followed"),
    ("chased", "chase", "chasing", "chased"), ("hugged", "hug", "hugging", "hugged"),
    ("watched", "watch", "watching", "watched"), ("greeted", "greet", "greeting", "greeted"),
    ("visited", "visit", "visiting", "visited"), ("warned", "warn", "warning", "warned"),
    ("pulled", "pull", "pulling", "pulled"), ("kicked", "kick", "kicking", "kicked"),
    ("touched", "touch", "touching", "touched"), ("carried", "carry", "carrying", "carried"),
    ("fed", "feed", "feeding", "fed"), ("met", "meet", "meeting", "met"),
    ("found", "find", "finding", "found"), ("hit", "hit", "hitting", "hit"),
    ("taught", "teach", "teaching", "taught"), ("blamed", "blame", "blaming", "blamed"),
]
OBJECTS: dict[str, list[str]] = {  # hypernym -> members
    "food": ["bread", "apple", "cake", "soup", "cheese", "orange", "pizza", "egg"],
    "animal": ["dog", "cat", "horse", "bird", "cow", "rabbit", "duck", "goat"],
    "vehicle": ["car", "bus", "truck", "bike", "boat", "van"],
    "instrument": ["guitar", "piano", "drum", "violin", "flute"],
    "tool": ["hammer", "shovel", "rope", "knife", "ladder", "brush"],
}
OBJECT_VERBS: dict[str, list[tuple[str, str, str, str]]] = {
    "food": [("ate", "eat", "eating", "eaten"), ("cooked", "cook", "cooking", "cooked"),
             ("bought", "buy", "buying", "bought"), ("cut", "cut", "cutting", "cut"),
             ("dropped", "drop", "dropping", "dropped"), ("sold", "sell", "selling", "sold")],
    "animal": [("fed", "feed", "feeding", "fed"), ("washed", "wash", "washing", "washed"),
               ("chased", "chase", "chasing", "chased"), ("watched", "watch", "watching", "watched"),
               ("carried", "carry", "carrying", "carried"), ("found", "find", "finding", "found")],
    "vehicle": [("drove", "drive", "driving", "driven"), ("washed", "wash", "washing", "washed"),
                ("fixed", "fix", "fixing", "fixed"), ("painted", "paint", "painting", "painted"),
                ("bought", "buy", "buying", "bought"), ("sold", "sell", "selling", "sold")],
    "instrument": [("played", "play", "playing", "played"), ("fixed", "fix", "fixing", "fixed"),
                   ("carried", "carry", "carrying", "carried"), ("cleaned", "clean", "cleaning", "cleaned"),
                   ("bought", "buy", "buying", "bought"), ("sold", "sell", "selling", "sold")],
    "tool": [("used", "use", "using", "used"), ("dropped", "drop", "dropping", "dropped"),
             ("carried", "carry", "carrying", "carried"), ("cleaned", "clean", "cleaning", "cleaned"),
             ("found", "find", "finding", "found"), ("took", "take", "taking", "taken")],
}
PERSON_ADJ_ANTONYMS: list[tuple[str, str]] = [
    ("tall", "short"), ("young", "old"), ("sad", "cheerful"), ("rich", "poor"),
    ("strong", "weak"), ("quiet", "noisy"), ("sick", "healthy"), ("thin", "fat"),
]
OBJECT_ADJ_SYNONYMS: list[tuple[str, str]] = [("big", "large"), ("small", "little")]
OBJECT_ADJS: list[str] = ["red", "blue", "green", "dirty", "heavy", "new", "big", "small"]
LOCATIONS: list[str] = [
    "in the park", "in the kitchen", "at the market", "on the beach", "near the river",
    "at the station", "in the street", "on the farm", "at the church", "in the yard",
]
TIMES: list[str] = ["yesterday", "this morning", "last night", "on sunday", "at noon"]
MANNER_ADVS: list[str] = ["gently", "carefully", "calmly", "proudly", "eagerly", "loudly"]
ACTIVITIES: list[str] = ["sleeping", "running", "swimming", "dancing", "singing", "walking",
                         "sitting", "jumping", "crying", "laughing", "standing", "climbing"]
_CONTRA_ACTIVITY: set[frozenset[str]] = {
    *(frozenset(("sleeping", a)) for a in ACTIVITIES if a != "sleeping"),
    *(frozenset(("sitting", a)) for a in ("running", "walking", "jumping", "dancing", "standing", "climbing", "swimming")),
    frozenset(("crying", "laughing")),
}
INTRANS_PAST: list[str] = ["smiled", "laughed", "waved", "cried", "yawned", "nodded", "left", "sang"]
STATES: list[str] = ["hungry", "tired", "angry", "bored", "lonely", "busy", "famous"]
FACTIVE: list[str] = ["noticed", "realized", "discovered", "proved", "showed"]
NONFACTIVE: list[str] = ["guessed", "imagined", "dreamed", "suspected", "feared"]
HEDGES: list[str] = ["perhaps", "maybe", "possibly"]

CONTENT_WORDS: frozenset[str] = frozenset(
    w
    for group in (
        list(PEOPLE) + list(PEOPLE.values()), [w for v in PERSON_VERBS for w in v], list(OBJECTS),
        [o for os in OBJECTS.values() for o in os], [w for vs in OBJECT_VERBS.values() for v in vs for w in v],
        [w for p in PERSON_ADJ_ANTONYMS + OBJECT_ADJ_SYNONYMS for w in p], OBJECT_ADJS,
        ACTIVITIES, INTRANS_PAST, STATES, FACTIVE, NONFACTIVE, MANNER_ADVS,
        [loc.split()[-1] for loc in LOCATIONS],
    )
    for w in group
)


# --- helpers ----------------------------------------------------------------------------------
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


class _Draw:
    """Random choices for one example (thin wrapper so constructions read naturally)."""

    def __init__(self, rng: random.Random):
        self.r = rng

    def person(self, exclude: tuple[str, ...] = ()) -> tuple[str, bool]:
        noun = self.r.choice([p for p in PEOPLE if p not in exclude])
        plural = self.r.random() < 0.3
        return (PEOPLE[noun] if plural else noun), plural

    def people(self, k: int) -> list[str]:
        nouns = self.r.sample(list(PEOPLE), k)
        return [PEOPLE[n] if self.r.random() < 0.3 else n for n in nouns]

    def obj_event(self) -> tuple[str, tuple[str, str, str, str], str]:
        cat = self.r.choice(list(OBJECTS))
        return cat, self.r.choice(OBJECT_VERBS[cat]), self.r.choice(OBJECTS[cat])

    def event(self) -> tuple[str, str, tuple[str, str, str, str], str]:
        """(subject, object, verb forms, object hypernym or 'person')."""
        subj = self.person()[0]
        if self.r.random() < 0.5:
            return subj, self.person(exclude=(_sg(subj),))[0], self.r.choice(PERSON_VERBS), "person"
        cat, verb, obj = self.obj_event()
        return subj, obj, verb, cat


def _sg(noun: str) -> str:
    for s, p in PEOPLE.items():
        if noun in (s, p):
            return s
    return noun


def _be(noun: str, past: bool = False) -> str:
    plural = noun in PEOPLE.values() or (noun.endswith("s") and noun not in PEOPLE)
    if past:
        return "were" if plural else "was"
    return "are" if plural else "is"


Construction = Callable[[_Draw], tuple[str, str]]


# --- entailment ---------------------------------------------------------------------------------
def e_drop_adjective(d: _Draw) -> tuple[str, str]:
    s, o, v, cat = d.event()
    a = d.r.choice(PERSON_ADJ_ANTONYMS)[0]
    oa = d.r.choice(OBJECT_ADJS) if cat != "person" else d.r.choice(PERSON_ADJ_ANTONYMS)[1]
    return f"the {a} {s} {v[0]} the {oa} {o}", d.r.choice(
        [f"the {s} {v[0]} the {o}", f"the {a} {s} {v[0]} the {o}", f"the {s} {v[0]} the {oa} {o}"])


def e_drop_location(d: _Draw) -> tuple[str, str]:
    s, o, v, _ = d.event()
    return f"the {s} {v[0]} the {o} {d.r.choice(LOCATIONS)}", f"the {s} {v[0]} the {o}"


def e_drop_time(d: _Draw) -> tuple[str, str]:
    s, o, v, _ = d.event()
    t = d.r.choice(TIMES)
    return (f"{t} the {s} {v[0]} the {o}" if d.r.random() < 0.5 else f"the {s} {v[0]} the {o} {t}"), f"the {s} {v[0]} the {o}"


def e_drop_adverb(d: _Draw) -> tuple[str, str]:
    s, o, v, _ = d.event()
    return f"the {s} {d.r.choice(MANNER_ADVS)} {v[0]} the {o}", f"the {s} {v[0]} the {o}"


def e_subject_conjunct(d: _Draw) -> tuple[str, str]:
    s1, s2 = d.people(2)
    _, v, o = d.obj_event()
    return f"the {s1} and the {s2} {v[0]} the {o}", f"the {d.r.choice([s1, s2])} {v[0]} the {o}"


def e_object_conjunct(d: _Draw) -> tuple[str, str]:
    s = d.person()[0]
    cat, v, _ = d.obj_event()
    o1, o2 = d.r.sample(OBJECTS[cat], 2)
    return f"the {s} {v[0]} the {o1} and the {o2}", f"the {s} {v[0]} the {d.r.choice([o1, o2])}"


def e_drop_relative(d: _Draw) -> tuple[str, str]:
    s, o, v, _ = d.event()
    return f"the {s} who {d.r.choice(INTRANS_PAST)} {v[0]} the {o}", f"the {s} {v[0]} the {o}"


def e_factive(d: _Draw) -> tuple[str, str]:
    s, o, v, _ = d.event()
    w = d.person(exclude=(_sg(s),))[0]
    return f"the {w} {d.r.choice(FACTIVE)} that the {s} {v[0]} the {o}", f"the {s} {v[0]} the {o}"


def e_activity_drop_location(d: _Draw) -> tuple[str, str]:
    s = d.person()[0]
    a = d.r.choice(ACTIVITIES)
    return f"the {s} {_be(s)} {a} {d.r.choice(LOCATIONS)}", f"the {s} {_be(s)} {a}"


def e_passive_to_active(d: _Draw) -> tuple[str, str]:
    s, o, v, _ = d.event()
    return f"the {o} {_be(o, True)} {v[3]} by the {s}", f"the {s} {v[0]} the {o}"


def e_active_to_passive(d: _Draw) -> tuple[str, str]:
    s, o, v, _ = d.event()
    return f"the {s} {v[0]} the {o}", f"the {o} {_be(o, True)} {v[3]} by the {s}"


def e_object_hypernym(d: _Draw) -> tuple[str, str]:
    s = d.person()[0]
    cat, v, o = d.obj_event()
    loc = d.r.choice(["", " " + d.r.choice(LOCATIONS)])
    return f"the {s} {v[0]} the {o}{loc}", f"the {s} {v[0]} {'an' if cat[0] in 'aeiou' else 'a'} {cat}"


def e_subject_hypernym(d: _Draw) -> tuple[str, str]:
    s, o, v, _ = d.event()
    return f"the {s} {v[0]} the {o}", f"{d.r.choice(['someone', 'a person'])} {v[0]} the {o}"


def e_adjective_synonym(d: _Draw) -> tuple[str, str]:
    s = d.person()[0]
    _, v, o = d.obj_event()
    a, b = d.r.choice(OBJECT_ADJ_SYNONYMS)
    return f"the {s} {v[0]} the {a} {o}", f"the {s} {v[0]} a {b} {o}"


def e_awake(d: _Draw) -> tuple[str, str]:
    s = d.person()[0]
    a = d.r.choice([x for x in ACTIVITIES if x != "sleeping"])
    return f"the {s} {_be(s)} {a} {d.r.choice(LOCATIONS)}", f"the {s} {_be(s)} awake"


def e_something(d: _Draw) -> tuple[str, str]:
    s, o, v, cat = d.event()
    return f"the {s} {v[0]} the {o}", f"the {s} {v[0]} {'somebody' if cat == 'person' else 'something'}"


# --- contradiction ------------------------------------------------------------------------------
def c_role_swap(d: _Draw) -> tuple[str, str]:
    s1, s2 = d.people(2)
    v = d.r.choice(PERSON_VERBS)
    loc = d.r.choice(["", " " + d.r.choice(LOCATIONS)])
    return f"the {s1} {v[0]} the {s2}{loc}", f"the {s2} {v[0]} the {s1}"


def c_passive_swap(d: _Draw) -> tuple[str, str]:
    s1, s2 = d.people(2)
    v = d.r.choice(PERSON_VERBS)
    return f"the {s1} {_be(s1, True)} {v[3]} by the {s2}", f"the {s1} {v[0]} the {s2}"


def c_never(d: _Draw) -> tuple[str, str]:
    s, o, v, _ = d.event()
    return f"the {s} never {v[0]} the {o}", f"the {s} {v[0]} the {o}"


def c_premise_not_activity(d: _Draw) -> tuple[str, str]:
    s = d.person()[0]
    a = d.r.choice(ACTIVITIES)
    return f"the {s} {_be(s)} not {a} {d.r.choice(LOCATIONS)}", f"the {s} {_be(s)} {a}"


def c_instead_of(d: _Draw) -> tuple[str, str]:
    s = d.person()[0]
    cat, v, _ = d.obj_event()
    o1, o2 = d.r.sample(OBJECTS[cat], 2)
    return f"the {s} {v[0]} the {o1} instead of the {o2}", f"the {s} {v[0]} the {o2}"


def c_and_not(d: _Draw) -> tuple[str, str]:
    s1, s2 = d.people(2)
    _, v, o = d.obj_event()
    return f"the {s1} and not the {s2} {v[0]} the {o}", f"the {s2} {v[0]} the {o}"


def c_hypothesis_negation(d: _Draw) -> tuple[str, str]:
    s, o, v, _ = d.event()
    return f"the {s} {v[0]} the {o}", d.r.choice([f"the {s} did not {v[1]} the {o}", f"the {s} never {v[0]} the {o}"])


def c_adjective_antonym(d: _Draw) -> tuple[str, str]:
    s, o, v, _ = d.event()
    a, b = d.r.choice(PERSON_ADJ_ANTONYMS)
    if d.r.random() < 0.5:
        a, b = b, a
    return f"the {a} {s} {v[0]} the {o}", d.r.choice([f"the {b} {s} {v[0]} the {o}", f"the {s} {_be(s, True)} {b}"])


def c_incompatible_activity(d: _Draw) -> tuple[str, str]:
    s = d.person()[0]
    a, b = sorted(d.r.choice(sorted(_CONTRA_ACTIVITY, key=sorted)))  # sorted: set order varies by process
    if d.r.random() < 0.5:
        a, b = b, a
    return f"the {s} {_be(s)} {a} {d.r.choice(LOCATIONS)}", f"the {s} {_be(s)} {b}"


def c_nobody(d: _Draw) -> tuple[str, str]:
    s, o, v, _ = d.event()
    return f"the {s} {v[0]} the {o}", f"nobody {v[0]} the {o}"


def c_asleep(d: _Draw) -> tuple[str, str]:
    s = d.person()[0]
    a = d.r.choice([x for x in ACTIVITIES if x != "sleeping"])
    return f"the {s} {_be(s)} {a} {d.r.choice(LOCATIONS)}", f"the {s} {_be(s)} asleep"


# --- neutral ------------------------------------------------------------------------------------
def n_nonfactive(d: _Draw) -> tuple[str, str]:
    s, o, v, _ = d.event()
    w = d.person(exclude=(_sg(s),))[0]
    return f"the {w} {d.r.choice(NONFACTIVE)} that the {s} {v[0]} the {o}", f"the {s} {v[0]} the {o}"


def n_conditional(d: _Draw) -> tuple[str, str]:
    s, o, v, _ = d.event()
    w = d.person(exclude=(_sg(s),))[0]
    i = d.r.choice(INTRANS_PAST)
    c = d.r.choice(["if", "unless"])
    p = f"{c} the {s} {v[0]} the {o} , the {w} {i}" if d.r.random() < 0.5 else f"the {w} {i} {c} the {s} {v[0]} the {o}"
    return p, d.r.choice([f"the {s} {v[0]} the {o}", f"the {w} {i}"])


def n_hedge(d: _Draw) -> tuple[str, str]:
    s, o, v, _ = d.event()
    return f"{d.r.choice(HEDGES)} the {s} {v[0]} the {o}", f"the {s} {v[0]} the {o}"


def n_disjunction(d: _Draw) -> tuple[str, str]:
    s1, o1, v1, _ = d.event()
    s2, o2, v2, _ = d.event()
    return f"the {s1} {v1[0]} the {o1} or the {s2} {v2[0]} the {o2}", d.r.choice(
        [f"the {s1} {v1[0]} the {o1}", f"the {s2} {v2[0]} the {o2}"])


def n_add_adjective(d: _Draw) -> tuple[str, str]:
    s, o, v, cat = d.event()
    a = d.r.choice(PERSON_ADJ_ANTONYMS)[d.r.randrange(2)]
    oa = d.r.choice(OBJECT_ADJS) if cat != "person" else d.r.choice(PERSON_ADJ_ANTONYMS)[d.r.randrange(2)]
    return f"the {s} {v[0]} the {o}", d.r.choice([f"the {a} {s} {v[0]} the {o}", f"the {s} {v[0]} the {oa} {o}"])


def n_add_location(d: _Draw) -> tuple[str, str]:
    s, o, v, _ = d.event()
    return f"the {s} {v[0]} the {o}", f"the {s} {v[0]} the {o} {d.r.choice(LOCATIONS)}"


def n_add_time_or_reason(d: _Draw) -> tuple[str, str]:
    s, o, v, _ = d.event()
    extra = d.r.choice([d.r.choice(TIMES), f"because the {s} {_be(s, True)} {d.r.choice(STATES)}"])
    return f"the {s} {v[0]} the {o}", f"the {s} {v[0]} the {o} {extra}"


def n_add_conjunct(d: _Draw) -> tuple[str, str]:
    s = d.person()[0]
    cat, v, _ = d.obj_event()
    o1, o2 = d.r.sample(OBJECTS[cat], 2)
    return f"the {s} {v[0]} the {o1}", f"the {s} {v[0]} the {o1} and the {o2}"


def n_unrelated_state(d: _Draw) -> tuple[str, str]:
    s, o, v, _ = d.event()
    who = d.r.choice([s, o]) if o in PEOPLE or o in PEOPLE.values() else s
    return f"the {s} {v[0]} the {o}", f"the {who} {_be(who, True)} {d.r.choice(STATES)}"


def n_activity_location(d: _Draw) -> tuple[str, str]:
    s = d.person()[0]
    a = d.r.choice(ACTIVITIES)
    return f"the {s} {_be(s)} {a}", f"the {s} {_be(s)} {a} {d.r.choice(LOCATIONS)}"


# Pools: label -> {wants high overlap: constructions}. A draw whose measured overlap class differs is redrawn.
POOLS: dict[str, dict[bool, list[Construction]]] = {
    "entailment": {
        True: [e_drop_adjective, e_drop_location, e_drop_time, e_drop_adverb, e_subject_conjunct,
               e_object_conjunct, e_drop_relative, e_factive, e_activity_drop_location, e_passive_to_active],
        False: [e_active_to_passive, e_object_hypernym, e_subject_hypernym, e_adjective_synonym,
                e_awake, e_something, e_passive_to_active],
    },
    "contradiction": {
        True: [c_role_swap, c_passive_swap, c_never, c_premise_not_activity, c_instead_of, c_and_not],
        False: [c_hypothesis_negation, c_adjective_antonym, c_incompatible_activity, c_nobody, c_asleep,
                c_passive_swap],
    },
    "neutral": {
        True: [n_nonfactive, n_conditional, n_hedge, n_disjunction],
        False: [n_add_adjective, n_add_location, n_add_time_or_reason, n_add_conjunct,
                n_unrelated_state, n_activity_location],
    },
}


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
