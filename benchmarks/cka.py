"""CKA benchmark: interp.cka against PyPI peers on the same data, in the same run.

    .venv/bin/python benchmarks/cka.py            # default (~5 min on 2 cores)
    .venv/bin/python benchmarks/cka.py --quick    # smaller n, smoke test

Cases
  linear grid: 7 teacher x 4 student layers, d = 384, n = 10,000 and n = 100,000
  rbf:         one pair, d = 384, n = 5,000, bandwidth threshold 0.5 (Kornblith)
Peers (installed into the venv with --no-deps if missing; they do not pin torch):
  pytorch-cka  (`cka.cka_from_features`, full-data Gram form, unbiased HSIC, float32)
  torch-cka    (`torch_cka.CKA.compare`, minibatch HSIC_1 over a DataLoader, float32)
  ckatorch     (`ckatorch.cka_base`, full-data Gram form per pair, float64; linear and rbf)
Each method runs in its own subprocess: time is wall time of the computation, memory is peak RSS
minus RSS before the computation (data already in memory, except n = 100,000 where ours streams
the data batch by batch). Each method is compared with a float64 reference of the SAME estimator
(biased CKA, debiased CKA or minibatch CKA), computed independently here in numpy.
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
    if method == "ours_stream":  # data generated batch by batch: memory independent of n
        from interp.cka import CKAAccumulator

        w = _weights()
        base = rss_mb()
        t0 = time.perf_counter()
        acc = CKAAccumulator()
        for b in range(n // BLOCK):
            t, s = block(b, w)
            acc.update(t, s)
        res = {"biased": acc.result(False), "debiased": acc.result(True)}
        info["time"] = time.perf_counter() - t0
        info["note"] = "streamed; incl. data generation; biased+debiased from one pass"
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
        if method == "ours":
            from interp.cka import CKAAccumulator

            acc = CKAAccumulator()
            for i in range(0, n, 10_000):
                acc.update([a[i : i + 10_000] for a in t], [b[i : i + 10_000] for b in s])
            res = {"biased": acc.result(False), "debiased": acc.result(True)}
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


def fmt_row(name, info, dev, fastest_peer):
    if "error" in info:
        return f"  {name:<28} ERROR: {info['error'][:90]}"
    ratio = f"{fastest_peer / info['time']:8.1f}x" if fastest_peer else "        -"
    dv = f"{dev:10.2e}" if dev is not None else "         -"
    return f"  {name:<28} {info['time']:9.2f} s {info['mem_mb']:9.0f} MB {dv} {ratio}   {info.get('note', '')}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--worker")
    ap.add_argument("--n", type=int, default=0)
    ap.add_argument("--out")
    ap.add_argument("--budget", type=float, default=60.0)
    ap.add_argument("--quick", action="store_true", help="n = 2,000 / 20,000 / 1,000: smoke test")
    args = ap.parse_args()
    if args.worker:
        worker(args.worker, args.n, args.out, args.budget)
        return
    ensure_peers()
    import torch

    n_small, n_big, n_rbf = (2000, 20_000, 1000) if args.quick else (10_000, 100_000, 5000)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; data: {LT} teacher x {LS} student layers, d = {D}")
    print("time = wall time of the computation; mem = peak RSS - RSS before it; dev = max |grid - float64 reference|")
    print("speedup = fastest peer time / this time\n")

    hdr = f"  {'method':<28} {'time':>11} {'mem':>12} {'max|dev|':>10} {'speedup':>9}"
    # ---- linear grid at n_small
    print(f"== linear grid {LT} x {LS}, n = {n_small:,} ==")
    ref_info, ref = run_worker("ref_linear", n_small, args.budget)
    refmb_info, refmb = run_worker("ref_minibatch", n_small, args.budget)
    rows = []
    for m in ("ours", "ours_minibatch", "pytorch-cka", "torch-cka", "ckatorch"):
        info, res = run_worker(m, n_small, args.budget)
        devs = {}
        for est, grid in res.items():
            r = ref.get(est) if est != "minibatch" else refmb.get("minibatch")
            if r is not None:
                ok = ~np.isnan(grid)
                devs[est] = float(np.max(np.abs(grid[ok] - r[ok])))
        rows.append((m, info, devs))
    peers = [i["time"] for m, i, _ in rows if m in ("pytorch-cka", "torch-cka", "ckatorch") and "error" not in i]
    fastest = min(peers) if peers else None
    print(hdr)
    for m, info, devs in rows:
        if not devs:
            print(fmt_row(m, info, None, fastest))
        for est, dev in devs.items():
            print(fmt_row(f"{m} [{est}]", info, dev, fastest))
    print(f"  (float64 references: two-pass numpy {ref_info.get('time', float('nan')):.1f} s; minibatch Gram form {refmb_info.get('time', float('nan')):.1f} s)")
    ours_t = next(i["time"] for m, i, _ in rows if m == "ours")
    ours_dev = max(next(d for m, _, d in rows if m == "ours").values())
    peer_devs = [v for m, _, d in rows if m not in ("ours", "ours_minibatch") for v in d.values()]
    if fastest:
        print(f"  ours vs fastest peer: {fastest / ours_t:.1f}x faster; max|dev| ours {ours_dev:.1e} vs best peer {min(peer_devs):.1e}\n")

    # ---- linear grid at n_big: streaming
    print(f"== linear grid {LT} x {LS}, n = {n_big:,} (ours streams the data; peers' Gram form needs "
          f"{n_big**2 * 4 / 2**30:.0f} GiB per layer in float32: not run) ==")
    ref_info, ref = run_worker("ref_linear", n_big, args.budget)
    info, res = run_worker("ours_stream", n_big, args.budget)
    print(hdr)
    for est in ("biased", "debiased"):
        dev = float(np.max(np.abs(res[est] - ref[est]))) if res and ref else None
        print(fmt_row(f"ours [{est}]", info, dev, None))
    print(f"  (float64 reference: two-pass numpy, {ref_info.get('time', float('nan')):.1f} s)\n")

    # ---- RBF at n_rbf
    print(f"== RBF CKA (threshold 0.5), one pair (teacher last x student last), n = {n_rbf:,} ==")
    ref_info, ref = run_worker("ref_rbf", n_rbf, args.budget)
    rows = [(m, *run_worker(m, n_rbf, args.budget)) for m in ("ours_rbf", "ours_nystrom", "ckatorch_rbf")]
    peers = [i["time"] for m, i, _ in rows if m == "ckatorch_rbf" and "error" not in i]
    fastest = min(peers) if peers else None
    print(hdr)
    for m, info, res in rows:
        dev = abs(float(res["rbf"][0, 0]) - float(ref["rbf"][0, 0])) if res and ref else None
        print(fmt_row(m, info, dev, fastest))
    print(f"  (float64 reference: numpy Gram form, {ref_info.get('time', float('nan')):.1f} s; value {float(ref['rbf'][0, 0]):.6f}; "
          "pytorch-cka and torch-cka have no RBF kernel)")


if __name__ == "__main__":
    main()
