"""Vocabulary of the biased NLI generator (interp.data.nli_gen): people, verbs, objects, adjectives, places.

Everyday English, whole words in the BERT uncased vocabulary, disjoint in content words from the HANS
generator's (interp.data.hans_vocab) so HANS tests generalisation.
"""

from __future__ import annotations

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
