"""Cross-model activation patching: teacher activations written into the student at matched sites (heads
through the head map, layers through the layer map), total and direct effects, with ridge maps where the
widths differ."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch

from interp import engine
from interp.cache import ActivationCache
from interp.inputs import as_examples, batches
from interp.interventions import Batch, after_z, head_write, prepare, readout_chain, resume
from interp.pair import Pair
from interp.progress import bar as progress_bar
from interp.signal import check_finite
from interp.subject import Subject


@dataclass
class LinearMap:
    """Ridge regression from teacher to student activations: y ~ (x - mx) W + my."""

    W: torch.Tensor   # [d_teacher, d_student]
    mx: torch.Tensor  # [d_teacher]
    my: torch.Tensor  # [d_student]
    r2: float         # held-out R^2 of the fit

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return ((x.double() - self.mx) @ self.W + self.my).to(x.dtype)


def fit_ridge(x: torch.Tensor, y: torch.Tensor, lam: float = 1e-2, holdout: float = 0.2, seed: int = 0) -> LinearMap:
    """Closed-form ridge map x [n, dx] -> y [n, dy] (lam relative to the mean eigenvalue of x^T x).

    R^2 is measured on a held-out fraction; the returned map is refitted on all rows.
    """
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"fit_ridge: x has {x.shape[0]} rows, y has {y.shape[0]}.")

    def solve(xa: torch.Tensor, ya: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mx, my = xa.mean(0), ya.mean(0)
        xc, yc = xa - mx, ya - my
        gram = xc.T @ xc
        reg = lam * torch.trace(gram) / gram.shape[0]
        W = torch.linalg.solve(gram + reg * torch.eye(gram.shape[0], dtype=gram.dtype), xc.T @ yc)
        return W, mx, my

    x, y = x.double(), y.double()
    perm = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(seed))
    k = max(1, int(holdout * x.shape[0]))
    test, train = perm[:k], perm[k:]
    W, mx, my = solve(x[train], y[train])
    pred = (x[test] - mx) @ W + my
    r2 = float(1 - ((pred - y[test]) ** 2).sum() / ((y[test] - y[test].mean(0)) ** 2).sum())
    W, mx, my = solve(x, y)
    return LinearMap(W, mx, my, r2)


def _matched_sites(pair: Pair) -> list[tuple[str, int, int, str, int | None]]:
    """(label, student layer, student head|-1, teacher site, teacher head) for heads and layers."""
    out: list[tuple[str, int, int, str, int | None]] = []
    if pair.head_map is not None:
        for (sl, sh), t in sorted(pair.head_map.matches.items()):
            if t is not None:
                out.append((f"head {sl}.{sh}<-T{t[0]}.{t[1]}", sl, sh, f"blocks.{t[0]}.attn.hook_z", t[1]))
    for sl, tl in sorted(pair.layer_map.items()):
        out.append((f"layer {sl}<-T{tl}", sl, -1, f"blocks.{tl}.hook_resid_post", None))
    return out



def _patch_write(layer: int, head: int, value: torch.Tensor) -> dict[str, Any]:
    """The write of a cross-model patch: head `head`'s z at `layer` (head >= 0), else its resid_post."""
    if head >= 0:
        return {f"blocks.{layer}.attn.hook_z": head_write(head, value)}
    return {f"blocks.{layer}.hook_resid_post": value}


def _patched_logits(student: Subject, b: Batch, cache: ActivationCache, layer: int, head: int,
                    value: torch.Tensor, fast: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(total, direct) logits of one cross-model patch; direct is None unless `fast` (engine shortcuts, z
    and later outputs in `cache`), where it comes from the readout row alone."""
    if not fast:
        return resume(student, b, layer, _patch_write(layer, head, value)), None
    if head >= 0:
        zz = cache[f"blocks.{layer}.attn.hook_z"].clone()
        zz[:, :, head] = value
        return after_z(student, b, cache, layer, zz[None])
    row = slice(engine.READOUT_POS, engine.READOUT_POS + 1)
    direct = readout_chain(student, cache, layer + 1, value[None, :, row])
    if layer == student.n_layers - 1:
        return direct, direct
    return engine.finish(student, layer + 1, value, b.kwargs), direct


def cross_patch(pair: Pair, data: Iterable, maps: dict[str, LinearMap] | None = None, batch_size: int = 64,
                progress: bool = True, direct: bool = False) -> dict:
    """Patch teacher activations into the student at matched sites, on the same inputs.

    Heads: the student head's z is replaced by its matched teacher head's z; layers: the student's
    resid_post by the mapped teacher layer's. Where widths differ a fitted `maps[teacher_site]`
    (see `fit_site_maps`) translates teacher values first. Returns logits:
    {"teacher": [n, labels], "student": [n, labels], "patched": {component: [n, labels]}} and, with
    `direct`, "patched_direct": the same patches with every later student layer's attn_out and
    mlp_out held at the student's own values (path patching to the readout: the patch reaches the
    logits only through the residual stream and the LayerNorms). Total minus direct is what flows
    through later components.
    """
    examples = as_examples(data)
    teacher, student = pair.teacher, pair.student
    maps = maps or {}
    targets = _matched_sites(pair)
    t_sites = sorted({t[3] for t in targets})
    for label, _, _, t_site, th in targets:
        dt = teacher.d_head if th is not None else teacher.d_model
        ds = student.d_head if th is not None else student.d_model
        key = t_site if th is None else f"{t_site}[{th}]"
        if dt != ds and key not in maps:
            raise ValueError(f"{label}: teacher width {dt} differs from student width {ds} and no fitted map was "
                             f"given for {key!r}. Fit one with fit_site_maps(pair, held_out_data).")
    if not examples:
        raise ValueError("cross_patch: no examples; pass the inputs to patch on.")
    out: dict = {"teacher": [], "student": [], "patched": {t[0]: [] for t in targets}}
    if direct:
        out["patched_direct"] = {t[0]: [] for t in targets}
    fast = direct and engine.shortcuts_supported(student)
    z_sites = sorted({f"blocks.{t[1]}.attn.hook_z" for t in targets if t[2] >= 0}) if fast else []
    later = student.expand(["blocks.*.hook_attn_out", "blocks.*.hook_mlp_out"]) + z_sites if direct else []
    bar = progress_bar(total=len(targets) * -(-len(examples) // batch_size), desc="cross-model patching", disable=not progress)
    with torch.no_grad():
        for _, chunk in batches(examples, batch_size):
            t_logits, t_cache = teacher.run(teacher.tokenize(chunk), read=t_sites)
            (b, s_cache), = prepare(student, chunk, len(chunk), extra_reads=later)
            check_finite(t_logits, f"{teacher.name}, logits")
            check_finite(b.clean_logits, f"{student.name}, logits")
            out["teacher"].append(t_logits)
            out["student"].append(b.clean_logits)
            for label, sl, sh, t_site, th in targets:
                key = t_site if th is None else f"{t_site}[{th}]"
                value = t_cache[t_site] if th is None else t_cache[t_site][:, :, th]
                if key in maps:
                    value = maps[key](value)
                check_finite(value, f"{teacher.name}, {t_site}" + ("" if th is None else f" head {th}"))
                total, path = _patched_logits(student, b, s_cache, sl, sh, value, fast)
                out["patched"][label].append(total)
                if direct:
                    if path is None:
                        frozen = {s: s_cache[s] for s in later if int(s.split(".")[1]) > sl}
                        path = resume(student, b, sl, {**_patch_write(sl, sh, value), **frozen})
                    out["patched_direct"][label].append(path)
                bar.update(1)
    bar.close()
    res: dict[str, Any] = {"teacher": torch.cat(out["teacher"]).cpu(), "student": torch.cat(out["student"]).cpu()}
    for key in ("patched", "patched_direct"):
        if key in out:
            res[key] = {k: check_finite(torch.cat(v).cpu(), f"{student.name} patched at {k}, logits")
                        for k, v in out[key].items()}  # results live on CPU
    return res


def fit_site_maps(pair: Pair, data: Iterable, lam: float = 1e-2, batch_size: int = 64) -> dict[str, LinearMap]:
    """Ridge maps teacher -> student for every matched site, fitted on held-out token activations."""
    examples = as_examples(data)
    targets = _matched_sites(pair)
    xs: dict[str, list] = {}
    ys: dict[str, list] = {}
    with torch.no_grad():
        for _, chunk in batches(examples, batch_size):
            bt, bs = pair.teacher.tokenize(chunk), pair.student.tokenize(chunk)
            _, ct = pair.teacher.run(bt, read=sorted({t[3] for t in targets}))
            s_sites = sorted({f"blocks.{t[1]}.attn.hook_z" if t[2] >= 0 else f"blocks.{t[1]}.hook_resid_post"
                              for t in targets})
            _, cs = pair.student.run(bs, read=s_sites)
            m = bt["attention_mask"].bool()
            for _, sl, sh, t_site, th in targets:
                key = t_site if th is None else f"{t_site}[{th}]"
                xv = ct[t_site] if th is None else ct[t_site][:, :, th]
                yv = cs[f"blocks.{sl}.hook_resid_post"] if sh < 0 else cs[f"blocks.{sl}.attn.hook_z"][:, :, sh]
                xs.setdefault(key, []).append(xv[m])
                ys.setdefault(key, []).append(yv[m])
    return {k: fit_ridge(torch.cat(xs[k]), torch.cat(ys[k]), lam) for k in xs}
