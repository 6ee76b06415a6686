"""Site names: the named places in a forward pass, in TransformerLens's words.

| site                           | shape                           |
| ------------------------------ | ------------------------------- |
| `embed`                        | [batch, pos, d_model]           |
| `blocks.{l}.attn.hook_pattern` | [batch, head, q_pos, k_pos]     |
| `blocks.{l}.attn.hook_z`       | [batch, pos, head, d_head]      |
| `blocks.{l}.hook_attn_out`     | [batch, pos, d_model]           |
| `blocks.{l}.hook_resid_mid`    | [batch, pos, d_model] (post-LN encoders: after the attention LayerNorm) |
| `blocks.{l}.hook_mlp_out`      | [batch, pos, d_model]           |
| `blocks.{l}.hook_resid_post`   | [batch, pos, d_model]           |
| `logits`                       | [batch, n_labels]               |
"""
from __future__ import annotations

import difflib
import fnmatch
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

LAYER_KINDS = ("attn.hook_pattern", "attn.hook_z", "hook_attn_out", "hook_resid_mid", "hook_mlp_out", "hook_resid_post")
# What `Subject.run(read=...)` and `capture` accept: a name, a glob, a predicate on the name, or several.
SiteSpec = str | Callable[[str], bool] | Iterable[str | Callable[[str], bool]]
_LAYER_RE = re.compile(r"^blocks\.(\d+)\.(.+)$")


@dataclass(frozen=True)
class Site:
    """A parsed site name: `layer` is None for `embed` and `logits`."""

    name: str
    layer: int | None
    kind: str  # "embed" | "logits" | one of LAYER_KINDS


def all_sites(n_layers: int, kinds: tuple[str, ...] = LAYER_KINDS) -> list[str]:
    """Every site of an n-layer encoder, in forward order."""
    names = ["embed"]
    for layer in range(n_layers):
        names += [f"blocks.{layer}.{k}" for k in kinds]
    return names + ["logits"]


def parse_site(name: str, n_layers: int, kinds: tuple[str, ...] = LAYER_KINDS) -> Site:
    """Parse and validate a site name; unknown names raise with the nearest valid ones."""
    if name in ("embed", "logits"):
        return Site(name, None, name)
    m = _LAYER_RE.match(name)
    if m and m.group(2) in kinds and int(m.group(1)) < n_layers:
        return Site(name, int(m.group(1)), m.group(2))
    valid = all_sites(n_layers, kinds)
    near = difflib.get_close_matches(name, valid, n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(repr(s) for s in near)}?" if near else ""
    if m and m.group(2) in kinds:
        hint = f" Layer {m.group(1)} is out of range: this model has layers 0..{n_layers - 1}."
    raise KeyError(f"Unknown site {name!r}.{hint} Sites are 'embed', 'logits' and blocks.{{l}}.{{{'|'.join(kinds)}}}.")


def expand_sites(patterns: SiteSpec, n_layers: int, kinds: tuple[str, ...] = LAYER_KINDS) -> list[str]:
    """Site names, in forward order, from names, glob patterns such as `blocks.*.hook_resid_post` and
    predicates on the name (`lambda s: "hook_z" in s`). A single string is one pattern."""
    if isinstance(patterns, str) or callable(patterns):
        patterns = [patterns]
    valid = all_sites(n_layers, kinds)
    chosen: set[str] = set()
    for pattern in patterns:
        if callable(pattern):
            hits = [s for s in valid if pattern(s)]
            if not hits:
                raise KeyError(f"Site predicate {pattern!r} selects no site of this model.")
            chosen.update(hits)
        elif not isinstance(pattern, str):
            raise TypeError(f"A site is a name, a glob or a predicate on the name, not {type(pattern).__name__}.")
        elif any(ch in pattern for ch in "*?["):
            hits = fnmatch.filter(valid, pattern)
            if not hits:
                raise KeyError(f"Site pattern {pattern!r} matches no site of this model.")
            chosen.update(hits)
        else:
            chosen.add(parse_site(pattern, n_layers, kinds).name)
    return [s for s in valid if s in chosen]
