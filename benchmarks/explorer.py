"""Explorer on the default MiniLM pair: file size and time to interactive in headless Chromium.

Uses the zoo's default debiased teacher and its student when they are cached under
~/.cache/kd-interp/zoo (it never trains them: `make demo` does); 30 HANS examples, circuits included.
Targets: file < 10 MB, time to interactive < 2 s.

    .venv/bin/python benchmarks/explorer.py [--n-examples 30] [--out runs/bench_explorer/explorer.html]
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def cached_pair() -> tuple[str, str] | None:
    """(teacher, student) folders of the default debiased pair if both are fully trained in the cache."""
    from interp.train.zoo import ZooConfig, zoo_dir

    root = zoo_dir(None, ZooConfig(), 0)
    t, s = root / "teacher_debiased", root / "student_debiased"
    ok = all((p / "train_config.json").exists() and (p / "config.json").exists() for p in (t, s))
    return (str(t), str(s)) if ok else None


def synthetic_data(n_examples: int = 30, n_tok: int = 20, n_edges: int = 1000, seed: int = 0) -> dict:
    """A data model of the default pair's shape (teacher 6 x 12 heads, student 3 x 12, layers 0, 2, 4),
    random numbers throughout: measures the page alone, without computing anything on the models."""
    import numpy as np

    from interp.circuits import all_edges
    from interp.explore.data import SCHEMA, encode_attention

    rng = np.random.default_rng(seed)

    class Shape:  # what interp.circuits.all_edges reads of a Subject
        def __init__(self, n_layers: int) -> None:
            self.n_layers, self.n_heads = n_layers, 12

    def circuit(n_layers: int) -> dict:
        names = all_edges(Shape(n_layers))
        pick = rng.choice(len(names), size=min(n_edges, len(names)), replace=False)
        return {"edges": [[names[i], float(rng.normal())] for i in pick], "no_signal": False, "signal": None,
                "faithfulness": 0.8, "faithfulness_ci95": [0.7, 0.9], "completeness": 0.5, "n_candidates": len(names),
                "metric": ""}

    lm = {"0": 0, "1": 2, "2": 4}
    tokens = ["[CLS]", *[f"w{i}" for i in range(n_tok // 2 - 2)], "[SEP]", *[f"v{i}" for i in range(n_tok // 2 - 1)], "[SEP]"]
    att = lambda L: encode_attention(rng.dirichlet(np.ones(len(tokens)), size=(L, 12, len(tokens))))  # noqa: E731
    return {"schema": SCHEMA, "teacher": {"name": "teacher", "n_layers": 6, "n_heads": 12},
            "student": {"name": "student", "n_layers": 3, "n_heads": 12}, "layer_map": lm, "metric": "synthetic",
            "results": None, "missing": {},
            "head_map": [{"student": [l, h], "teacher": [lm[str(l)], h], "score": 0.9, "flagged": False, "dead": False,
                          "norm_ratio": 1.0} for l in range(3) for h in range(12)],
            "examples": [{"id": f"e{i}", "premise": "p", "hypothesis": "h", "subcase": f"sub{i % 30}", "heuristic": "x",
                          "label": "entailment", "tokens": tokens, "sep": tokens.index("[SEP]"),
                          "metric": {"teacher": 0.0, "student": 0.0}} for i in range(n_examples)],
            "attention": {"teacher": [att(6) for _ in range(n_examples)], "student": [att(3) for _ in range(n_examples)]},
            "cka": {"grid": rng.random((6, 3)).tolist(), "debiased": True, "n": n_examples},
            "patching": {r: {"scores": rng.normal(size=(L, 12)).tolist(), "no_signal": False, "signal": None, "unit": ""}
                         for r, L in (("teacher", 6), ("student", 3))},
            "circuits": {"teacher": circuit(6), "student": circuit(3)},
            "head_by_head": None, "attribution": None}


def time_to_interactive(path: Path, runs: int = 3) -> list[float]:
    """Seconds from navigation start until the explorer's init has run (window.kdExplorerReady), per run."""
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    out = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=ARGS)
        for _ in range(runs):
            page = browser.new_page()
            page.route("**/*", lambda r: r.continue_() if r.request.url.startswith("file:") else r.abort())
            page.goto(path.resolve().as_uri())
            page.wait_for_function("window.kdExplorerReady !== undefined")
            out.append(page.evaluate("window.kdExplorerReady") / 1000)
            page.close()
        browser.close()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n-examples", type=int, default=30)
    ap.add_argument("--out", default="runs/bench_explorer/explorer.html")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--teacher", help="teacher folder (default: the zoo's debiased teacher, if cached)")
    ap.add_argument("--student", help="student folder")
    ap.add_argument("--synthetic", action="store_true",
                    help="no models: a random data model of the default pair's shape (page size and load time only)")
    args = ap.parse_args()
    if args.synthetic:
        from interp.explore.html import render

        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        data = synthetic_data(args.n_examples)
        out.write_text(render(data))
        tti = time_to_interactive(out)
        print(f"synthetic data model (6 x 12 teacher, 3 x 12 student, {args.n_examples} examples of "
              f"{len(data['examples'][0]['tokens'])} tokens, {len(data['circuits']['teacher']['edges'])} + "
              f"{len(data['circuits']['student']['edges'])} edges)")
        print(f"file size: {out.stat().st_size / 1e6:.2f} MB (target < 10 MB)")
        print(f"time to interactive: median {statistics.median(tti):.2f} s, max {max(tti):.2f} s (target < 2 s)")
        return 0
    pair = (args.teacher, args.student) if args.teacher and args.student else cached_pair()
    if pair is None:
        print("explorer benchmark: not run, the default pair is not cached under ~/.cache/kd-interp/zoo "
              "(`make demo` builds it).")
        return 0
    import torch

    from interp.explore import explore

    print(f"teacher {pair[0]}\nstudent {pair[1]}\ntorch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"device {args.device}")
    t0 = time.perf_counter()
    view = explore(*pair, out=args.out, n_examples=args.n_examples, device=args.device)
    build = time.perf_counter() - t0
    size = Path(args.out).stat().st_size
    tti = time_to_interactive(Path(args.out))
    c = view.data["circuits"] or {}
    print(f"build (attention, CKA, patching maps, both circuits): {build:.1f} s")
    print("circuit edges: " + ", ".join(f"{r} {len(v['edges'])}{' (no signal)' if v['no_signal'] else ''}"
                                        for r, v in c.items()))
    print(f"file size: {size / 1e6:.2f} MB (target < 10 MB) -> {args.out}")
    print(f"time to interactive (headless Chromium, {len(tti)} loads): median {statistics.median(tti):.2f} s, "
          f"max {max(tti):.2f} s (target < 2 s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
