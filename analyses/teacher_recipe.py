"""Why the product-of-experts teacher sometimes learned less: training curves of debiased teachers.

Trains MiniLM teachers on the zoo's biased NLI data with one loss and recipe for the given seeds,
recording dev accuracy (held-out split with the training bias) every 19 steps, and prints one JSON
line per seed: the curve, in-distribution accuracy (all and bias-conflicting), HANS entailment /
non-entailment accuracy and the spurious gap. Nothing is cached; each run takes about 2-4 minutes per
epoch-pair on one CPU core. This is how the zoo's teacher recipe was chosen (README, "The organism"):

    .venv/bin/python analyses/teacher_recipe.py --loss poe --seeds 1 2 3 4                 # 2 epochs, lr 5e-5
    .venv/bin/python analyses/teacher_recipe.py --loss poe --seeds 1 3 --set epochs=4      # 4 epochs
    .venv/bin/python analyses/teacher_recipe.py --loss poe --seeds 1 3 --set lr=1e-4       # higher lr
    .venv/bin/python analyses/teacher_recipe.py --loss conf_reg --seeds 0 1 --set epochs=4  # soft targets: ERM teacher
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _value(text: str):
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def main(argv=None) -> int:
    import torch

    from interp.train import zoo
    from interp.train.trainer import load_trained, train_model

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--loss", default="poe", choices=("erm", "poe", "reweight", "focal", "conf_reg"),
                    help="conf_reg distils the zoo's ERM teacher of the same seed (built and cached if missing)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4])
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                    help="TrainConfig overrides, e.g. epochs=4 lr=1e-4 bias_anneal=0.5")
    ap.add_argument("--eval-every", type=int, default=19)
    args = ap.parse_args(argv)
    over = {k: _value(v) for k, v in (kv.split("=", 1) for kv in args.set)}
    torch.set_num_threads(1)
    cfg = replace(zoo.ZooConfig(), teacher_epochs=2.0)  # the recipe before the fix; --set epochs=... changes it
    data = zoo.load_data(cfg)
    pb = zoo.bias_probs(cfg) if args.loss != "erm" else None
    for seed in args.seeds:
        model, tok = zoo._load_base(seed, cfg)
        tc = replace(cfg.teacher_train(args.loss, seed), eval_every=args.eval_every, select_best=False, **over)
        teacher = None
        if args.loss == "conf_reg":  # soft targets from the default zoo's ERM teacher of this seed
            teacher, _, _ = load_trained(zoo.build_teacher(None, "erm", seed, zoo.ZooConfig()))
        t0 = time.time()
        h = train_model(model, tok, data["train"], tc, bias_probs=pb, teacher=teacher, dev_examples=data["dev"],
                        progress=False)
        m = zoo.evaluate_model(model, tok, data, cfg.max_length)
        print(json.dumps({"loss": args.loss, "overrides": over, "seed": seed, "seconds": round(time.time() - t0),
                          "curve": [(c["step"], round(c["dev_acc"], 3)) for c in h["curve"]],
                          **{k: round(m[k], 3) for k in ("id_acc", "id_acc_conflict", "hans_ent", "hans_non_ent",
                                                          "spurious_gap")}}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
