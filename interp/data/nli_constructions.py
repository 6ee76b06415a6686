"""Constructions of the biased NLI generator: each draws a (premise, hypothesis) pair whose label is fixed
by its meaning (entailment ``e_*``, contradiction ``c_*``, neutral ``n_*``), grouped in ``POOLS`` by label
and by whether it aims at full lexical overlap. interp.data.nli_gen measures the overlap and redraws.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from interp.data.nli_vocab import (
    _CONTRA_ACTIVITY,
    ACTIVITIES,
    FACTIVE,
    HEDGES,
    INTRANS_PAST,
    LOCATIONS,
    MANNER_ADVS,
    NONFACTIVE,
    OBJECT_ADJ_SYNONYMS,
    OBJECT_ADJS,
    OBJECT_VERBS,
    OBJECTS,
    PEOPLE,
    PERSON_ADJ_ANTONYMS,
    PERSON_VERBS,
    STATES,
    TIMES,
)


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
