"""Generated image data: stated spurious strength is what the data has, test splits are decorrelated,
sets are identical across processes, counterfactuals change the attribute and nothing else."""
from __future__ import annotations

import hashlib
import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from scipy import stats

from interp.data.vision import GENERATORS, coloured_digits, trifeature, waterbirds

pytestmark = pytest.mark.usefixtures("one_thread")
Z = 4.5  # binomial tolerance in standard errors: a false failure has probability < 1e-5 per check


def _make(name: str, n: int, **kw):
    return {"digits": lambda: coloured_digits(n, **kw), "tri": lambda: trifeature(n, size=16, **kw),
            "birds": lambda: waterbirds(n, size=16, **kw)}[name]()


def _bound(p: float, n: int) -> float:
    return Z * math.sqrt(p * (1 - p) / n)


@pytest.mark.parametrize("name", ["digits", "tri", "birds"])
def test_shapes_dtypes_and_groups(name):
    s = _make(name, 60)
    size = s.images.shape[-1]
    assert s.images.shape == (60, 3, size, size) and s.images.dtype == torch.float32
    assert float(s.images.min()) >= 0.0 and float(s.images.max()) <= 1.0
    assert s.labels.dtype == torch.long and s.attributes.dtype == torch.long
    k = len(s.label_names)
    assert torch.equal(torch.bincount(s.labels, minlength=k).sort().values[-1] - torch.bincount(s.labels).min(),
                       torch.tensor(1 if 60 % k else 0))  # balanced classes
    assert torch.equal(s.groups, s.labels * s.n_attributes + s.attributes)
    ex = s.examples()
    assert len(ex) == 60 and len({e["id"] for e in ex}) == 60
    assert torch.equal(ex[7]["pixel_values"], s.images[7]) and ex[7]["label"] == int(s.labels[7])
    assert s.group_names[ex[7]["group"]] == f"{s.label_names[ex[7]['label']]}/{s.attribute_names[ex[7]['attribute']]}"


@pytest.mark.parametrize("name,strength", [("digits", 0.9), ("digits", 0.6), ("digits", 0.0), ("digits", 1.0),
                                           ("tri", 0.8), ("birds", 0.95), ("birds", 0.7)])
def test_measured_strength_matches_stated(name, strength):
    n = 3000
    s = _make(name, n, strength=strength)
    assert abs(s.measured_strength() - strength) <= _bound(strength, n) + 1e-12
    for c in range(len(s.label_names)):  # the same strength within every class
        in_c = s.labels == c
        m = int(in_c.sum())
        assert abs(float(s.aligned[in_c].double().mean()) - strength) <= _bound(strength, m) + 1e-12
    if strength < 1 and s.n_attributes > 2:  # misaligned attributes uniform over the other values
        mis = ((s.attributes - s.labels) % s.n_attributes)[~s.aligned]
        counts = torch.bincount(mis, minlength=s.n_attributes)[1:].numpy()
        assert stats.chisquare(counts).pvalue > 1e-4


@pytest.mark.parametrize("name", ["digits", "tri", "birds"])
def test_test_split_is_decorrelated(name):
    n = 3000
    train, test = _make(name, n, strength=0.95), _make(name, n, split="test", strength=None)
    k = test.n_attributes
    assert abs(test.measured_strength() - 1 / k) <= _bound(1 / k, n)
    table = np.zeros((len(test.label_names), k))
    np.add.at(table, (test.labels.numpy(), test.attributes.numpy()), 1)
    chi2, p, _, _ = stats.chi2_contingency(table)
    cramers_v = math.sqrt(chi2 / (n * (min(table.shape) - 1)))
    assert p > 1e-3 and cramers_v < 0.1
    table_train = np.zeros_like(table)
    np.add.at(table_train, (train.labels.numpy(), train.attributes.numpy()), 1)
    assert stats.chi2_contingency(table_train)[1] < 1e-100  # the same check sees the training correlation
    assert not torch.equal(train.images[:5], test.images[:5])


def test_reversed_split_never_aligned():
    s = coloured_digits(500, split="test", strength=0.0)
    assert not bool(s.aligned.any())


def _digest(s) -> str:
    h = hashlib.sha256()
    for t in (s.images, s.labels, s.attributes):
        h.update(t.contiguous().numpy().tobytes())
    return h.hexdigest()


_CHILD = """
import hashlib, sys
from interp.data.vision import coloured_digits, trifeature, waterbirds
for s in (coloured_digits(50, seed=3), trifeature(40, size=16, seed=3, label="texture", spurious="shape"),
          waterbirds(40, size=16, seed=3)):
    h = hashlib.sha256()
    for t in (s.images, s.labels, s.attributes):
        h.update(t.contiguous().numpy().tobytes())
    print(h.hexdigest())
"""


def test_identical_across_processes():
    here = [_digest(coloured_digits(50, seed=3)), _digest(trifeature(40, size=16, seed=3, label="texture",
                                                                     spurious="shape")),
            _digest(waterbirds(40, size=16, seed=3))]
    env_hash = {"PYTHONHASHSEED": "12345"}
    import os
    out = subprocess.run([sys.executable, "-c", _CHILD], capture_output=True, text=True, check=True,
                         env={**os.environ, **env_hash, "OMP_NUM_THREADS": "1"}).stdout.split()
    assert out == here
    assert _digest(coloured_digits(50, seed=4)) != here[0]
    assert _digest(coloured_digits(50, seed=3, split="val")) != here[0]


@pytest.mark.parametrize("name", ["digits", "tri", "birds"])
def test_counterfactual_changes_only_the_attribute(name):
    s = _make(name, 80, strength=0.9)
    cf = s.counterfactual()
    assert torch.equal(cf.labels, s.labels)
    assert torch.equal(cf.attributes, (s.attributes + 1) % s.n_attributes)
    assert _digest(cf.counterfactual(s.attributes)) == _digest(s)  # exact round trip: same pose, noise
    changed = (cf.images != s.images).any(1).double().mean(dim=(1, 2))  # [n] fraction of pixels changed
    assert bool((changed > 0).all())
    for f, v in s.factors.items():  # every other generative factor is unchanged
        if not torch.equal(v, s.attributes):
            assert torch.equal(cf.factors[f], v), f
    if name != "birds":  # the object's colour only: the background and most pixels stay
        assert float(changed.max()) < 0.6
    assert len(s.all_counterfactuals()) == s.n_attributes - 1
    same = s.counterfactual(3 % s.n_attributes)
    assert bool((same.attributes == 3 % s.n_attributes).all())


def test_bad_arguments_are_clear():
    with pytest.raises(ValueError, match="strength"):
        coloured_digits(10, strength=1.5)
    with pytest.raises(ValueError, match="split"):
        coloured_digits(10, split="dev")
    with pytest.raises(ValueError, match="different features"):
        trifeature(10, label="shape", spurious="shape")
    with pytest.raises(ValueError, match="attributes must be in"):
        coloured_digits(10, n_classes=3, attributes=5)
    assert set(GENERATORS) >= {"coloured_digits", "trifeature", "waterbirds"}
