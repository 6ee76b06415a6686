"""Capture: pooling against hand computation, streamed == in memory, resume after interruption."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from conftest import make_bert, make_pairs

from interp.capture import capture, iter_shards, load_capture
from interp.subject import load_subject

SITES = ["embed", "blocks.*.hook_resid_post", "blocks.1.attn.hook_z", "logits"]


@pytest.fixture
def subject(tokenizer):
    return load_subject(make_bert(), tokenizer=tokenizer)


def test_pooling_matches_hand_computation(subject):
    data = make_pairs(10)
    batch = subject.tokenize(data)
    with torch.no_grad():
        _, cache = subject.run(batch, read=["blocks.2.hook_resid_post"])
    full = cache["blocks.2.hook_resid_post"]  # [batch, pos, d]
    mask = batch["attention_mask"]
    cls = capture(subject, data, "blocks.2.hook_resid_post", pool="cls", batch_size=3, progress=False)
    mean = capture(subject, data, "blocks.2.hook_resid_post", pool="mean", batch_size=3, progress=False)
    pos = [int(m.sum()) - 1 for m in mask]  # the final [SEP] of each example
    sel = capture(subject, data, "blocks.2.hook_resid_post", pool="positions", positions=pos, batch_size=3, progress=False)
    for i in range(len(data)):
        n = int(mask[i].sum())
        torch.testing.assert_close(cls.acts["blocks.2.hook_resid_post"][i], full[i, 0], atol=1e-5, rtol=0)
        torch.testing.assert_close(mean.acts["blocks.2.hook_resid_post"][i], full[i, :n].mean(0), atol=1e-5, rtol=0)
        torch.testing.assert_close(sel.acts["blocks.2.hook_resid_post"][i], full[i, n - 1], atol=1e-5, rtol=0)


@pytest.mark.parametrize("pool", ["cls", "mean", "none"])
def test_streamed_equals_in_memory(subject, tmp_path, pool):
    data = make_pairs(50)
    mem = capture(subject, data, SITES, pool=pool, batch_size=4, progress=False)
    disk = capture(subject, data, SITES, pool=pool, batch_size=4, out_dir=tmp_path, shard_size=10, progress=False)
    assert len(list(iter_shards(tmp_path))) == 5  # shard size rounds up to a multiple of the batch size (12)
    assert disk.ids == mem.ids == [d["id"] for d in data]
    for site in mem.acts:
        assert torch.equal(mem.acts[site], disk.acts[site]), site
    assert disk.meta["model_fingerprint"] == subject.fingerprint
    assert "torch" in disk.meta["versions"]


def test_resume_after_interruption_is_identical(subject, tmp_path):
    data = make_pairs(40)
    reference = capture(subject, data, SITES, pool="mean", batch_size=4, progress=False)
    real_run, calls = subject.run, {"n": 0}

    def failing_run(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 7:
            raise KeyboardInterrupt
        return real_run(*args, **kwargs)

    subject.run = failing_run
    with pytest.raises(KeyboardInterrupt):
        capture(subject, data, SITES, pool="mean", batch_size=4, out_dir=tmp_path, shard_size=8, progress=False)
    subject.run = real_run
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert sum(s["n"] for s in manifest["shards"]) == 24 and not manifest["complete"]
    resumed_calls = {"n": 0}

    def counting_run(*args, **kwargs):
        resumed_calls["n"] += 1
        return real_run(*args, **kwargs)

    subject.run = counting_run
    resumed = capture(subject, data, SITES, pool="mean", batch_size=4, out_dir=tmp_path, shard_size=8, progress=False)
    assert resumed_calls["n"] == 4  # only the 16 examples not yet written
    for site in reference.acts:
        assert torch.equal(reference.acts[site], resumed.acts[site])


def test_kill_and_resume_from_the_command_line(tokenizer, tmp_path):
    """SIGKILL a CLI capture mid-run, rerun the same command: the result equals an uninterrupted run."""
    model_dir, data_file = tmp_path / "model", tmp_path / "data.jsonl"
    make_bert().save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    data_file.write_text("\n".join(json.dumps(d) for d in make_pairs(3000)))
    cmd = [sys.executable, "-m", "interp.cli", "capture", "--model", str(model_dir), "--data", str(data_file),
           "--sites", "blocks.*.hook_resid_post", "--pool", "mean", "--batch-size", "16", "--shard-size", "64"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(cmd + ["--out", str(tmp_path / "killed")], env=env, stderr=subprocess.DEVNULL)
    manifest = tmp_path / "killed" / "manifest.json"
    deadline = time.time() + 120
    while time.time() < deadline and not (manifest.exists() and len(json.loads(manifest.read_text())["shards"]) >= 2):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = json.loads(manifest.read_text())
    assert not done["complete"], "the run finished before it could be killed; make the data larger"
    subprocess.run(cmd + ["--out", str(tmp_path / "killed")], env=env, check=True, stderr=subprocess.DEVNULL)
    subprocess.run(cmd + ["--out", str(tmp_path / "whole")], env=env, check=True, stderr=subprocess.DEVNULL)
    a, b = load_capture(tmp_path / "killed"), load_capture(tmp_path / "whole")
    assert a.ids == b.ids and len(a.ids) == 3000
    for site in a.acts:
        assert torch.equal(a.acts[site], b.acts[site])


def test_capture_refuses_a_different_config_in_the_same_folder(subject, tmp_path):
    data = make_pairs(8)
    capture(subject, data, "blocks.*.hook_resid_post", pool="mean", out_dir=tmp_path, progress=False)
    with pytest.raises(FileExistsError, match="different config"):
        capture(subject, data, "blocks.*.hook_resid_post", pool="cls", out_dir=tmp_path, progress=False)


def test_pattern_needs_token_level(subject):
    with pytest.raises(ValueError, match="pool='none'"):
        capture(subject, make_pairs(4), "blocks.0.attn.hook_pattern", pool="mean", progress=False)


def test_nan_activations_are_reported(subject):
    with torch.no_grad():
        subject.model.bert.embeddings.word_embeddings.weight[7] = float("nan")
    data = [{"premise": "w2 w3", "hypothesis": "w4"}]
    with pytest.raises(FloatingPointError, match="Non-finite"):
        capture(subject, data, "blocks.0.hook_resid_post", progress=False)
