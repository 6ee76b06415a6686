"""GPU checks in one run (for a lent GPU machine; nothing here runs in CI or the tests).

    python3 benchmarks/device_check.py --model DIR [--ref ref_cpu.pt] [--out OUT] [--repeats 3] [--parts ...]
    .venv/bin/python benchmarks/device_check.py --model DIR --device cpu --n 16 --cka-n 2000   # smoke test

DIR may hold gzipped float16 weights (model.safetensors.gz, made by `--pack DST` from a checkpoint: what fits
the 64 MiB a device call carries); they are loaded as float32, and the CPU reference must come from the
same rounded weights (`--write-ref` on DST).
Parts (`--parts`, default circuits,cka):

- edge scores on the GPU (`_edge_effects`, exact and atp, 64 HANS break_overlap pairs), each timed as the
  median [min-max] of `--repeats` runs after one warm-up, and compared with the same scores computed on the
  CPU (`--ref`, written on the CPU machine by `--write-ref PATH` from the same weights: about 4 minutes of
  exact edge scores on 2 cores): max |difference| and its ratio to the largest |score|;
- `discover(level="edge", method="atp")` on the GPU, and `interp circuit ... --device cuda` end to end
  (a subprocess: interpreter start, imports, model loading, figure) for atp and exact;
- CKA on the GPU through the public API: `cka_grid` on CUDA tensors (7 x 4 layers, d = 384, n = 10,000,
  the data of benchmarks/cka.py) in float64, mixed and auto precision, with deviations from the CPU
  float64 grid; exact RBF CKA (n = 5,000) against the CPU value, and ckatorch's on the same GPU where
  installed;
- `paths`: patching (every component, whole and per position), attribution (atp, ig), `Subject.run` reads
  and node circuits on the GPU against the same calls on the machine's CPU.
Prints one line per measurement and writes them to OUT/device_check.json.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TQDM_DISABLE", "1")

import torch  # noqa: E402
from _timing import summary  # noqa: E402  (this folder is on sys.path: the script's own)

RESULTS: dict[str, object] = {}


def say(key: str, value: object, text: str) -> None:
    RESULTS[key] = value
    print(text, flush=True)


def load_pairs(model: str, device: str, n: int):
    """(Subject, Contrast of n HANS break_overlap pairs with the entailment log-odds metric, clean inputs)."""
    from interp.contrast import hans_pairs, make_contrast, make_metric
    from interp.subject import load_subject

    s = load_subject(model, device=device)
    clean, corrupt = hans_pairs(n, tokenizer=s.tokenizer, seed=0)
    return s, make_contrast(s, clean, corrupt, metric=make_metric(s, "logodds", "entailment")), clean


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed(fn, repeats: int, warmup: bool = True) -> tuple[list[float], object]:
    """Wall times of `repeats` calls (GPU synchronised), after one untimed warm-up call."""
    out = fn() if warmup else None
    times = []
    for _ in range(repeats):
        sync()
        t0 = time.perf_counter()
        out = fn()
        sync()
        times.append(time.perf_counter() - t0)
    return times, out


def circuits(args: argparse.Namespace) -> None:
    from interp.circuits import discover
    from interp.circuits.edges import _edge_effects
    from interp.sweep import subject_chunk_rows

    s, c, _ = load_pairs(args.model, args.device, args.n)
    ref = torch.load(args.ref, weights_only=False) if args.ref else None
    if ref is not None and ref["fingerprint"] != s.fingerprint:
        print(f"warning: reference fingerprint {ref['fingerprint']} != {s.fingerprint}")
    print(f"default rows per expanded forward on this GPU: {subject_chunk_rows(s, c.n_pos)} (n_pos {c.n_pos})")

    def scores(method: str, max_rows: int | None, reps: int) -> None:
        key = f"edge_scores_{method}" + (f"_rows{max_rows}" if max_rows else "")
        try:
            ts, (eff, cl, co) = timed(lambda: _edge_effects(s, c, method, "noise", 32, max_rows=max_rows), reps)
        except torch.cuda.OutOfMemoryError as e:  # report, go on with the next measurement
            torch.cuda.empty_cache()
            say(key, None, f"{key}: out of GPU memory ({str(e).splitlines()[0]})")
            return
        line = f"{key}: {summary(ts)}"
        if ref is not None:
            r = ref[method][0]
            diff = max(abs(eff[e] - r[e]) for e in r)
            top = max(abs(v) for v in r.values())
            line += f"; vs CPU: max |diff| {diff:.2e} ({diff / top:.1e} of the largest |score| {top:.3f})"
            RESULTS[key + "_maxdiff"] = diff
        say(key, ts, line)

    scores("atp", None, args.repeats)
    scores("exact", None, args.repeats)
    ts, circ = timed(lambda: discover(s, c, level="edge", method="atp"), args.repeats)
    line = f"discover(edge, atp): {summary(ts)}; {len(circ.edges)} edges, faithfulness {circ.metadata['faithfulness']:.4f}"
    if ref is not None:
        edges, faith, _ = ref["circuit"]
        line += f"; CPU: {len(edges)} edges, faithfulness {faith:.4f}, same edge set: {set(edges) == set(circ.edges)}"
    say("discover_atp", ts, line)
    imports = [sys.executable, "-c", f"import torch, transformers.modeling_utils; torch.zeros(1, device='{args.device}')"]
    ts = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        subprocess.run(imports, cwd=ROOT, check=True)
        ts.append(time.perf_counter() - t0)
    say("start_imports_cuda", ts, f"python start + import torch, transformers.modeling_utils + CUDA init: {summary(ts)}")
    for method in ("atp", "exact"):
        cmd = [sys.executable, "-m", "interp.cli", "circuit", "--model", args.model, "--n", str(args.n), "--level",
               "edge", "--method", method, "--device", args.device, "--out", f"/tmp/circuit_{method}"]
        ts = []
        for _ in range(args.repeats if method == "atp" else 1):
            t0 = time.perf_counter()
            p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
            ts.append(time.perf_counter() - t0)
            if p.returncode:
                print(p.stdout[-2000:], p.stderr[-3000:])
        say(f"cli_{method}", ts, f"interp circuit --level edge --method {method} --device {args.device}, end to end: {summary(ts)}; "
            f"{p.stdout.strip().splitlines()[0] if p.stdout.strip() else '(no output)'}")
    for max_rows in args.exact_rows:  # other sizes of expanded forward than the memory-sized default
        scores("exact", max_rows, args.repeats)


def cka(args: argparse.Namespace) -> None:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import importlib.util

    spec = importlib.util.spec_from_file_location("cka_bench", ROOT / "benchmarks" / "cka.py")
    bench = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(bench)
    from interp.cka import cka_grid, rbf_cka

    t, s = bench.data(args.cka_n)
    ref = cka_grid(t, s, precision="float64").grid  # CPU float64: the reference path
    tc, sc = [x.to(args.device) for x in t], [y.to(args.device) for y in s]
    for precision in ("float64", "mixed", "auto"):
        ts, g = timed(lambda p=precision: cka_grid(tc, sc, precision=p), args.repeats)
        dev = float((torch.as_tensor(g.grid) - torch.as_tensor(ref)).abs().max())
        say(f"cka_linear_{precision}", ts, f"cka_grid 7 x 4, n = {args.cka_n:,}, {args.device}, precision={precision} (chose "
            f"{g.precision}): {summary(ts)}; max |grid - CPU float64| {dev:.1e}")
    x, y = t[-1][:args.cka_n // 2], s[-1][:args.cka_n // 2]
    r_cpu = rbf_cka(x, y, 0.5)
    ts, r = timed(lambda: rbf_cka(x.to(args.device), y.to(args.device), 0.5), args.repeats)
    say("cka_rbf", ts, f"rbf_cka n = {x.shape[0]:,}, {args.device}: {summary(ts)}; |GPU - CPU| {abs(float(r) - float(r_cpu)):.1e}")
    from interp.cka.rbf import _order_statistics

    m = x.shape[0] * (x.shape[0] - 1) // 2  # the upper distances rbf_cka selects its median from
    u = torch.rand(m, dtype=torch.float64, device=args.device, generator=None)
    js = [m // 2 - 1, m // 2]
    ts, _ = timed(lambda: _order_statistics(u, js, "sort"), args.repeats)
    tk, _ = timed(lambda: [float(torch.kthvalue(u, j + 1).values) for j in js], args.repeats)
    say("median_select", {"sort": ts, "kthvalue": tk}, f"two order statistics of {m:,} float64 values, "
        f"{args.device}: sort {summary(ts)}, kthvalue {summary(tk)}")
    try:
        from ckatorch import cka_base

        xd, yd = x.to(args.device), y.to(args.device)
        ts, rp = timed(lambda: cka_base(xd, yd, kernel="rbf", threshold=0.5), args.repeats)
        say("ckatorch_rbf", ts, f"ckatorch rbf n = {x.shape[0]:,}, {args.device}: {summary(ts)}; |ckatorch - ours CPU| "
            f"{abs(float(rp) - float(r_cpu)):.1e}")
    except ImportError:
        print("ckatorch not installed here")


def paths(args: argparse.Namespace) -> None:
    """The library's other paths on the GPU against the same calls on this machine's CPU: max |difference|."""
    from interp.attribution import attribute
    from interp.circuits import discover
    from interp.patching import COMPONENTS, patch

    loaded = {d: load_pairs(args.model, d, args.n) for d in ("cpu", args.device)}  # the same pairs on both
    subs, cons = {d: v[0] for d, v in loaded.items()}, {d: v[1] for d, v in loaded.items()}
    clean = loaded["cpu"][2]
    calls = {f"patch {c}{' per position' if pp else ''}": (lambda s, c_, c=c, pp=pp: patch(s, c_, c, pp, progress=False).raw)
             for c in COMPONENTS for pp in (False, True) if pp or c != "resid"}  # whole-stream resid: refused
    calls.update({f"attribute head {m}": (lambda s, c_, m=m: attribute(s, c_, "head", method=m).raw) for m in ("atp", "ig")})
    names = [f"blocks.{l}.{k}" for l in range(subs["cpu"].n_layers) for k in ("hook_resid_post", "attn.hook_z")]
    calls["Subject.run reads (resid_post, z)"] = lambda s, c_: torch.cat(
        [v.flatten().cpu() for v in s.run(clean[:16], read=names)[1].values()])
    for name, fn in calls.items():
        try:
            a, b = fn(subs["cpu"], cons["cpu"]), fn(subs[args.device], cons[args.device])
            diff = float((torch.as_tensor(a).double().cpu() - torch.as_tensor(b).double().cpu()).abs().max())
            top = float(torch.as_tensor(a).double().abs().max())
            say(f"path {name}", diff, f"{name}: max |GPU - CPU| {diff:.1e} (largest |value| {top:.3g})")
        except Exception as e:  # report and go on
            say(f"path {name}", repr(e), f"{name}: failed: {e!r}")
    circ = {d: discover(s, cons[d], level="node", method="exact") for d, s in subs.items()}
    a, b = circ["cpu"], circ[args.device]
    say("path discover node exact", [a.nodes == b.nodes, a.metadata["faithfulness"] - b.metadata["faithfulness"]],
        f"discover(level='node', method='exact'): same nodes {a.nodes == b.nodes} ({len(a.nodes)}), faithfulness "
        f"{a.metadata['faithfulness']:.6f} (CPU) vs {b.metadata['faithfulness']:.6f}")


def write_ref(args: argparse.Namespace) -> None:
    """The CPU reference `circuits` compares with: edge scores (atp, exact) and the AtP edge circuit."""
    from interp.circuits import discover
    from interp.circuits.edges import _edge_effects

    s, c, _ = load_pairs(args.model, "cpu", args.n)
    out: dict[str, object] = {"fingerprint": s.fingerprint}
    for method in ("atp", "exact"):
        out[method] = _edge_effects(s, c, method, "noise", 32)
    circ = discover(s, c, level="edge", method="atp")
    out["circuit"] = (circ.edges, circ.metadata["faithfulness"], circ.metadata["completeness"])
    torch.save(out, args.write_ref)
    print(f"CPU reference -> {args.write_ref}")


def pack(src: str, dst: str, n: int) -> None:
    """DST: SRC's checkpoint with its weights rounded to float16 and the word-embedding rows that the `n`
    HANS pairs (and ids < 1000: special and unused tokens) never use set to 0, gzipped: the ERM teacher's
    91 MB become 21 MB. `unpack` loads it as float32 on the other side."""
    import gzip
    import shutil

    from safetensors.torch import load_file, save

    _, c, _ = load_pairs(src, "cpu", n)
    used = set(range(1000))
    for b in c.batches(n):
        for side in (b.clean, b.corrupt):
            used |= set(side["input_ids"].flatten().tolist())
    sd = {k: v.half() for k, v in load_file(f"{src}/model.safetensors").items()}
    for k, v in sd.items():
        if k.endswith("word_embeddings.weight"):
            keep = torch.zeros(v.shape[0], dtype=torch.bool)
            keep[sorted(used)] = True
            v[~keep] = 0
    out = Path(dst)
    out.mkdir(parents=True, exist_ok=True)
    for f in Path(src).iterdir():
        if f.is_file() and f.name != "model.safetensors":
            shutil.copy(f, out / f.name)
    (out / "model.safetensors.gz").write_bytes(gzip.compress(save(sd, metadata={"format": "pt"}), compresslevel=6))
    print(f"{src} -> {out} ({(out / 'model.safetensors.gz').stat().st_size / 1e6:.1f} MB of weights)")


def unpack(folder: str) -> str:
    """A float32 checkpoint folder from one carried as gzipped float16 weights (model.safetensors.gz): the
    64 MiB a device call may carry; the CPU reference is computed from the same rounded weights."""
    import gzip
    import shutil

    src = Path(folder)
    if not (src / "model.safetensors.gz").exists():
        return folder
    from safetensors.torch import load, save_file

    dst = Path("/tmp/kd_model")
    dst.mkdir(exist_ok=True)
    for f in src.iterdir():
        if f.name != "model.safetensors.gz":
            shutil.copy(f, dst / f.name)
    sd = load(gzip.decompress((src / "model.safetensors.gz").read_bytes()))
    save_file({k: v.float().contiguous() for k, v in sd.items()}, str(dst / "model.safetensors"), metadata={"format": "pt"})
    return str(dst)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--ref", help="the CPU reference of the circuits part (made here with --write-ref)")
    ap.add_argument("--write-ref", metavar="PATH", help="compute that reference on this machine's CPU and stop")
    ap.add_argument("--pack", metavar="DST", help="write --model as gzipped float16 weights to DST (to carry) and stop")
    ap.add_argument("--out", default="runs/device_check", help="folder of device_check.json")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--parts", default="circuits,cka", help="comma-separated: circuits, cka, paths")
    ap.add_argument("--device", default="cuda", help="cpu (with small --n / --cka-n): a smoke test of this script")
    ap.add_argument("--n", type=int, default=64, help="HANS break_overlap pairs")
    ap.add_argument("--cka-n", type=int, default=10_000, help="CKA rows (RBF: half)")
    ap.add_argument("--exact-rows", type=int, nargs="*", default=[16384, 4096, 1024],
                    help="exact edge scores also with these rows per expanded forward")
    args = ap.parse_args()
    if args.pack:
        pack(args.model, args.pack, args.n)
        return
    args.model = unpack(args.model)
    if args.write_ref:
        write_ref(args)
        return
    import transformers

    name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "CPU"
    print(f"{name}, torch {torch.__version__}, transformers {transformers.__version__}, "
          f"CPU threads {torch.get_num_threads()}")
    for part in args.parts.split(","):
        t0 = time.perf_counter()
        try:
            {"circuits": circuits, "cka": cka, "paths": paths}[part](args)
        except Exception as e:  # report and go on to the next part: device time is scarce
            import traceback

            traceback.print_exc()
            RESULTS[f"{part}_error"] = repr(e)
        print(f"[{part}: {time.perf_counter() - t0:.0f} s]", flush=True)
        Path(args.out).mkdir(parents=True, exist_ok=True)
        (Path(args.out) / "device_check.json").write_text(json.dumps(RESULTS, indent=1))


if __name__ == "__main__":
    main()
