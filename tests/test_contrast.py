"""Contrast construction: an empty contrast is a clear error wherever it is built."""
from __future__ import annotations

import argparse

import pytest
from conftest import make_bert, make_pairs

from interp.contrast import hans_pairs, make_contrast
from interp.subject import load_subject

EMPTY = r"contrast is empty.*at least one clean/corrupted pair"


@pytest.fixture
def subject(tokenizer):
    return load_subject(make_bert(n_layers=1), tokenizer=tokenizer)


def test_make_contrast_with_no_pairs_says_the_contrast_is_empty(subject):
    with pytest.raises(ValueError, match=EMPTY):
        make_contrast(subject, [], [])
    data = make_pairs(3)
    assert len(make_contrast(subject, data, data)) == 3  # one pair or more is fine


@pytest.mark.parametrize("kwargs", [{"n": 0}, {"n": 4, "subcases": ["no_such_subcase"]}])
def test_hans_pairs_that_select_nothing_say_the_contrast_is_empty(kwargs):
    with pytest.raises(ValueError, match=EMPTY):
        hans_pairs(**kwargs)


def test_an_empty_jsonl_pair_file_says_the_contrast_is_empty(tmp_path, tokenizer):
    from interp.commands.patch import build_contrast

    make_bert(n_layers=1).save_pretrained(tmp_path / "m")
    tokenizer.save_pretrained(tmp_path / "m")
    (tmp_path / "pairs.jsonl").write_text("\n")
    args = argparse.Namespace(seed=0, model=str(tmp_path / "m"), device="cpu", pairs=str(tmp_path / "pairs.jsonl"),
                              n=4, label="entailment", metric="logodds", align="strict")
    with pytest.raises(ValueError, match=EMPTY + r".*\.jsonl"):
        build_contrast(args)
