"""One compatibility check (interp.compat) for Subjects and HF models, one label-order check, one layer-map home."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest
import transformers as T
from conftest import make_bert, make_tokenizer, make_vit

from interp.compat import check_compatible
from interp.pair import spaced_layer_map
from interp.subject import load_subject

ROOT = Path(__file__).resolve().parents[1]


def test_each_concept_has_one_definition():
    """check_label_order, check_compatible and default_layer_map are defined once in the package."""
    defs: dict[str, list[str]] = {}
    for path in (ROOT / "interp").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef):
                defs.setdefault(node.name, []).append(str(path.relative_to(ROOT)))
    assert defs["check_label_order"] == ["interp/metrics.py"]
    assert defs["check_compatible"] == ["interp/compat.py"]
    assert defs["default_layer_map"] == ["interp/pair.py"]


def test_old_import_paths_give_the_one_function():
    from interp import pair
    from interp.train import students
    assert pair.check_compatible is students.check_compatible is check_compatible


def test_subjects_and_models_are_checked_alike():
    tok = make_tokenizer()
    teacher, student = make_bert(3, seed=0), make_bert(2, seed=1)
    check_compatible(teacher, student, tok, tok)  # models + tokenizers
    check_compatible(load_subject(teacher, tok, device="cpu"), load_subject(student, tok, device="cpu"))  # subjects
    check_compatible(load_subject(teacher, tok, device="cpu"), student, student_tokenizer=tok)  # mixed
    swapped = make_bert(2, seed=1)
    swapped.config.id2label = {0: "neutral", 1: "entailment", 2: "contradiction"}
    for a, b in [(teacher, swapped), (load_subject(teacher, tok, device="cpu"), load_subject(swapped, tok, device="cpu"))]:
        with pytest.raises(ValueError, match=r"label orders differ: teacher has \['entailment', 'neutral', "
                                             r"'contradiction'\], student has \['neutral', .*remap the student"):
            check_compatible(a, b)


def test_labels_compare_case_and_space_insensitively():
    teacher, student = make_bert(2, seed=0), make_bert(2, seed=1)
    student.config.id2label = {0: " Entailment", 1: "NEUTRAL ", 2: "contradiction"}
    check_compatible(teacher, student)


def test_tokenizer_vocab_and_class_family():
    tok = make_tokenizer()
    fast = T.BertTokenizerFast(vocab=tok.get_vocab())
    teacher, student = make_bert(2, seed=0), make_bert(2, seed=1)
    check_compatible(teacher, student, tok, fast)  # slow and fast BERT tokenizers of one vocabulary tokenise alike
    vocab = dict(tok.get_vocab())
    first, second = sorted(vocab)[5:7]
    vocab[first], vocab[second] = vocab[second], vocab[first]
    with pytest.raises(ValueError, match="different tokenizers: vocabularies differ"):
        check_compatible(teacher, student, tok, T.BertTokenizer(vocab=vocab))
    with pytest.raises(ValueError, match="BertTokenizer vs DistilBertTokenizer"):  # same vocabulary, other rules
        check_compatible(teacher, student, tok, T.DistilBertTokenizer(vocab=tok.get_vocab()))


def test_vision_subjects_skip_token_checks():
    check_compatible(load_subject(make_vit(seed=0), device="cpu"), load_subject(make_vit(seed=1), device="cpu"))


@pytest.mark.parametrize("n_teacher, n_student, expected", [
    (12, 6, [0, 2, 4, 7, 9, 11]),   # DistilBERT's map
    (6, 3, [0, 2, 5]),              # round(2.5) = 2 (banker's rounding, as before)
    (4, 2, [0, 3]),
    (5, 1, [4]),                    # a single student layer reads the teacher's last
    (3, 3, [0, 1, 2]),
])
def test_spaced_layer_map(n_teacher, n_student, expected):
    assert spaced_layer_map(n_teacher, n_student) == dict(enumerate(expected))
