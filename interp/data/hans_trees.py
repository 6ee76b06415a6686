"""Small labelled trees for the HANS-style generator: leaves with uids, the per-example builder, rendering.

A leaf is (POS tag, word, uid); a tree is a leaf or (label, children). The hypothesis reuses premise
subtrees, so uids give an exact token alignment (`alignment`). `render_parse` and `render_binary_parse`
write the HANS file's parse columns.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from typing_extensions import TypeIs

from interp.data.hans_vocab import (
    INTRANSITIVE,
    NOUNS_PL,
    NOUNS_SG,
    PREPS,
    TRANSITIVE,
)

Leaf = tuple[str, str, int]                       # (POS tag, word, uid)
Node = tuple[str, Sequence[Any]]                   # (label, children: trees; Any, as nested literals join badly)
Tree = Leaf | Node                                 # leaf or (label, children)


def _is_leaf(t: Tree) -> TypeIs[Leaf]:
    return isinstance(t[1], str)


def tree_leaves(t: Tree) -> list[Leaf]:
    """Leaves of a tree, left to right."""
    return [t] if _is_leaf(t) else [x for c in t[1] for x in tree_leaves(c)]


def tree_spans(t: Tree) -> list[list[str]]:
    """Lower-cased word sequence of every phrase node (the constituents of the tree)."""
    if _is_leaf(t):
        return [[t[1].lower()]]
    return [[w[1].lower() for w in tree_leaves(t)]] + [s for c in t[1] for s in tree_spans(c)]


def _cap(words: list[str]) -> list[str]:
    return [words[0][0].upper() + words[0][1:]] + words[1:] if words else words


def render_parse(t: Tree) -> str:
    """Penn-style bracketing, e.g. ``(ROOT (S (NP (DT The) (NN doctor)) ...))``, first word capitalised."""
    first = tree_leaves(t)[0][2]

    def go(x: Tree) -> str:
        if _is_leaf(x):
            w = x[1][0].upper() + x[1][1:] if x[2] == first else x[1]
            return f"({x[0]} {w})"
        return f"({x[0]} " + " ".join(go(c) for c in x[1]) + ")"

    return f"(ROOT {go(t)})"


def render_binary_parse(t: Tree) -> str:
    """Unlabelled, right-binarised bracketing like HANS's ``sentence1_binary_parse``."""
    first = tree_leaves(t)[0][2]

    def go(x: Tree) -> str:
        if _is_leaf(x):
            return x[1][0].upper() + x[1][1:] if x[2] == first else x[1]
        kids = [go(c) for c in x[1]]
        out = kids[-1]
        for k in reversed(kids[:-1]):
            out = f"( {k} {out} )"
        return out

    return go(t)


class _B:
    """Tree builder for one example: fresh uids, random vocabulary."""

    def __init__(self, rng: random.Random):
        self.r, self._uid = rng, itertools.count()

    def leaf(self, tag: str, word: str) -> Leaf:
        return (tag, word, next(self._uid))

    def noun(self, exclude: tuple[str, ...] = ()) -> str:
        return self.r.choice([n for n in NOUNS_SG + NOUNS_PL if n not in exclude and _sg(n) not in map(_sg, exclude)])

    def np(self, *exclude: Tree) -> Tree:
        used = tuple(tree_leaves(e)[-1][1] for e in exclude)
        n = self.noun(used)
        return ("NP", [self.leaf("DT", "the"), self.leaf("NNS" if n in NOUNS_PL else "NN", n)])

    def nps(self, k: int) -> list[Tree]:
        out: list[Tree] = []
        for _ in range(k):
            out.append(self.np(*out))
        return out

    def v(self, words: list[str] = TRANSITIVE, tag: str = "VBD") -> Leaf:
        return self.leaf(tag, self.r.choice(words))

    def vp(self, *exclude: Tree) -> Tree:
        """Intransitive or transitive VP; its object avoids the nouns of ``exclude``."""
        if self.r.random() < 0.5:
            return ("VP", [self.v(INTRANSITIVE)])
        return ("VP", [self.v(), self.np(*exclude)])

    def pp(self, np: Tree) -> Tree:
        return ("PP", [self.leaf("IN", self.r.choice(PREPS)), np])

    def s(self, *children: Tree) -> Node:
        return ("S", list(children))

    def end(self) -> Leaf:
        return self.leaf(".", ".")


def _sg(n: str) -> str:
    return NOUNS_SG[NOUNS_PL.index(n)] if n in NOUNS_PL else n


def _retag(leaf: Leaf, tag: str) -> Leaf:
    return (tag, leaf[1], leaf[2])


Example = tuple[Tree, Tree]  # (premise S tree, hypothesis S tree), both ending with "."
Template = Callable[[_B], Example]


def _tv(b: _B, subj: Tree, verb: Leaf, obj: Tree, dot: Leaf) -> Tree:
    return b.s(subj, ("VP", [verb, obj]), dot)


def alignment(premise: Tree, hypothesis: Tree) -> list[int]:
    """For each hypothesis token, the premise token index it copies, or -1 if new."""
    pos = {leaf[2]: i for i, leaf in enumerate(tree_leaves(premise))}
    return [pos.get(leaf[2], -1) for leaf in tree_leaves(hypothesis)]
