"""ActivationCache: what `Subject.run` read, by full site name, with TransformerLens-style shorthand.

    logits, cache = subject.run("The doctor saw the lawyer.", read="blocks.*")
    cache["blocks.2.attn.hook_z"]      # [batch, pos, head, d_head]
    cache["z", 2]                      # the same tensor
    cache["resid_post", -1]            # the last layer's output
    cache.stack("resid_post")          # [layer, batch, pos, d_model]
    cache.inputs                       # the token batch it ran on

Values are detached unless the run asked for the autograd graph (`subject.run(..., grad=True)`).
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping

import torch

# shorthand -> site kind (see interp.sites)
SHORT_KINDS: dict[str, str] = {
    "z": "attn.hook_z",
    "pattern": "attn.hook_pattern",
    "attn_out": "hook_attn_out",
    "resid_mid": "hook_resid_mid",
    "mlp_out": "hook_mlp_out",
    "resid_post": "hook_resid_post",
}


def site_name(kind: str, layer: int | None, n_layers: int) -> str:
    """`site_name("z", 2, L)` -> "blocks.2.attn.hook_z"; also full kinds ("hook_z" / "attn.hook_z"),
    negative layers from the end, and "embed" / "logits" without a layer."""
    if kind in ("embed", "logits"):
        if layer is not None:
            raise KeyError(f"{kind!r} has no layer; use cache[{kind!r}].")
        return kind
    full = SHORT_KINDS.get(kind) or SHORT_KINDS.get(kind.removeprefix("attn.").removeprefix("hook_")) or kind
    if full not in SHORT_KINDS.values():
        raise KeyError(f"Unknown site kind {kind!r}; use one of {', '.join(SHORT_KINDS)}, 'embed', 'logits'.")
    if layer is None:
        raise KeyError(f"{kind!r} needs a layer: cache[{kind!r}, 0], or cache.stack({kind!r}) for all layers.")
    if not -n_layers <= layer < n_layers:
        raise KeyError(f"Layer {layer} is out of range: this model has layers 0..{n_layers - 1}.")
    return f"blocks.{layer % n_layers}.{full}"


class ActivationCache(Mapping[str, torch.Tensor]):
    """Site values from one forward pass: a read-only Mapping full site name -> tensor.

    Keys are full site names in forward order; `cache[kind, layer]` is shorthand (see `SHORT_KINDS`).
    `inputs` is the token batch the run saw (on the model's device), `examples` the examples it was
    tokenised from (None when a batch was given).
    """

    def __init__(self, values: Mapping[str, torch.Tensor], n_layers: int,
                 inputs: Mapping[str, torch.Tensor] | None = None, examples: list[dict] | None = None):
        self._values = dict(values)
        self.n_layers = n_layers
        self.inputs = dict(inputs) if inputs is not None else {}
        self.examples = examples

    def _key(self, key: str | tuple) -> str:
        if isinstance(key, tuple):
            if len(key) != 2 or not isinstance(key[1], int):
                raise KeyError(f"Use cache[kind, layer], e.g. cache['z', 2]; got {key!r}.")
            return site_name(key[0], key[1], self.n_layers)
        if not isinstance(key, str):
            raise KeyError(f"Cache keys are site names or (kind, layer), not {key!r}.")
        if key in self._values or key in ("embed", "logits") or key.startswith("blocks."):
            return key
        return site_name(key, None, self.n_layers)  # a bare kind: explains that a layer is needed

    def __getitem__(self, key: str | tuple) -> torch.Tensor:
        name = self._key(key)
        if name not in self._values:
            raise KeyError(f"{name!r} was not read in this run; read it with subject.run(..., read={name!r}). "
                           f"Read: {', '.join(self._values) or 'nothing'}.")
        return self._values[name]

    def __contains__(self, key: object) -> bool:
        try:
            return self._key(key) in self._values  # type: ignore[arg-type]
        except KeyError:
            return False

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def stack(self, kind: str, layers: list[int] | None = None) -> torch.Tensor:
        """One kind over layers (default: every layer): `stack("resid_post")` -> [layer, batch, pos, d_model]."""
        layers = list(range(self.n_layers)) if layers is None else layers
        names = [site_name(kind, layer, self.n_layers) for layer in layers]
        missing = [n for n in names if n not in self._values]
        if missing:
            raise KeyError(f"stack({kind!r}) needs {', '.join(missing)}, which were not read; read them with "
                           f"subject.run(..., read='blocks.*.{names[0].split('.', 2)[2]}').")
        return torch.stack([self._values[n] for n in names])

    def to(self, device: str | torch.device) -> ActivationCache:
        """A copy with every value (and the inputs) on `device`."""
        return ActivationCache({k: v.to(device) for k, v in self._values.items()}, self.n_layers,
                               {k: v.to(device) for k, v in self.inputs.items()}, self.examples)

    def detach(self) -> ActivationCache:
        return ActivationCache({k: v.detach() for k, v in self._values.items()}, self.n_layers, self.inputs,
                               self.examples)

    def __repr__(self) -> str:
        shapes = ", ".join(f"{k}: {list(v.shape)}" for k, v in list(self._values.items())[:6])
        more = f", ... ({len(self._values)} sites)" if len(self._values) > 6 else ""
        return f"ActivationCache({shapes}{more})"
