"""Run data through a Subject and record sites, token-level or pooled, in memory or streamed to disk.

Pooling (applied per batch, so memory stays bounded by what is kept):
- "cls": position 0                                   [batch, pos, ...] -> [batch, ...]
- "mean": mean over real tokens (attention_mask == 1)  [batch, pos, ...] -> [batch, ...]
- "positions": one position per example, from `positions=` or each example's "position" key
- "none": token level, padded to the longest example of the whole dataset, with `mask` [n, pos]
`logits` is never pooled; `attn.hook_pattern` is only captured at token level.
Feature maps (ResNet sites, [batch, channels, h, w]) pool over space instead:
- "mean": global average over h, w (what the classifier head does)  -> [batch, channels]
- "flatten": every channel at every position                        -> [batch, channels * h * w]
- "none": the map itself                                             -> [batch, channels, h, w]
The default pool is "cls" for token sites and "mean" for feature maps.

With `out_dir`, results are written in safetensors shards as they are produced (memory: one shard),
with a manifest updated atomically after each shard; a run with the same config resumes where an
interrupted one stopped.
"""
from __future__ import annotations

import hashlib
import json
import sys
import types
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from interp.inputs import as_examples, batches
from interp.progress import bar as progress_bar
from interp.provenance import atomic_write_json, record
from interp.sites import parse_site

POOLS = ("cls", "mean", "positions", "none", "flatten")
MAP_POOLS = ("mean", "flatten", "none")


@dataclass
class Capture:
    """Recorded sites: `acts[site]` is [n, ...] in example order `ids`; `mask` [n, pos] at token level.

    CKA takes Captures directly: `cka_grid(capture_a, capture_b)` (ids must match)."""

    acts: dict[str, torch.Tensor]
    ids: list[str]
    meta: dict[str, Any] = field(default_factory=dict)
    mask: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.ids)


def pool_map(value: torch.Tensor, pool: str) -> torch.Tensor:
    """Pool one feature map's batch value [batch, channels, h, w] over space (see the module docstring)."""
    if pool == "mean":
        return value.mean(dim=(2, 3))  # [batch, channels]
    if pool == "flatten":
        return value.flatten(1)        # [batch, channels * h * w]
    if pool == "none":
        return value
    raise ValueError(f"pool={pool!r} does not apply to feature maps [batch, channels, h, w] (ResNet sites): use "
                     f"one of {MAP_POOLS} ('mean' is the global average pooling the classifier uses).")


def pool_site(value: torch.Tensor, kind: str, pool: str, mask: torch.Tensor,
              positions: torch.Tensor | None, pad_to: int, layout: str = "tokens") -> torch.Tensor:
    """Pool one site's batch value. mask: [batch, pos]; positions: [batch]; pad_to 0: no padding
    (images: every example has the same positions). `layout="maps"`: value is [batch, channels, h, w]."""
    if kind == "logits":
        return value
    if layout == "maps":
        return pool_map(value, pool)
    if pool == "flatten":
        raise ValueError("pool='flatten' is for feature maps (ResNet sites); token sites take 'cls', 'mean', "
                         "'positions' or 'none'.")
    if kind == "attn.hook_pattern":  # [batch, head, q_pos, k_pos]
        if pool != "none":
            raise ValueError("Attention patterns are captured at token level only: use pool='none' for "
                             "attn.hook_pattern sites, or capture them in a separate call.")
        p = max(pad_to - value.shape[-1], 0)
        return torch.nn.functional.pad(value, (0, p, 0, p))
    # value: [batch, pos, ...]
    if pool == "cls":
        return value[:, 0]
    if pool == "mean":
        m = mask.to(value.dtype).view(*mask.shape, *([1] * (value.dim() - 2)))  # [batch, pos, 1...]
        return (value * m).sum(1) / m.sum(1)
    if pool == "positions":
        if positions is None:
            raise ValueError("pool='positions' needs the position of every example (positions=).")
        idx = positions.view(-1, *([1] * (value.dim() - 1))).expand(-1, 1, *value.shape[2:])
        return value.gather(1, idx.to(value.device)).squeeze(1)
    pad = [0, 0] * (value.dim() - 2) + [0, max(pad_to - value.shape[1], 0)]
    return torch.nn.functional.pad(value, pad)


def _positions(examples: Sequence[dict], positions: Sequence[int] | None) -> list[int] | None:
    if positions is not None:
        if len(positions) != len(examples):
            raise ValueError(f"positions has {len(positions)} entries for {len(examples)} examples.")
        return list(positions)
    if all("position" in ex for ex in examples):
        return [int(ex["position"]) for ex in examples]
    return None


def capture(subject, data: Iterable[Any], sites: str | Sequence[str], pool: str | None = None,
            positions: Sequence[int] | None = None, batch_size: int = 32, max_length: int = 128,
            out_dir: str | Path | None = None, shard_size: int = 2048, seed: int = 0,
            progress: bool = True, dtype: torch.dtype = torch.float32, load: bool = True) -> Capture:
    """Record `sites` (names, globs like "blocks.*.hook_resid_post", or predicates on the name) for every
    example of `data`. `pool` None: "cls" for token sites, "mean" (over space) for feature maps.

    With `out_dir` and `load=False`, nothing is kept in memory: the returned Capture has the ids and
    meta but no acts; read the shards with `iter_shards(out_dir)`.
    """
    layout = subject.arch.layout
    if pool is None:
        pool = "mean" if layout == "maps" else "cls"
    if pool not in POOLS:
        raise ValueError(f"Unknown pool {pool!r}; choose one of {POOLS}.")
    examples = as_examples(data)
    site_names = subject.expand(sites)
    if layout == "maps" and pool not in MAP_POOLS:
        pool_map(torch.zeros(1, 1, 1, 1), pool)  # the clear error, before any forward pass
    kinds = {s: parse_site(s, subject.n_layers, subject.arch.kinds).kind for s in site_names}
    pos_list = _positions(examples, positions)
    if pool == "positions" and pos_list is None:
        raise ValueError("pool='positions' needs positions= or a 'position' key in every example.")
    pad_to = 0
    if pool == "none":
        pad_to = max(int(subject.tokenize(chunk, max_length)["attention_mask"].shape[1])
                     for _, chunk in batches(examples, 256)) if subject.arch.modality == "text" else 0
    torch.manual_seed(seed)
    config = {"sites": site_names, "pool": pool, "batch_size": batch_size, "max_length": max_length,
              "n_examples": len(examples), "subject": subject.name, "backend": subject.backend,
              "ids_sha256": hashlib.sha256("\n".join(ex["id"] for ex in examples).encode()).hexdigest()[:16],
              "positions": pos_list is not None and pool == "positions", "dtype": str(dtype)}
    meta = record(config, seed=seed, model_fingerprint=subject.fingerprint)

    writer = _ShardWriter(Path(out_dir), meta, shard_size, batch_size) if out_dir is not None else None
    start_at = writer.n_done if writer else 0
    kept: dict[str, list[torch.Tensor]] = {s: [] for s in site_names}
    masks: list[torch.Tensor] = []
    bar = progress_bar(total=len(examples), initial=start_at, desc=f"capture {subject.name}", unit="ex",
               disable=not progress)
    with torch.no_grad():
        for start, chunk in batches(examples, batch_size):
            if start < start_at:
                continue
            batch = subject.tokenize(chunk, max_length)
            _, cache = subject.run(batch, read=site_names)
            mask = batch.get("attention_mask")
            if mask is None:  # images: every patch is real
                first = next(iter(cache.values()))
                mask = torch.ones(first.shape[0], first.shape[1] if first.dim() > 2 else 1, dtype=torch.long)
            pos = torch.tensor(pos_list[start:start + len(chunk)]) if pool == "positions" and pos_list else None
            for s in site_names:
                v = pool_site(cache[s], kinds[s], pool, mask, pos, pad_to, layout).to("cpu", dtype)
                _check_finite(v, s, start)
                kept[s].append(v)
            if pool == "none":
                masks.append(torch.nn.functional.pad(mask.cpu(), (0, max(pad_to - mask.shape[1], 0))))
            bar.update(len(chunk))
            if writer and writer.ready(start + len(chunk), len(examples)):
                writer.flush(kept, masks, [ex["id"] for ex in examples[writer.n_done:start + len(chunk)]])
                kept = {s: [] for s in site_names}
                masks = []
    bar.close()
    if writer:
        return load_capture(writer.out_dir) if load else Capture({}, [ex["id"] for ex in examples], writer.meta)
    acts = {s: torch.cat(v) for s, v in kept.items()}
    return Capture(acts, [ex["id"] for ex in examples], meta, torch.cat(masks) if masks else None)


def _check_finite(v: torch.Tensor, site: str, start: int) -> None:
    if not torch.isfinite(v).all():
        raise FloatingPointError(f"Non-finite values (NaN/inf) at site {site!r} in the batch starting at example "
                                 f"{start}: check the inputs and the model's dtype.")


class _ShardWriter:
    """Writes shards atomically and keeps a manifest that makes an interrupted capture resumable."""

    def __init__(self, out_dir: Path, meta: dict, shard_size: int, batch_size: int):
        self.out_dir = out_dir
        self.meta = meta
        self.shard_size = max(batch_size, -(-shard_size // batch_size) * batch_size)  # a multiple of batch_size
        self.shards: list[dict] = []
        manifest = out_dir / "manifest.json"
        if manifest.exists():
            old = json.loads(manifest.read_text())
            if old["meta"]["config"] != meta["config"] or old["meta"]["model_fingerprint"] != meta["model_fingerprint"]:
                raise FileExistsError(f"{out_dir} holds a capture with a different config or model; "
                                      "choose another out_dir or delete it.")
            if old.get("shard_size") == self.shard_size:
                self.shards = old["shards"]
                self.meta = old["meta"]
        out_dir.mkdir(parents=True, exist_ok=True)

    @property
    def n_done(self) -> int:
        return sum(s["n"] for s in self.shards)

    def ready(self, n_seen: int, n_total: int) -> bool:
        return n_seen - self.n_done >= self.shard_size or n_seen == n_total

    def flush(self, kept: dict[str, list[torch.Tensor]], masks: list[torch.Tensor], ids: list[str]) -> None:
        tensors = {s: torch.cat(v).contiguous() for s, v in kept.items()}
        if masks:
            tensors["__mask__"] = torch.cat(masks).contiguous()
        name = f"shard_{len(self.shards):05d}.safetensors"
        tmp = self.out_dir / f".{name}.tmp"
        save_file(tensors, str(tmp), metadata={"ids": json.dumps(ids)})
        tmp.replace(self.out_dir / name)
        self.shards.append({"file": name, "n": len(ids)})
        atomic_write_json(self.out_dir / "manifest.json",
                          {"meta": self.meta, "shard_size": self.shard_size, "shards": self.shards,
                           "complete": self.n_done == self.meta["config"]["n_examples"]})


def iter_shards(out_dir: str | Path) -> Iterator[Capture]:
    """Stream a capture on disk shard by shard (memory: one shard)."""
    from safetensors import safe_open

    out_dir = Path(out_dir)
    manifest = json.loads((out_dir / "manifest.json").read_text())
    for shard in manifest["shards"]:
        path = out_dir / shard["file"]
        with safe_open(str(path), framework="pt") as f:
            ids = json.loads(f.metadata()["ids"])
        tensors = load_file(str(path))
        mask = tensors.pop("__mask__", None)
        yield Capture(tensors, ids, manifest["meta"], mask)


def load_capture(out_dir: str | Path) -> Capture:
    """Load a whole capture from disk into memory."""
    parts = list(iter_shards(out_dir))
    if not parts:
        raise ValueError(f"{out_dir} holds no shards yet.")
    acts = {s: torch.cat([p.acts[s] for p in parts]) for s in parts[0].acts}
    masks = [p.mask for p in parts if p.mask is not None]
    mask = torch.cat(masks) if masks else None
    return Capture(acts, [i for p in parts for i in p.ids], parts[0].meta, mask)



class _CallableModule(types.ModuleType):
    """`interp.capture` is both this module and the function: importing the submodule rebinds the
    package attribute to the module, so the module forwards calls to `capture`."""

    def __call__(self, *args: Any, **kwargs: Any) -> Capture:
        return capture(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
