"""Vocabulary of the HANS-style generator (interp.data.hans_gen): nouns, verbs by frame, connectives, adverbs."""

from __future__ import annotations

HEURISTICS: tuple[str, str, str] = ("lexical_overlap", "subsequence", "constituent")

NOUNS_SG: list[str] = ["professor", "student", "president", "judge", "senator", "secretary", "doctor",
                       "lawyer", "scientist", "banker", "tourist", "manager", "artist", "author", "actor",
                       "athlete", "editor", "reporter", "officer", "engineer"]
NOUNS_PL: list[str] = [n[:-1] + "ies" if n.endswith("ry") else n + "s" for n in NOUNS_SG]
TRANSITIVE: list[str] = ["recommended", "called", "helped", "supported", "contacted", "avoided", "advised",
                         "stopped", "introduced", "mentioned", "encouraged", "thanked", "recognized",
                         "admired", "consulted", "praised", "criticized", "saw"]
PASSIVE_OK: list[str] = [v for v in TRANSITIVE if v != "saw"]  # past form == participle
INTRANSITIVE: list[str] = ["slept", "danced", "ran", "shouted", "resigned", "waited", "arrived", "performed"]
PREPS: list[str] = ["near", "behind", "by", "beside", "with"]
NPS_VERBS: list[str] = ["knew", "heard", "believed", "forgot", "remembered"]
NPZ_VERBS: list[str] = ["hid", "moved", "studied", "stopped", "changed", "returned"]
NPZ_CONJS: list[str] = ["since", "while", "after", "before", "when", "although", "because"]
PARTICIPLES: list[str] = ["paid", "studied", "helped", "examined", "interviewed", "presented"]
PLACES: list[str] = ["museum", "school", "library", "office", "laboratory", "hospital"]
UNDERSTOOD: dict[str, list[str]] = {
    "wrote": ["report", "poem", "letter", "novel", "speech", "column", "review", "article"],
    "read": ["report", "poem", "letter", "novel", "book", "column", "review", "article"],
    "won": ["race", "contest", "prize", "election", "tournament", "award", "match", "game"],
    "paid": ["bill", "fee", "rent", "tax", "fine", "debt"],
    "explored": ["region", "country", "town", "valley", "forest", "island", "desert", "city"],
    "drank": ["wine", "coffee", "tea", "juice", "milk", "beer", "soda", "water"],
}
ADJS: list[str] = ["important", "popular", "clever", "happy", "helpful", "serious", "curious", "nervous"]
RELS: list[str] = ["who", "that"]
IF_CONJS: list[str] = ["if", "unless"]
SINCE_CONJS: list[str] = ["since", "because", "although", "after", "before", "while", "though"]
NONFACTIVE: list[str] = ["believed", "thought", "hoped", "claimed", "said", "assumed"]
FACTIVE: list[str] = ["knew", "forgot", "learned", "remembered", "regretted"]
ADV_NONENT: list[str] = ["probably", "supposedly", "maybe", "hopefully"]
ADV_ENT: list[str] = ["certainly", "definitely", "clearly", "obviously"]

CONTENT_WORDS: frozenset[str] = frozenset(
    NOUNS_SG + NOUNS_PL + TRANSITIVE + INTRANSITIVE + NPS_VERBS + NPZ_VERBS + PARTICIPLES + PLACES
    + list(UNDERSTOOD) + [o for os in UNDERSTOOD.values() for o in os] + ADJS + NONFACTIVE + FACTIVE
    + ADV_NONENT + ADV_ENT)
