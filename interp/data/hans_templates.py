"""The templates of the HANS-style generator, one or more per HANS subcase, and the subcase table.

Each template draws a (premise, hypothesis) pair of trees with a builder (interp.data.hans_trees); the
label is fixed by the subcase (``SUBCASES``: subcase -> heuristic, label, templates).
"""

from __future__ import annotations

from interp.data.hans_trees import (
    _B,
    Example,
    Leaf,
    Node,
    Template,
    Tree,
    _retag,
    _tv,
    tree_leaves,
)
from interp.data.hans_vocab import (
    ADJS,
    ADV_ENT,
    ADV_NONENT,
    FACTIVE,
    IF_CONJS,
    INTRANSITIVE,
    NONFACTIVE,
    NOUNS_PL,
    NPS_VERBS,
    NPZ_CONJS,
    NPZ_VERBS,
    PARTICIPLES,
    PASSIVE_OK,
    PLACES,
    RELS,
    SINCE_CONJS,
    UNDERSTOOD,
)


# --- lexical overlap: non-entailment -----------------------------------------------------------
def t_swap(b: _B) -> Example:
    n1, n2 = b.nps(2); v, d = b.v(), b.end()
    return _tv(b, n1, v, n2, d), _tv(b, n2, v, n1, d)


def _prep_subj(b: _B) -> tuple[Tree, Tree, Tree, Leaf, Tree]:
    n1, n2, n3 = b.nps(3); v, d = b.v(), b.end()
    return n1, n2, n3, v, b.s(("NP", [n1, b.pp(n2)]), ("VP", [v, n3]), d)


def t_prep_a(b: _B) -> Example:
    n1, n2, n3, v, p = _prep_subj(b); return p, _tv(b, n2, v, n1, tree_leaves(p)[-1])


def t_prep_b(b: _B) -> Example:
    n1, n2, n3, v, p = _prep_subj(b); return p, _tv(b, n3, v, n1, tree_leaves(p)[-1])


def t_prep_c(b: _B) -> Example:
    n1, n2, n3, v, p = _prep_subj(b); return p, _tv(b, n3, v, n2, tree_leaves(p)[-1])


def t_prep_d(b: _B) -> Example:
    n1, n2, n3 = b.nps(3); v, d = b.v(), b.end()
    p = b.s(n1, ("VP", [v, ("NP", [n2, b.pp(n3)])]), d)
    return p, _tv(b, n2, v, n1, d)


def _rc_subj(b: _B, obj_gap: bool) -> tuple[list[Tree], Leaf, Leaf, Tree]:
    """the N1 who V1 the N2 V2 the N3 (or object gap: the N1 who the N2 V1 V2 the N3)."""
    n1, n2, n3 = b.nps(3); v1, v2, d = b.v(), b.v(), b.end()
    rel = b.leaf("WP", b.r.choice(RELS))
    inner = b.s(n2, ("VP", [v1])) if obj_gap else b.s(("VP", [v1, n2]))
    return [n1, n2, n3], v1, v2, b.s(("NP", [n1, ("SBAR", [rel, inner])]), ("VP", [v2, n3]), d)


def _rc_obj(b: _B, obj_gap: bool) -> tuple[list[Tree], Leaf, Leaf, Tree]:
    """the N1 V1 the N2 who V2 the N3 (or object gap: the N1 V1 the N2 who the N3 V2)."""
    n1, n2, n3 = b.nps(3); v1, v2, d = b.v(), b.v(), b.end()
    rel = b.leaf("WP", b.r.choice(RELS))
    inner = b.s(n3, ("VP", [v2])) if obj_gap else b.s(("VP", [v2, n3]))
    return [n1, n2, n3], v1, v2, b.s(n1, ("VP", [v1, ("NP", [n2, ("SBAR", [rel, inner])])]), d)


def t_rc_a(b: _B) -> Example:  # N1 V1 N2 (subject RC) -> N2 V1 N1
    (n1, n2, _), v1, _, p = _rc_subj(b, False); return p, _tv(b, n2, v1, n1, tree_leaves(p)[-1])


def t_rc_b(b: _B) -> Example:  # N2 V1 N1 (object RC) -> N1 V1 N2
    (n1, n2, _), v1, _, p = _rc_subj(b, True); return p, _tv(b, n1, v1, n2, tree_leaves(p)[-1])


def t_rc_c(b: _B) -> Example:  # N2 V2 N3 -> N3 V2 N2
    (_, n2, n3), _, v2, p = _rc_obj(b, False); return p, _tv(b, n3, v2, n2, tree_leaves(p)[-1])


def t_rc_d(b: _B) -> Example:  # N1 V2 N3 is false: N2 V2 N3 -> N1 V2 N3 ... (subject of V2 is N1)
    (n1, n2, n3), _, v2, p = _rc_subj(b, False); return p, _tv(b, n3, v2, n1, tree_leaves(p)[-1])


def _passive(b: _B) -> tuple[Tree, Tree, Leaf, Tree]:
    n1, n2 = b.nps(2); v, d = b.v(PASSIVE_OK, "VBN"), b.end()
    aux = b.leaf("VBD", "were" if tree_leaves(n1)[-1][0] == "NNS" else "was")
    p = b.s(n1, ("VP", [aux, ("VP", [v, ("PP", [b.leaf("IN", "by"), n2])])]), d)
    return n1, n2, v, p


def t_passive_wrong(b: _B) -> Example:
    n1, n2, v, p = _passive(b); return p, _tv(b, n1, _retag(v, "VBD"), n2, tree_leaves(p)[-1])


def _conj_subj(b: _B) -> tuple[Tree, Tree, Tree, Leaf, Tree]:
    n1, n2, n3 = b.nps(3); v, d = b.v(), b.end()
    return n1, n2, n3, v, b.s(("NP", [n1, b.leaf("CC", "and"), n2]), ("VP", [v, n3]), d)


def _conj_obj(b: _B) -> tuple[Tree, Tree, Tree, Leaf, Tree]:
    n1, n2, n3 = b.nps(3); v, d = b.v(), b.end()
    return n1, n2, n3, v, b.s(n1, ("VP", [v, ("NP", [n2, b.leaf("CC", "and"), n3])]), d)


def t_conj_a(b: _B) -> Example:
    n1, n2, _, v, p = _conj_subj(b); return p, _tv(b, n1, v, n2, tree_leaves(p)[-1])


def t_conj_b(b: _B) -> Example:
    n1, _, n3, v, p = _conj_subj(b); return p, _tv(b, n3, v, n1, tree_leaves(p)[-1])


def t_conj_c(b: _B) -> Example:
    _, n2, n3, v, p = _conj_obj(b); return p, _tv(b, n2, v, n3, tree_leaves(p)[-1])


# --- lexical overlap: entailment ---------------------------------------------------------------
def t_rc_ent_a(b: _B) -> Example:
    (n1, n2, _), v1, _, p = _rc_subj(b, True); return p, _tv(b, n2, v1, n1, tree_leaves(p)[-1])


def t_rc_ent_b(b: _B) -> Example:
    (n1, n2, _), v1, _, p = _rc_subj(b, False); return p, _tv(b, n1, v1, n2, tree_leaves(p)[-1])


def t_rc_ent_c(b: _B) -> Example:
    (_, n2, n3), _, v2, p = _rc_obj(b, False); return p, _tv(b, n2, v2, n3, tree_leaves(p)[-1])


def t_rc_ent_d(b: _B) -> Example:
    (_, n2, n3), _, v2, p = _rc_obj(b, True); return p, _tv(b, n3, v2, n2, tree_leaves(p)[-1])


def t_around_pp(b: _B) -> Example:
    n1, _, n3, v, p = _prep_subj(b); return p, _tv(b, n1, v, n3, tree_leaves(p)[-1])


def t_around_rc(b: _B) -> Example:
    n1, n3 = b.nps(2); v, d = b.v(), b.end()
    rel = b.leaf("WP", b.r.choice(RELS))
    k = b.r.randrange(3)
    if k == 0:
        inner = b.s(("VP", [b.v(INTRANSITIVE)]))
    elif k == 1:
        inner = b.s(("VP", [b.v(), b.np(n1, n3)]))
    else:
        inner = b.s(b.np(n1, n3), ("VP", [b.v()]))
    p = b.s(("NP", [n1, ("SBAR", [rel, inner])]), ("VP", [v, n3]), d)
    return p, _tv(b, n1, v, n3, d)


def t_conj_ent_a(b: _B) -> Example:
    n1, n2, n3, v, p = _conj_subj(b); return p, _tv(b, b.r.choice([n1, n2]), v, n3, tree_leaves(p)[-1])


def t_conj_ent_b(b: _B) -> Example:
    n1, n2, n3, v, p = _conj_obj(b); return p, _tv(b, n1, v, b.r.choice([n2, n3]), tree_leaves(p)[-1])


def t_passive_ent(b: _B) -> Example:
    n1, n2, v, p = _passive(b); return p, _tv(b, n2, _retag(v, "VBD"), n1, tree_leaves(p)[-1])


# --- subsequence -------------------------------------------------------------------------------
def t_nps(b: _B) -> Example:
    n1, n2 = b.nps(2); v, d = b.v(NPS_VERBS), b.end()
    p = b.s(n1, ("VP", [v, ("SBAR", [b.s(n2, b.vp(n1, n2))])]), d)
    return p, _tv(b, n1, v, n2, d)


def t_pp_on_subj(b: _B) -> Example:
    n1, n2 = b.nps(2); vp, d = b.vp(n1, n2), b.end()
    return b.s(("NP", [n1, b.pp(n2)]), vp, d), b.s(n2, vp, d)


def t_rc_on_subj(b: _B) -> Example:
    n1, n2 = b.nps(2); vp, d = b.vp(n1, n2), b.end()
    inner = b.s(("VP", [b.v(), n2]))
    return b.s(("NP", [n1, ("SBAR", [b.leaf("WP", b.r.choice(RELS)), inner])]), vp, d), b.s(n2, vp, d)


def t_past_participle(b: _B) -> Example:
    n1 = b.np(); v, d = b.v(PARTICIPLES, "VBN"), b.end()
    loc = ("PP", [b.leaf("IN", "in"), ("NP", [b.leaf("DT", "the"), b.leaf("NN", b.r.choice(PLACES))])])
    p = b.s(("NP", [n1, ("VP", [v, loc])]), b.vp(n1), d)
    return p, b.s(n1, ("VP", [_retag(v, "VBD"), loc]), d)


def t_npz(b: _B) -> Example:
    n1, n2 = b.nps(2); v, d = b.v(NPZ_VERBS), b.end()
    conj = b.leaf("IN", b.r.choice(NPZ_CONJS))
    p = b.s(("SBAR", [conj, b.s(n1, ("VP", [v]))]), n2, b.vp(n1, n2), d)
    return p, _tv(b, n1, v, n2, d)


def t_conj_subseq(b: _B) -> Example:
    n1, n2 = b.nps(2); vp, d = b.vp(n1, n2), b.end()
    return b.s(("NP", [n1, b.leaf("CC", "and"), n2]), vp, d), b.s(n2, vp, d)


def t_adjective(b: _B) -> Example:
    n = b.r.choice(NOUNS_PL); n1 = ("NP", [b.leaf("NNS", n)])
    adj = b.leaf("JJ", b.r.choice(ADJS)); vp, d = b.vp(n1), b.end()
    return b.s(("NP", [adj, n1]), vp, d), b.s(n1, vp, d)


def t_understood_object(b: _B) -> Example:
    n1 = b.np(); verb = b.r.choice(list(UNDERSTOOD)); v, d = b.leaf("VBD", verb), b.end()
    obj = ("NP", [b.leaf("DT", "the"), b.leaf("NN", b.r.choice(UNDERSTOOD[verb]))])
    return b.s(n1, ("VP", [v, obj]), d), b.s(n1, ("VP", [v]), d)


def t_rc_on_obj(b: _B) -> Example:
    n1, n2 = b.nps(2); v, d = b.v(), b.end()
    inner = b.s(("VP", [b.v(INTRANSITIVE)])) if b.r.random() < 0.5 else b.s(("VP", [b.v(), b.np(n1, n2)]))
    p = b.s(n1, ("VP", [v, ("NP", [n2, ("SBAR", [b.leaf("WP", b.r.choice(RELS)), inner])])]), d)
    return p, _tv(b, n1, v, n2, d)


def t_pp_on_obj(b: _B) -> Example:
    n1, n2 = b.nps(2); v, d = b.v(), b.end()
    p = b.s(n1, ("VP", [v, ("NP", [n2, b.pp(b.np(n1, n2))])]), d)
    return p, _tv(b, n1, v, n2, d)


# --- constituent -------------------------------------------------------------------------------
def _clause(b: _B, *exclude: Tree) -> Node:
    n = b.np(*exclude)
    return b.s(n, b.vp(n, *exclude))


def _two_clauses(b: _B, words: list[str], first: bool) -> Example:
    """[CONJ S1] , S2 .  -> S1 (first) or S2."""
    s1 = _clause(b); s2 = _clause(b, s1[1][0]); d = b.end()
    p = b.s(("SBAR", [b.leaf("IN", b.r.choice(words)), s1]), b.leaf(",", ","), s2, d)
    return p, b.s(*(s1 if first else s2)[1], d)


def _coord(b: _B, cc: str) -> Example:
    s1 = _clause(b); s2 = _clause(b, s1[1][0]); d = b.end()
    p = b.s(s1, b.leaf(",", ","), b.leaf("CC", cc), s2, d)
    return p, b.s(*b.r.choice([s1, s2])[1], d)


def _embedded(b: _B, verbs: list[str]) -> Example:
    n1 = b.np(); s2 = _clause(b, n1); d = b.end()
    p = b.s(n1, ("VP", [b.leaf("VBD", b.r.choice(verbs)), ("SBAR", [b.leaf("IN", "that"), s2])]), d)
    return p, b.s(*s2[1], d)


def _adverb(b: _B, advs: list[str]) -> Example:
    s1 = _clause(b); d = b.end()
    return b.s(b.leaf("RB", b.r.choice(advs)), s1, d), b.s(*s1[1], d)


def t_under_if(b: _B) -> Example: return _two_clauses(b, IF_CONJS, True)
def t_after_if(b: _B) -> Example: return _two_clauses(b, IF_CONJS, False)
def t_under_since(b: _B) -> Example: return _two_clauses(b, SINCE_CONJS, True)
def t_after_since(b: _B) -> Example: return _two_clauses(b, SINCE_CONJS, False)
def t_or(b: _B) -> Example: return _coord(b, "or")
def t_and(b: _B) -> Example: return _coord(b, "and")
def t_nonfactive(b: _B) -> Example: return _embedded(b, NONFACTIVE)
def t_factive(b: _B) -> Example: return _embedded(b, FACTIVE)
def t_adv_nonent(b: _B) -> Example: return _adverb(b, ADV_NONENT)
def t_adv_ent(b: _B) -> Example: return _adverb(b, ADV_ENT)


# subcase -> (heuristic, label, templates)
SUBCASES: dict[str, tuple[str, str, list[Template]]] = {
    "ln_subject/object_swap": ("lexical_overlap", "non-entailment", [t_swap]),
    "ln_preposition": ("lexical_overlap", "non-entailment", [t_prep_a, t_prep_b, t_prep_c, t_prep_d]),
    "ln_relative_clause": ("lexical_overlap", "non-entailment", [t_rc_a, t_rc_b, t_rc_c, t_rc_d]),
    "ln_passive": ("lexical_overlap", "non-entailment", [t_passive_wrong]),
    "ln_conjunction": ("lexical_overlap", "non-entailment", [t_conj_a, t_conj_b, t_conj_c]),
    "le_relative_clause": ("lexical_overlap", "entailment", [t_rc_ent_a, t_rc_ent_b, t_rc_ent_c, t_rc_ent_d]),
    "le_around_prepositional_phrase": ("lexical_overlap", "entailment", [t_around_pp]),
    "le_around_relative_clause": ("lexical_overlap", "entailment", [t_around_rc]),
    "le_conjunction": ("lexical_overlap", "entailment", [t_conj_ent_a, t_conj_ent_b]),
    "le_passive": ("lexical_overlap", "entailment", [t_passive_ent]),
    "sn_NP/S": ("subsequence", "non-entailment", [t_nps]),
    "sn_PP_on_subject": ("subsequence", "non-entailment", [t_pp_on_subj]),
    "sn_relative_clause_on_subject": ("subsequence", "non-entailment", [t_rc_on_subj]),
    "sn_past_participle": ("subsequence", "non-entailment", [t_past_participle]),
    "sn_NP/Z": ("subsequence", "non-entailment", [t_npz]),
    "se_conjunction": ("subsequence", "entailment", [t_conj_subseq]),
    "se_adjective": ("subsequence", "entailment", [t_adjective]),
    "se_understood_object": ("subsequence", "entailment", [t_understood_object]),
    "se_relative_clause_on_obj": ("subsequence", "entailment", [t_rc_on_obj]),
    "se_PP_on_obj": ("subsequence", "entailment", [t_pp_on_obj]),
    "cn_embedded_under_if": ("constituent", "non-entailment", [t_under_if]),
    "cn_after_if_clause": ("constituent", "non-entailment", [t_after_if]),
    "cn_embedded_under_verb": ("constituent", "non-entailment", [t_nonfactive]),
    "cn_disjunction": ("constituent", "non-entailment", [t_or]),
    "cn_adverb": ("constituent", "non-entailment", [t_adv_nonent]),
    "ce_embedded_under_since": ("constituent", "entailment", [t_under_since]),
    "ce_after_since_clause": ("constituent", "entailment", [t_after_since]),
    "ce_embedded_under_verb": ("constituent", "entailment", [t_factive]),
    "ce_conjunction": ("constituent", "entailment", [t_and]),
    "ce_adverb": ("constituent", "entailment", [t_adv_ent]),
}
# Global template names, HANS style ("temp1", ...), in declaration order.
TEMPLATE_NAMES: dict[Template, str] = {
    t: f"temp{i + 1}" for i, t in enumerate(t for _, _, ts in SUBCASES.values() for t in ts)}
