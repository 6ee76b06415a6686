"""Student construction: layer copies, random/narrow students, compatibility errors."""
import pytest
import torch
from _kd_tiny import tiny_bert, tiny_tokenizer

from interp.train.students import (
    StudentSpec,
    check_compatible,
    make_student,
    random_student,
    student_from_teacher_layers,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def test_student_from_teacher_layers_copies_exactly():
    t = tiny_bert(layers=4)
    s = student_from_teacher_layers(t, [0, 2, 3])
    assert s.config.num_hidden_layers == 3
    assert type(s) is type(t)
    tsd, ssd = t.state_dict(), s.state_dict()
    for j, i in enumerate([0, 2, 3]):
        for k, v in tsd.items():
            pre = f"bert.encoder.layer.{i}."
            if k.startswith(pre):
                assert torch.equal(ssd[f"bert.encoder.layer.{j}." + k[len(pre):]], v)
    for k in tsd:
        if "encoder.layer" not in k:
            assert torch.equal(ssd[k], tsd[k]), k
    # independent copies
    s.bert.embeddings.word_embeddings.weight.data.add_(1.0)
    assert not torch.equal(s.bert.embeddings.word_embeddings.weight, t.bert.embeddings.word_embeddings.weight)


def test_student_identity_map_reproduces_teacher_outputs():
    t = tiny_bert(layers=3)
    s = student_from_teacher_layers(t, [0, 1, 2]).eval()
    tok = tiny_tokenizer()
    x = tok(["the doctor saw the cat", "a dog ran"], padding=True, return_tensors="pt")
    with torch.no_grad():
        assert torch.allclose(t(**x).logits, s(**x).logits, atol=1e-6)


def test_layer_index_out_of_range():
    t = tiny_bert(layers=4)
    with pytest.raises(IndexError, match="out of range"):
        student_from_teacher_layers(t, [0, 4])
    with pytest.raises(IndexError):
        student_from_teacher_layers(t, [-1])
    with pytest.raises(ValueError):
        student_from_teacher_layers(t, [])


def test_random_and_narrow_students():
    t = tiny_bert(layers=4, hidden=32, heads=4)
    s = random_student(t, num_layers=2, seed=1)
    assert s.config.num_hidden_layers == 2 and s.config.hidden_size == 32
    assert not torch.equal(s.bert.embeddings.word_embeddings.weight, t.bert.embeddings.word_embeddings.weight)
    n = random_student(t, num_layers=2, hidden_size=16, num_heads=2, seed=1)
    assert n.config.hidden_size == 16 and n.config.num_attention_heads == 2 and n.config.intermediate_size == 32
    assert n.config.id2label == t.config.id2label and n.config.vocab_size == t.config.vocab_size
    # deterministic in the seed, and does not disturb the global RNG
    torch.manual_seed(5)
    a = torch.rand(1)
    torch.manual_seed(5)
    n2 = random_student(t, num_layers=2, hidden_size=16, num_heads=2, seed=1)
    assert torch.rand(1).item() == a.item()
    assert torch.equal(n.classifier.weight, n2.classifier.weight)
    with pytest.raises(ValueError, match="divisible"):
        random_student(t, hidden_size=30, num_heads=4)
    tok = tiny_tokenizer()
    x = tok(["the doctor saw the cat"], return_tensors="pt")
    assert n.eval()(**x).logits.shape == (1, 3)
    check_compatible(t, n, tok, tok)


def test_make_student_spec():
    t = tiny_bert(layers=4)
    s = make_student(t, StudentSpec(init="teacher_layers", layers=[1, 3]))
    assert s.config.num_hidden_layers == 2
    r = make_student(t, {"init": "random", "layers": None, "num_layers": 3, "hidden_size": 16, "num_heads": 2})
    assert r.config.num_hidden_layers == 3 and r.config.hidden_size == 16
    with pytest.raises(ValueError):
        make_student(t, StudentSpec(init="teacher_layers", hidden_size=16))
    with pytest.raises(ValueError):
        make_student(t, StudentSpec(init="nope"))


def test_compatibility_errors():
    t = tiny_bert(layers=2)
    other = tiny_bert(layers=2, labels=("contradiction", "neutral", "entailment"))
    with pytest.raises(ValueError, match="label order"):
        check_compatible(t, other)
    bigger = tiny_bert(layers=2, vocab_size=40)
    with pytest.raises(ValueError, match="vocab"):
        check_compatible(t, bigger)
    tok = tiny_tokenizer()
    from transformers import BertTokenizer
    tok2 = BertTokenizer(vocab={t_: i for i, t_ in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "x"] + [f"w{k}" for k in range(19)])})
    with pytest.raises(ValueError, match="tokenizer"):
        check_compatible(t, tiny_bert(layers=1), tok, tok2)


def test_label_names_compare_case_insensitively():
    t = tiny_bert(layers=2)
    check_compatible(t, tiny_bert(layers=1, labels=("Entailment", " NEUTRAL", "contradiction ")))  # no error
    with pytest.raises(ValueError, match="label order"):  # a real order difference, in another case
        check_compatible(t, tiny_bert(layers=1, labels=("Neutral", "Entailment", "Contradiction")))


def test_builders_return_eval_mode_models_that_load_subject_accepts():
    from interp.subject import load_subject

    t = tiny_bert(layers=3)
    t.config.hidden_dropout_prob = 0.1  # dropout would make a train-mode student random
    for s in (student_from_teacher_layers(t, [0, 2]), random_student(t, num_layers=2),
              make_student(t, StudentSpec(init="random", layers=None, num_layers=2, seed=1))):
        assert not any(m.training for m in s.modules())
        load_subject(s, tokenizer=tiny_tokenizer())  # refused a train-mode model before
