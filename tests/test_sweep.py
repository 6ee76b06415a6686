"""Sweep settings (interp.sweep): the per-device default chunk, and reduced-precision patching sweeps."""
from __future__ import annotations

import pytest
import torch
from conftest import make_bert, make_tokenizer
from test_patching import _pairs
from test_patching import _subject as _subject_with_signal

from interp.contrast import LogOdds, make_contrast
from interp.patching import patch
from interp.subject import load_subject
from interp.sweep import CHUNK_TOKENS, chunk_rows, in_dtype

pytestmark = pytest.mark.usefixtures("one_thread")


def test_cpu_chunk_is_the_cpu_tuned_token_budget():
    assert CHUNK_TOKENS == 4096
    assert chunk_rows("cpu", n_pos=17, d_model=384, n_heads=12) == 240  # 4096 // 17
    assert chunk_rows(torch.device("cpu"), n_pos=5000, d_model=384, n_heads=12) == 1  # never 0 rows
    assert chunk_rows("cpu", n_pos=17, d_model=384, n_heads=12, dtype=torch.bfloat16) == 240  # dtype: CUDA only


def test_cuda_chunk_comes_from_free_memory(monkeypatch):
    seen = []

    def fake_mem_get_info(device=None):
        seen.append(torch.device(device))
        return 8 * 2**30, 16 * 2**30  # (free, total) bytes

    monkeypatch.setattr(torch.cuda, "mem_get_info", fake_mem_get_info)
    # half of 8 GiB over (16 * 384 + 2 * 12 * 32) values * 4 bytes * 32 positions = 884,736 bytes a row
    assert chunk_rows("cuda", n_pos=32, d_model=384, n_heads=12) == 4854
    assert seen == [torch.device("cuda")]
    assert chunk_rows("cuda:0", n_pos=32, d_model=384, n_heads=12, dtype=torch.bfloat16) == 9709  # 2-byte values
    # the measured case: MiniLM shape, a batch of 64 pairs x 12 heads = 768 rows fits in one chunk, where the
    # CPU budget cuts it into 6 chunks of 128 rows
    assert chunk_rows("cuda", n_pos=32, d_model=384, n_heads=12) >= 64 * 12 == 6 * (CHUNK_TOKENS // 32)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (2**20, 16 * 2**30))
    assert chunk_rows("cuda", n_pos=32, d_model=384, n_heads=12) == 1  # 0.5 MiB: below one row, still 1


def _subject():
    model = make_bert(seed=3)
    for name, p in model.named_parameters():  # larger weights: patching effects of order 1 on the metric
        if p.dim() > 1:
            p.data.mul_(20.0 if "classifier" in name or "pooler" in name else 3.0)
    return load_subject(model, tokenizer=make_tokenizer())


def test_patch_on_cpu_keeps_the_cpu_chunk():
    subject = _subject()
    c = make_contrast(subject, *_pairs(4, seed=2), metric=LogOdds(1))
    res = patch(subject, c, "head", allow_no_signal=True, progress=False)
    assert res.meta["max_rows"] == CHUNK_TOKENS // c.n_pos
    assert res.meta["dtype"] == "float32"


def test_in_dtype_copies_and_leaves_the_model_alone():
    subject = _subject()
    before = {k: v.clone() for k, v in subject.model.state_dict().items()}
    assert in_dtype(subject, None) is subject and in_dtype(subject, torch.float32) is subject
    low = in_dtype(subject, torch.bfloat16)
    assert low.model is not subject.model and low.backend == "hooks"
    assert {p.dtype for p in low.model.parameters()} == {torch.bfloat16}
    assert {p.dtype for p in subject.model.parameters()} == {torch.float32}
    for k, v in subject.model.state_dict().items():
        assert torch.equal(v, before[k]), k
    with pytest.raises(ValueError, match="floating-point"):
        in_dtype(subject, torch.int8)


# Bound on |raw_dtype - raw_float32| per [layer, head] cell: a value rounded to `dtype` moves by up to eps / 2
# of itself (eps = 2^-7 for bfloat16, 2^-10 for float16), and rounding errors of a 3-layer forward reach the
# logits on the logits' own scale; measured on this model: 1.0 (bf16) and 1.2 (fp16) x eps x max |logit|.
def bound(dtype: torch.dtype, logit_scale: float) -> float:
    return 2 * torch.finfo(dtype).eps * logit_scale


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_reduced_precision_sweep_deviates_within_its_bound(dtype):
    subject = _subject_with_signal()
    c = make_contrast(subject, *_pairs(6, seed=2), metric=LogOdds(1))
    ref = patch(subject, c, "head", batch_size=4, max_rows=7, progress=False)  # raises unless the gap is real
    low = patch(subject, c, "head", batch_size=4, max_rows=7, progress=False, dtype=dtype)
    assert low.raw.dtype == torch.float32 and low.scores.dtype == torch.float32
    assert low.meta["dtype"] == str(dtype).removeprefix("torch.")
    with torch.no_grad():
        scale = float(subject.run(c.clean)[0].abs().max())  # max |logit| in float32, about 7
    dev = (low.raw.double() - ref.raw.double()).abs()  # [layer, head]
    assert float(dev.max()) > 0  # the option is applied: the sweep really ran in the reduced dtype
    assert float(dev.max()) <= bound(dtype, scale), (float(dev.max()), scale)
    assert abs(low.clean_metric - ref.clean_metric) <= bound(dtype, scale)
    assert abs(low.corrupt_metric - ref.corrupt_metric) <= bound(dtype, scale)
    # scores: the same bound, through the normalisation by the clean - corrupted gap
    gap = ref.clean_metric - ref.corrupt_metric
    assert float((low.scores.double() - ref.scores.double()).abs().max()) <= 3 * bound(dtype, scale) / abs(gap)
    assert {p.dtype for p in subject.model.parameters()} == {torch.float32}  # the caller's model is untouched
