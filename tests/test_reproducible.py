"""Generated data must be identical across processes (Python randomises str hashes per process)."""
from __future__ import annotations

import subprocess
import sys

SNIPPET = """
import hashlib
from interp.data.nli_gen import generate_nli_splits
from interp.data.hans_gen import generate_hans
s = generate_nli_splits(2000, 400, seed=3)
h = generate_hans(30, seed=3)
rows = [(e["id"], e["premise"], e["hypothesis"], e["label"]) for e in s["train"] + s["test"] + h]
print(hashlib.sha256(repr(rows).encode()).hexdigest())
"""


def test_generators_are_identical_across_hash_seeds():
    digests = {subprocess.run([sys.executable, "-c", SNIPPET], env={"PYTHONHASHSEED": seed}, capture_output=True,
                              text=True, check=True).stdout.strip() for seed in ("1", "2", "3")}
    assert len(digests) == 1
