"""CKA benchmark: interp.cka against PyPI peers on the same data, in the same run.

    .venv/bin/python benchmarks/cka.py            # default (~10 min on 2 idle cores)
    .venv/bin/python benchmarks/cka.py --quick    # smaller n, smoke test
    .venv/bin/python benchmarks/cka.py --repeats 5

Cases
  linear grid: 7 teacher x 4 student layers, d = 384, n = 10,000 and n = 100,000
  rbf:         one pair, d = 384, n = 5,000, bandwidth threshold 0.5 (Kornblith)
Peers (installed into the venv with --no-deps if missing; they do not pin torch):
  pytorch-cka  (`cka.cka_from_features`, full-data Gram form, unbiased HSIC, float32)
  torch-cka    (`torch_cka.CKA.compare`, minibatch HSIC_1 over a DataLoader, float32)
  ckatorch     (`ckatorch.cka_base`, full-data Gram form per pair, float64; linear and rbf)
Each run of a method is its own subprocess: time is wall time of the computation (interpreter
start-up and data generation excluded), memory is peak RSS minus RSS before the computation (data
already in memory, except n = 100,000 where ours streams the data batch by batch). Runs are
interleaved (`_timing.interleaved`: every method once per round, order rotated, `--repeats` rounds,
3 by default) and the tables give the median and range over rounds; a speedup is the per-round ratio
to the fastest peer of that round. Each method is compared with a float64 reference of the SAME
estimator (biased CKA, debiased CKA or minibatch CKA), computed independently here in numpy.
`ours` is `cka_grid(..., precision="auto")`: mixed precision (float32 products in row blocks, float64
accumulation) where its measured error bound is <= 1e-5, else float64; the mode it chose, its bound and
its deviation are printed, and `ours float64` is the exact reference path.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
# this file is named cka.py: keep its folder off sys.path so `import cka` finds pytorch-cka
sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))

LT, LS, D, BLOCK = 7, 4, 384, 1000
PEERS = {"cka": "pytorch-cka", "torch_cka": "torch-cka", "ckatorch": "ckatorch"}


# ---- data: deterministic per 1000-row block, so any batch split sees the same rows --------------
def _weights():
    import torch

    g = torch.Generator().manual_seed(1234)
    wt = [torch.randn(32, D, generator=g) / 4 for _ in range(LT)]
    for l in range(1, LT):  # consecutive teacher layers share structure
        wt[l] = 0.7 * wt[l - 1] + 0.3 * wt[l]
    ws = [0.6 * wt[min(2 * j + 1, LT - 1)] + 0.4 * torch.randn(32, D, generator=g) / 4 for j in range(LS)]
    offset = torch.zeros(D)
    offset[:8] = 30.0  # a few large-mean "outlier" dimensions, as in real transformer activations
    return wt, ws, offset


def block(b: int, w=None):
    """Rows [b*1000, (b+1)*1000): teacher list of [1000, 384], student list of [1000, 384] (float32)."""
    import torch

    wt, ws, offset = w or _weights()
    g = torch.Generator().manual_seed(10_000 + b)
    z = torch.randn(BLOCK, 32, generator=g)  # [1000, 32] shared latent
    t = [z @ wt[l] + (0.5 + 0.2 * l) * torch.randn(BLOCK, D, generator=g) + offset for l in range(LT)]
    s = [torch.tanh(z @ ws[j]) + 0.6 * torch.randn(BLOCK, D, generator=g) + offset for j in range(LS)]
    return t, s


def data(n: int):
    import torch

    w = _weights()
    blocks = [block(b, w) for b in range(n // BLOCK)]
    t = [torch.cat([bl[0][l] for bl in blocks]) for l in range(LT)]
    s = [torch.cat([bl[1][j] for bl in blocks]) for j in range(LS)]
    return t, s


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ---- float64 numpy references (independent of interp.cka) ----------------------------------------
def ref_linear_stream(n: int) -> dict[str, np.ndarray]:
    """Two-pass textbook: exact column means first, then centred X^T Y per pair (float64).
    Biased CKA = ||Xc^T Yc||^2 / (||Xc^T Xc|| ||Yc^T Yc||); debiased via HSIC_1 of centred data."""
    w = _weights()
    nb = n // BLOCK
    mt, ms = np.zeros((LT, D)), np.zeros((LS, D))
    for b in range(nb):
        t, s = block(b, w)
        mt += np.stack([x.double().numpy().sum(0) for x in t])
        ms += np.stack([x.double().numpy().sum(0) for x in s])
    mt, ms = mt / n, ms / n
    L = LT + LS
    pairs = [(k, k) for k in range(L)] + [(k, l) for k in range(LT) for l in range(LT, L)]  # self + teacher x student
    G = np.zeros((L, L, D, D))  # centred cross products of the pairs used
    r = np.zeros((L, n))
    for b in range(nb):
        t, s = block(b, w)
        xs = [x.double().numpy() - mt[l] for l, x in enumerate(t)] + [y.double().numpy() - ms[j] for j, y in enumerate(s)]
        rows = slice(b * BLOCK, (b + 1) * BLOCK)
        for k in range(L):
            r[k, rows] = (xs[k] ** 2).sum(1)
        for k, l in pairs:
            G[k, l] += xs[k].T @ xs[l]
    hb = np.zeros((L, L))
    hd = np.zeros((L, L))
    for k, l in pairs:
        c = G[k, l]
        hb[k, l] = hb[l, k] = (c * c).sum()
        # centred data: column sums are 0, so 1^T K 1 = 0 and (K 1)_i = 0: HSIC_1 simplifies
        rq = r[k] @ r[l]
        tr = (c * c).sum() - rq
        kx, ky = -r[k].sum(), -r[l].sum()
        kl1 = rq  # sum_i (K~1)_i (L~1)_i with (K~1)_i = -r_i
        hd[k, l] = hd[l, k] = (tr + kx * ky / ((n - 1) * (n - 2)) - 2 * kl1 / (n - 2)) / (n * (n - 3))
    out = {}
    for name, h in (("biased", hb), ("debiased", hd)):
        nrm = np.sqrt(np.diag(h))
        out[name] = (h / np.outer(nrm, nrm))[:LT, LT:]
    return out


def ref_minibatch(n: int, bs: int) -> np.ndarray:
    """Minibatch CKA (Nguyen et al.): per-batch HSIC_1 (Gram form, float64) summed, then normalised."""
    t, s = data(n)
    xs = [x.double().numpy() for x in t + s]
    L = len(xs)
    H = np.zeros((L, L))
    for i in range(0, n, bs):
        ks = []
        for x in xs:
            k = x[i : i + bs] @ x[i : i + bs].T
            np.fill_diagonal(k, 0)
            ks.append(k)
        m = ks[0].shape[0]
        one = np.ones(m)
        rs = [k @ one for k in ks]
        for a in range(L):
            for b in range(a, L):
                v = ((ks[a] * ks[b]).sum() + rs[a].sum() * rs[b].sum() / ((m - 1) * (m - 2)) - 2 / (m - 2) * rs[a] @ rs[b]) / (m * (m - 3))
                H[a, b] = H[b, a] = H[a, b] + v
    nrm = np.sqrt(np.diag(H))
    return (H / np.outer(nrm, nrm))[:LT, LT:]


def ref_rbf(n: int, t: float = 0.5) -> float:
    tt, ss = data(n)
    x, y = tt[-1].double().numpy(), ss[-1].double().numpy()

    def gram(z):
        z = z - z.mean(0)
        sq = (z * z).sum(1)
        d = np.maximum(sq[:, None] + sq[None, :] - 2 * z @ z.T, 0)
        np.fill_diagonal(d, 0)
        return np.exp(-d / (2 * t**2 * np.median(d)))

    def center(k):
        return k - k.mean(0)[None, :] - k.mean(1)[:, None] + k.mean()

    kc = center(gram(x))
    lc = center(gram(y))
    return float((kc * lc).sum() / (np.linalg.norm(kc) * np.linalg.norm(lc)))


# ---- workers (one subprocess each) ---------------------------------------------------------------
def worker(method: str, n: int, out: str, budget_s: float) -> None:
    import torch

    torch.set_grad_enabled(False)
    info: dict = {"method": method, "n": n}
    if method in ("ours_stream", "ours_stream_mixed"):  # data generated batch by batch: memory independent of n
        from interp.cka import CKAAccumulator

        w = _weights()
        base = rss_mb()
        t0 = time.perf_counter()
        mixed = method == "ours_stream_mixed"
        acc = CKAAccumulator(precision="mixed" if mixed else "float64")
        for b in range(n // BLOCK):
            t, s = block(b, w)
            acc.update(t, s)
        res = {"biased": acc.result(False), "debiased": acc.result(True)}
        info["time"] = time.perf_counter() - t0
        info["note"] = "streamed; incl. data generation; biased+debiased from one pass"
        if mixed:
            info["bound"] = max(float(acc.error_bound(d).max()) for d in (False, True))
            info["note"] += f"; mixed, measured bound {info['bound']:.1e}"
    elif method.startswith("ref_"):
        base = rss_mb()
        t0 = time.perf_counter()
        if method == "ref_linear":
            res = ref_linear_stream(n)
        elif method == "ref_minibatch":
            res = {"minibatch": ref_minibatch(n, 1000)}
        else:
            res = {"rbf": np.array([[ref_rbf(n)]])}
        info["time"] = time.perf_counter() - t0
    else:
        t, s = data(n)
        x, y = t[-1], s[-1]  # the RBF pair
        base = rss_mb()
        t0 = time.perf_counter()
        if method in ("ours", "ours_float64"):
            from interp.cka import cka_grid

            g = cka_grid(t, s, precision="auto" if method == "ours" else "float64")
            res = {"biased": g.grid}
            info["mode"] = g.precision
            info["bound"] = float(g.error_bound["xy"].max()) if g.error_bound else 0.0
            info["note"] = f"precision={g.precision}" + (f", measured bound {info['bound']:.1e}" if g.error_bound else "")
        elif method == "ours_minibatch":
            from interp.cka import MinibatchCKA

            acc = MinibatchCKA()
            for i in range(0, n, 1000):
                acc.update([a[i : i + 1000] for a in t], [b[i : i + 1000] for b in s])
            res = {"minibatch": acc.result()}
        elif method == "pytorch-cka":
            import cka

            res = {"debiased": cka.cka_from_features(torch.stack(t), torch.stack(s)).double().numpy()}
            info["note"] = "debiased (unbiased HSIC), float32, clamps to [0,1]"
        elif method == "torch-cka":
            from torch.utils.data import DataLoader, TensorDataset
            from torch_cka import CKA

            def model(layers):
                class Pick(torch.nn.Module):
                    def __init__(self, feats):
                        super().__init__()
                        self.feats = feats

                    def forward(self, idx):
                        return self.feats[idx]

                class M(torch.nn.Module):
                    def __init__(self):
                        super().__init__()
                        self.layers = torch.nn.ModuleList([Pick(f) for f in layers])

                    def forward(self, idx):
                        return [m(idx) for m in self.layers]

                return M()

            m1, m2 = model(t), model(s)
            names1 = [f"layers.{i}" for i in range(LT)]
            names2 = [f"layers.{i}" for i in range(LS)]
            import warnings

            warnings.filterwarnings("ignore")
            c = CKA(m1, m2, "teacher", "student", names1, names2, device="cpu")
            dl = DataLoader(TensorDataset(torch.arange(n)), batch_size=1000)
            import contextlib
            import io

            with contextlib.redirect_stderr(io.StringIO()):
                c.compare(dl)
            res = {"minibatch": c.hsic_matrix.double().numpy()}
            info["note"] = "minibatch HSIC_1, batch 1000, float32"
        elif method in ("ckatorch", "ckatorch_rbf"):
            from ckatorch import cka_base

            if method == "ckatorch_rbf":
                res = {"rbf": np.array([[float(cka_base(x, y, kernel="rbf", threshold=0.5))]])}
            else:
                grid = np.full((LT, LS), np.nan)
                done = 0
                for i in range(LT):
                    for j in range(LS):
                        if time.perf_counter() - t0 > budget_s:
                            break
                        grid[i, j] = float(cka_base(t[i], s[j], kernel="linear"))
                        done += 1
                res = {"biased": grid}
                if done < LT * LS:
                    el = time.perf_counter() - t0
                    info["extrapolated_from"] = done
                    info["note"] = f"time extrapolated from {done}/{LT * LS} pairs (time budget)"
                    info["time_measured"] = el
        elif method == "ours_rbf":
            from interp.cka import rbf_cka

            res = {"rbf": np.array([[rbf_cka(x, y, 0.5)]])}
        elif method == "ours_nystrom":
            from interp.cka import rbf_cka_nystrom

            res = {"rbf": np.array([[rbf_cka_nystrom(x, y, 0.5, n_landmarks=1000)]])}
            info["note"] = "approximation, 1000 landmarks"
        else:
            raise SystemExit(f"unknown method {method}")
        info["time"] = time.perf_counter() - t0
        if "extrapolated_from" in info:
            info["time"] = info["time_measured"] * LT * LS / info["extrapolated_from"]
    info["mem_mb"] = max(0.0, peak_mb() - base)
    info["threads"] = torch.get_num_threads()
    np.savez(out, **{k: np.asarray(v, dtype=np.float64) for k, v in res.items()})
    print(json.dumps(info))


def run_worker(method: str, n: int, budget_s: float, timeout: float = 900) -> tuple[dict, dict]:
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "res.npz")
        p = subprocess.run(
            [sys.executable, __file__, "--worker", method, "--n", str(n), "--out", out, "--budget", str(budget_s)],
            capture_output=True, text=True, timeout=timeout, env={**os.environ, "PYTHONWARNINGS": "ignore"},
        )
        if p.returncode != 0:
            return {"method": method, "n": n, "error": (p.stderr.strip().splitlines() or ["?"])[-1]}, {}
        info = json.loads(p.stdout.strip().splitlines()[-1])
        with np.load(out) as z:
            return info, {k: z[k] for k in z.files}


def ensure_peers() -> None:
    missing = [pkg for mod, pkg in PEERS.items() if importlib.util.find_spec(mod) is None]
    if missing:  # --no-deps: they accept the installed torch, never pull another one
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", *missing], check=True)
    if importlib.util.find_spec("seaborn") is None:  # ckatorch imports it at package import
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "seaborn"], check=True)


def measure(methods: list[str], n: int, budget_s: float, repeats: int) -> dict[str, dict]:
    """Interleaved subprocess runs: per method its times (one per round), the last run's info and
    results, and its largest memory reading."""
    from _timing import interleaved

    out: dict[str, dict] = {m: {"times": [], "mem": 0.0, "info": {}, "res": {}} for m in methods}

    def run(m: str):
        def once() -> float:
            info, res = run_worker(m, n, budget_s)
            rec = out[m]
            rec["info"], rec["res"] = info, res
            if "error" in info:
                return float("nan")
            rec["mem"] = max(rec["mem"], info["mem_mb"])
            return info["time"]
        return once

    times = interleaved({m: run(m) for m in methods}, repeats=repeats, warmup=False, self_timed=True)
    for m in methods:
        out[m]["times"] = times[m]
    return out


def fastest_per_round(rec: dict[str, dict], peers: list[str]) -> list[float] | None:
    ok = [rec[p]["times"] for p in peers if p in rec and "error" not in rec[p]["info"]]
    return [min(ts) for ts in zip(*ok)] if ok else None


def fmt_row(name: str, rec: dict, dev: float | None, fastest: list[float] | None) -> str:
    from _timing import ratio, summary

    info = rec["info"]
    if "error" in info:
        return f"  {name:<26} ERROR: {info['error'][:90]}"
    sp = "-"
    if fastest:
        m, lo, hi = ratio(fastest, rec["times"])
        sp = f"{m:.1f}x [{lo:.1f}-{hi:.1f}]"
    dv = f"{dev:9.1e}" if dev is not None else "        -"
    return f"  {name:<26} {summary(rec['times']):>28} {rec['mem']:7.0f} MB {dv} {sp:>18}   {info.get('note', '')}"


HDR = f"  {'method':<26} {'time: median [range]':>28} {'peak mem':>10} {'max|dev|':>9} {'speedup':>18}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--worker")
    ap.add_argument("--n", type=int, default=0)
    ap.add_argument("--out")
    ap.add_argument("--budget", type=float, default=60.0, help="seconds ckatorch's linear grid may run per round")
    ap.add_argument("--repeats", type=int, default=3, help="interleaved rounds per case (>= 3 for README numbers)")
    ap.add_argument("--quick", action="store_true", help="n = 2,000 / 20,000 / 1,000: smoke test")
    ap.add_argument("--cases", default="linear,stream,rbf", help="comma-separated subset of linear,stream,rbf")
    args = ap.parse_args()
    if args.worker:
        worker(args.worker, args.n, args.out, args.budget)
        return
    ensure_peers()
    sys.path.insert(0, str(Path(__file__).resolve().parent))  # _timing (only the driver needs it)
    from _timing import machine

    n_small, n_big, n_rbf = (2000, 20_000, 1000) if args.quick else (10_000, 100_000, 5000)
    R = args.repeats
    print(f"{machine()}; data: {LT} teacher x {LS} student layers, d = {D}")
    print(f"time = wall time of the computation, median [min-max] over {R} interleaved rounds; peak mem = "
          "largest peak RSS - RSS before it; dev = max |grid - float64 reference| (same estimator)")
    print("speedup = fastest peer's time / this time, per round: median [min-max]\n")

    cases = set(args.cases.split(","))
    if "linear" in cases:
        linear_case(n_small, args.budget, R)
    if "stream" in cases:
        stream_case(n_big, args.budget)
    if "rbf" in cases:
        rbf_case(n_rbf, args.budget, R)


def linear_case(n_small: int, budget: float, R: int) -> None:
    from _timing import ratio_text

    print(f"== linear grid {LT} x {LS}, n = {n_small:,} ==")
    ref_info, ref = run_worker("ref_linear", n_small, budget)
    refmb_info, refmb = run_worker("ref_minibatch", n_small, budget)
    peers = ["pytorch-cka", "torch-cka", "ckatorch"]
    rec = measure(["ours", "ours_float64", "ours_minibatch", *peers], n_small, budget, R)
    fastest = fastest_per_round(rec, peers)
    print(HDR)
    devs_all: dict[str, dict[str, float]] = {}
    for m, r in rec.items():
        devs = {}
        for est, grid in r["res"].items():
            rf = ref.get(est) if est != "minibatch" else refmb.get("minibatch")
            if rf is not None:
                ok = ~np.isnan(grid)
                devs[est] = float(np.max(np.abs(grid[ok] - rf[ok])))
        devs_all[m] = devs
        if not devs:
            print(fmt_row(m, r, None, fastest))
        for est, dev in devs.items():
            print(fmt_row(f"{m} [{est}]", r, dev, fastest))
    print(f"  (float64 references: two-pass numpy {ref_info.get('time', float('nan')):.1f} s; minibatch Gram form "
          f"{refmb_info.get('time', float('nan')):.1f} s; ckatorch's time is extrapolated from the pairs it "
          "finished within the time budget)")
    ours = rec["ours"]
    if fastest and "error" not in ours["info"]:
        peer_devs = [v for m in peers for v in devs_all.get(m, {}).values()]
        print(f"  ours vs fastest peer: {ratio_text(fastest, ours['times'])}; mode {ours['info'].get('mode')}, "
              f"measured bound {ours['info'].get('bound', 0):.1e}, deviation from float64 "
              f"{devs_all['ours'].get('biased', float('nan')):.1e} (best peer {min(peer_devs, default=float('nan')):.1e})")
        print(f"  ours float64 vs fastest peer: {ratio_text(fastest, rec['ours_float64']['times'])}; "
              f"mixed vs float64: {ratio_text(rec['ours_float64']['times'], ours['times'])}\n")



def stream_case(n_big: int, budget: float) -> None:
    print(f"== linear grid {LT} x {LS}, n = {n_big:,} (ours streams the data; peers' Gram form needs "
          f"{n_big**2 * 4 / 2**30:.0f} GiB per layer in float32: not run; 1 round, a memory check) ==")
    ref_info, ref = run_worker("ref_linear", n_big, budget)
    rec = measure(["ours_stream", "ours_stream_mixed"], n_big, budget, 1)
    print(HDR)
    for m, r in rec.items():
        for est in ("biased", "debiased"):
            dev = float(np.max(np.abs(r["res"][est] - ref[est]))) if r["res"] and ref else None
            print(fmt_row(f"{m} [{est}]", r, dev, None))
    print(f"  (float64 reference: two-pass numpy, {ref_info.get('time', float('nan')):.1f} s)\n")



def rbf_case(n_rbf: int, budget: float, R: int) -> None:
    from _timing import ratio_text

    print(f"== RBF CKA (threshold 0.5), one pair (teacher last x student last), n = {n_rbf:,} ==")
    ref_info, ref = run_worker("ref_rbf", n_rbf, budget)
    rec = measure(["ours_rbf", "ours_nystrom", "ckatorch_rbf"], n_rbf, budget, R)
    fastest = fastest_per_round(rec, ["ckatorch_rbf"])
    print(HDR)
    for m, r in rec.items():
        dev = abs(float(r["res"]["rbf"][0, 0]) - float(ref["rbf"][0, 0])) if r["res"] and ref else None
        print(fmt_row(m, r, dev, fastest))
    print(f"  (float64 reference: numpy Gram form, {ref_info.get('time', float('nan')):.1f} s; value "
          f"{float(ref['rbf'][0, 0]):.6f}; pytorch-cka and torch-cka have no RBF kernel)")
    if fastest and "error" not in rec["ours_rbf"]["info"]:
        print(f"  exact RBF vs ckatorch: {ratio_text(fastest, rec['ours_rbf']['times'])}")


if __name__ == "__main__":
    main()
