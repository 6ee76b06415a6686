"""Pair: a teacher and its student, with a layer map and a head map.

The layer map sends each student layer to a teacher layer (student layer -> teacher layer). For a
student initialised from teacher layers it is read from the student's config (`kd_init`); otherwise
it is chosen by linear CKA of resid_post on data. The head map matches every student head to the
teacher head whose attention patterns and per-head outputs are most alike, by a Hungarian
assignment, with "no counterpart" below a similarity threshold or for a dead head (constant z), and
the output-norm ratio of each match, flagged when far from 1 (similarities ignore scale).
"""
from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from einops import rearrange
from scipy.optimize import linear_sum_assignment

from interp.arch import get_linear
from interp.capture import capture
from interp.cka import cka_grid, constant_heads, head_cka_grid
from interp.compat import check_compatible
from interp.inputs import as_examples, batches
from interp.subject import Subject

Head = tuple[int, int]  # (layer, head)


@dataclass
class HeadMap:
    """student head -> matched teacher head (or None), with the similarity of each match.

    `norm_ratio`: per matched student head, the RMS of its write into the residual stream over the
    teacher head's (`head_write_rms`); CKA and pattern similarity ignore scale, so a head scaled
    towards zero still matches with a high score: such matches (ratio outside the range given to
    `match_heads`) are listed in `flagged`. `dead`: student heads whose z is constant across examples
    (zero output): CKA is undefined for them and they have no counterpart.
    """

    matches: dict[Head, Head | None]
    score: dict[Head, float]
    pattern_sim: np.ndarray   # [teacher heads, student heads], flattened (layer, head) order
    z_cka: np.ndarray         # [teacher heads, student heads]; NaN for heads with constant z
    norm_ratio: dict[Head, float] = field(default_factory=dict)  # matched student head -> RMS write ratio S/T
    flagged: list[Head] = field(default_factory=list)            # matched heads whose ratio is far from 1
    dead: list[Head] = field(default_factory=list)               # student heads with constant z

    def to_json(self) -> list[dict]:
        return [{"student": list(s), "teacher": list(t) if t else None, "score": self.score[s],
                 "norm_ratio": self.norm_ratio.get(s), "flagged": s in self.flagged, "dead": s in self.dead}
                for s, t in sorted(self.matches.items())]


@dataclass
class Pair:
    teacher: Subject
    student: Subject
    layer_map: dict[int, int]                       # student layer -> teacher layer
    head_map: HeadMap | None = field(default=None)

    def __post_init__(self) -> None:
        check_layer_map(self.layer_map, self.teacher.n_layers, self.student.n_layers)


def check_layer_map(layer_map: dict[int, int], n_teacher: int, n_student: int) -> None:
    for s, t in layer_map.items():
        if not 0 <= s < n_student or not 0 <= t < n_teacher:
            raise ValueError(f"Layer map entry student {s} -> teacher {t} is out of range: the student has layers "
                             f"0..{n_student - 1}, the teacher 0..{n_teacher - 1}.")


def default_layer_map(teacher: Subject, student: Subject) -> dict[int, int] | None:
    """The teacher layers a student was initialised from, if its config records them (student layer -> teacher
    layer), else None (then `spaced_layer_map` of the depths, or `layer_map_by_cka` on data)."""
    init = getattr(student.config, "kd_init", None)
    if isinstance(init, dict) and init.get("init") == "teacher_layers":
        return {j: int(i) for j, i in enumerate(init["layers"])}
    return None


def spaced_layer_map(n_teacher: int, n_student: int) -> dict[int, int]:
    """A layer map from depths alone: DistilBERT's [0, 2, 4, 7, 9, 11] for 12 -> 6, else evenly spaced
    teacher layers with the student's last layer on the teacher's last."""
    if (n_teacher, n_student) == (12, 6):
        return dict(enumerate([0, 2, 4, 7, 9, 11]))
    if n_student == 1:
        return {0: n_teacher - 1}
    return {j: round(j * (n_teacher - 1) / (n_student - 1)) for j in range(n_student)}


def layer_map_by_cka(teacher: Subject, student: Subject, data: Sequence[dict], batch_size: int = 32,
                     monotone: bool = True) -> tuple[dict[int, int], np.ndarray]:
    """Map each student layer to the teacher layer of highest linear CKA (mean-pooled resid_post).

    With `monotone`, the map is the best non-decreasing assignment (dynamic programming), as for
    students that keep the teacher's layer order. Returns the map and the [teacher, student] grid.
    """
    sites_t, sites_s = teacher.expand("blocks.*.hook_resid_post"), student.expand("blocks.*.hook_resid_post")
    ct = capture(teacher, data, sites_t, pool="mean", batch_size=batch_size, progress=False)
    cs = capture(student, data, sites_s, pool="mean", batch_size=batch_size, progress=False)
    grid = np.asarray(cka_grid([ct.acts[s] for s in sites_t], [cs.acts[s] for s in sites_s])["xy"])  # [Lt, Ls]
    if not monotone:
        return {s: int(grid[:, s].argmax()) for s in range(grid.shape[1])}, grid
    lt, ls = grid.shape
    best = np.full((ls, lt), -np.inf)
    back = np.zeros((ls, lt), dtype=int)
    best[0] = grid[:, 0]
    for s in range(1, ls):  # best[s, t]: best total with student layer s on teacher layer t, non-decreasing
        prev = best[s - 1]
        back[s] = [int(np.argmax(prev[: t + 1])) for t in range(lt)]
        best[s] = prev[back[s]] + grid[:, s]
    t = int(best[-1].argmax())
    out = {ls - 1: t}
    for s in range(ls - 1, 0, -1):
        t = int(back[s, t])
        out[s - 1] = t
    return dict(sorted(out.items())), grid


def make_pair(teacher: Subject, student: Subject, layer_map: dict[int, int] | None = None,
              data: Sequence[dict] | None = None) -> Pair:
    """A checked Pair; the layer map is given, read from the student's init, or found by CKA on `data`."""
    check_compatible(teacher, student)
    if layer_map is None:
        layer_map = default_layer_map(teacher, student)
    if layer_map is None:
        if data is None:
            raise ValueError("No layer map: the student does not record its init layers. Pass layer_map= or data= "
                             "to choose it by CKA.")
        layer_map, _ = layer_map_by_cka(teacher, student, data)
    return Pair(teacher, student, dict(layer_map))


def pattern_similarity(teacher: Subject, student: Subject, data: Sequence[dict], batch_size: int = 16,
                       max_length: int = 128) -> np.ndarray:
    """1 - mean total-variation distance between attention rows of every teacher and student head.

    Averaged over real query positions of every example. Returns [Lt*Ht, Ls*Hs] in (layer, head) order.
    """
    examples = as_examples(data)
    pt_sites = teacher.expand("blocks.*.attn.hook_pattern")
    ps_sites = student.expand("blocks.*.attn.hook_pattern")
    total = torch.zeros(len(pt_sites) * teacher.n_heads, len(ps_sites) * student.n_heads, dtype=torch.float64)
    n_rows = 0
    with torch.no_grad():
        for _, chunk in batches(examples, batch_size):
            bt = teacher.tokenize(chunk, max_length)
            bs = student.tokenize(chunk, max_length)
            if "input_ids" in bt and not torch.equal(bt["input_ids"].cpu(), bs["input_ids"].cpu()):
                raise ValueError("Teacher and student tokenise the same text differently; patterns cannot be compared.")
            _, ct = teacher.run(bt, read=pt_sites)
            _, cs = student.run(bs, read=ps_sites)
            at = torch.cat([ct[s] for s in pt_sites], 1).cpu()  # [batch, Ht_all, q, k]
            as_ = torch.cat([cs[s] for s in ps_sites], 1).cpu()  # [batch, Hs_all, q, k]
            if at.shape[-1] != as_.shape[-1]:
                raise ValueError(f"Teacher and student see {at.shape[-1]} and {as_.shape[-1]} positions (ViT patch "
                                 "grids differ?); patterns cannot be compared.")
            mask = _real_positions(bt, at.shape[0], at.shape[-1])  # [batch, pos]
            for b in range(at.shape[0]):
                n = int(mask[b].sum())
                x, y = at[b, :, :n, :n].double(), as_[b, :, :n, :n].double()  # [H, q, k]
                tv = 0.5 * (x[:, None] - y[None]).abs().sum(-1)  # [Ht_all, Hs_all, q]
                total += tv.sum(-1)
                n_rows += n
    return 1.0 - (total / n_rows).numpy()


def _real_positions(batch: dict, n: int, pos: int) -> torch.Tensor:
    """[n, pos] bool on CPU: the attention mask of text, every position of an image (ViT [CLS] + patches)."""
    if "attention_mask" in batch:
        return batch["attention_mask"].bool().cpu()
    return torch.ones(n, pos, dtype=torch.bool)


def head_write_rms(subject: Subject, data: Sequence[dict], batch_size: int = 16, max_length: int = 128) -> np.ndarray:
    """RMS over real tokens of each head's write into the residual stream: [layers, heads].

    The write of head h is `z_h @ W_O[:, h*dh:(h+1)*dh].T` (W_O: the attention output projection; its
    bias, shared by all heads, is left out); RMS = sqrt(mean over real tokens of ||write||^2).
    """
    L, H = subject.n_layers, subject.n_heads
    sites = subject.expand("blocks.*.attn.hook_z")
    grams = []  # per layer [head, d_head, d_head]: W_h^T W_h, so ||z_h W_h^T||^2 = z_h G_h z_h^T
    for layer in range(L):
        w = get_linear(subject.layers[layer], subject.arch.o_proj).weight.detach().cpu().double()  # [d_model, H*dh]
        w = rearrange(w, "d_model (head d_head) -> d_model head d_head", head=H)
        grams.append(torch.einsum("mhd,mhe->hde", w, w))
    sq = torch.zeros(L, H, dtype=torch.float64)
    n_tokens = 0
    with torch.no_grad():
        for _, chunk in batches(as_examples(data), batch_size):
            batch = subject.tokenize(chunk, max_length)
            _, cache = subject.run(batch, read=sites)
            mask = _real_positions(batch, *cache[sites[0]].shape[:2])  # [batch, pos]
            n_tokens += int(mask.sum())
            for layer, site in enumerate(sites):
                z = cache[site].cpu().double()[mask]  # [tokens, head, d_head]
                sq[layer] += torch.einsum("thd,hde,the->h", z, grams[layer], z)
    return (sq / max(n_tokens, 1)).sqrt().numpy()


def _dead_heads(z: torch.Tensor, n_heads: int) -> list[Head]:
    """(layer, head) of the heads in z [n, layers*heads, d_head] that are constant across examples."""
    return [(i // n_heads, i % n_heads) for i in constant_heads(z)]


def _named(heads: Sequence[Head]) -> str:
    return ", ".join(f"{l}.{h}" for l, h in heads)


def match_heads(teacher: Subject, student: Subject, data: Sequence[dict], layer_map: dict[int, int] | None = None,
                threshold: float = 0.5, weight_pattern: float = 0.5, batch_size: int = 16,
                norm_range: tuple[float, float] = (0.5, 2.0)) -> HeadMap:
    """Hungarian matching of student heads to teacher heads on pattern similarity and per-head CKA.

    score = weight_pattern * pattern_sim + (1 - weight_pattern) * z_cka (both in [0, 1]). With a
    layer map, a student head may only match heads of its mapped teacher layer; matches scoring
    below `threshold` become "no counterpart" (None), and so do heads whose z is constant across
    examples (dead: zero output; z_cka and score are NaN). Each matched student head gets the ratio
    of its residual-stream write RMS to its teacher head's (`head_write_rms`); ratios outside
    `norm_range` are flagged, since a head scaled towards zero still matches with a high score.
    """
    psim = pattern_similarity(teacher, student, data, batch_size)
    zt_sites, zs_sites = teacher.expand("blocks.*.attn.hook_z"), student.expand("blocks.*.attn.hook_z")
    ct = capture(teacher, data, zt_sites, pool="mean", batch_size=batch_size, progress=False)
    cs = capture(student, data, zs_sites, pool="mean", batch_size=batch_size, progress=False)
    zt = torch.cat([ct.acts[s] for s in zt_sites], 1)  # [n, Lt*Ht, d_head]
    zs = torch.cat([cs.acts[s] for s in zs_sites], 1)  # [n, Ls*Hs, d_head]
    zcka = head_cka_grid(zt, zs, constant="nan")  # NaN rows / columns: dead heads
    ht, hs = teacher.n_heads, student.n_heads
    dead_t, dead_s = _dead_heads(zt, ht), _dead_heads(zs, hs)
    if dead_t or dead_s:
        warnings.warn(f"Heads with constant z across examples (dead: zero output), left without a counterpart: "
                      f"teacher [{_named(dead_t)}], student [{_named(dead_s)}].", stacklevel=2)
    score = weight_pattern * psim + (1 - weight_pattern) * zcka
    cost = np.where(np.isnan(score), 1e6, -score)
    if layer_map is not None:
        for s_layer in range(student.n_layers):
            allowed = layer_map.get(s_layer)
            for t_layer in range(teacher.n_layers):
                if t_layer != allowed:
                    cost[t_layer * ht:(t_layer + 1) * ht, s_layer * hs:(s_layer + 1) * hs] = 1e6
    rows, cols = linear_sum_assignment(cost)
    matches: dict[Head, Head | None] = {(j // hs, j % hs): None for j in range(score.shape[1])}
    scores: dict[Head, float] = {k: float("nan") for k in matches}
    for i, j in zip(rows.tolist(), cols.tolist()):  # python ints: the map is written to JSON
        s_head = (j // hs, j % hs)
        scores[s_head] = float(score[i, j])
        if cost[i, j] < 1e5 and score[i, j] >= threshold:
            matches[s_head] = (i // ht, i % ht)
    ratio = _norm_ratios(teacher, student, data, matches, batch_size)
    lo, hi = norm_range
    flagged = [k for k, r in sorted(ratio.items()) if not lo <= r <= hi]
    return HeadMap(matches, scores, psim, zcka, ratio, flagged, dead_s)


def _norm_ratios(teacher: Subject, student: Subject, data: Sequence[dict], matches: dict[Head, Head | None],
                 batch_size: int) -> dict[Head, float]:
    """Student / teacher write RMS per matched student head (inf where the teacher head writes nothing)."""
    if not any(t is not None for t in matches.values()):
        return {}
    rt, rs = head_write_rms(teacher, data, batch_size), head_write_rms(student, data, batch_size)  # [L, H]
    out = {}
    for s, t in matches.items():
        if t is not None:
            num, den = float(rs[s]), float(rt[t])
            out[s] = num / den if den > 0 else (float("inf") if num > 0 else float("nan"))
    return out
