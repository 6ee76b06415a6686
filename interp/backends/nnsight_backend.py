"""The nnsight backend: the same `run(subject, batch, read, write)` as the hooks backend, via nnsight 0.8.

The HuggingFace model is wrapped once per Subject (`NNsight(model)`) and reused. Sites are read
and written inside `with wrapped.trace(**batch):` by reading / assigning `.output` or `.input` of
the envoys at the module paths of `interp.arch` (the same paths the hooks backend uses).

nnsight quirks isolated here:
- A submodule named like an envoy attribute (BERT's `output`) is served as `E_output` by 0.8.1
  (0.7 did the opposite): `_envoy` maps module paths to envoys and checks it found the right module.
- Values must be requested in forward order: the order of the site events is measured once per
  Subject with a probe forward (plain hooks on layer 0), not assumed from the module tree.
- nnsight mounts `.save` on `object` at import (PYMOUNT), after which `import beartype` fails
  (`TypeError: unhashable type: 'instancemethod'`). `_import_nnsight` imports nnsight with
  PYMOUNT off, or, if nnsight was already imported with it on, imports beartype's affected module
  with the mount lifted for the moment. Only `nnsight.save(...)` is used here, which works either way.

Note: `NNsight(model)` installs a controller `forward` on every submodule of the model (inert
outside a trace; plain forward passes and the hooks backend give the same numbers).
"""
from __future__ import annotations

import inspect
import os
import sys
import tempfile
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from interp.arch import get_module
from interp.engine import apply_write, logits_site
from interp.sites import parse_site

# --- importing nnsight safely ------------------------------------------------------------------

_BEARTYPE_OBJECT_MODULE = "beartype._data.func.datafunc"  # builds a frozenset over object's attributes


def _import_nnsight():
    """Import nnsight without breaking a later `import beartype` (transformer_lens, jaxtyping)."""
    if "nnsight" not in sys.modules:
        import yaml

        from_user = os.environ.get("NNSIGHT_CONFIG")
        user_path = from_user or os.path.join(os.environ.get("XDG_CONFIG_HOME", os.path.expanduser("~/.config")),
                                              "nnsight", "config.yaml")
        data: dict = {}
        try:
            with open(os.path.expanduser(user_path)) as f:
                data = yaml.safe_load(f) or {}
        except OSError:
            pass
        data.setdefault("APP", {})["PYMOUNT"] = False  # keep the user's other settings (API key, ...)
        fd, tmp = tempfile.mkstemp(prefix="kd_interp_nnsight_", suffix=".yaml")
        try:
            with os.fdopen(fd, "w") as f:
                yaml.safe_dump(data, f)
            os.environ["NNSIGHT_CONFIG"] = tmp  # read once, at import
            import nnsight
        finally:
            if from_user is None:
                os.environ.pop("NNSIGHT_CONFIG", None)
            else:
                os.environ["NNSIGHT_CONFIG"] = from_user
            os.unlink(tmp)
        return nnsight

    import nnsight
    if _BEARTYPE_OBJECT_MODULE not in sys.modules and "save" in object.__dict__:
        # Imported elsewhere with PYMOUNT on: import beartype's object table without the mount.
        try:
            from nnsight._c import mount, unmount
        except ImportError:
            return nnsight
        if mount is not None and unmount is not None:
            saved = object.__dict__["save"]
            unmount("save")
            try:
                import importlib

                import beartype  # noqa: F401
                importlib.import_module(_BEARTYPE_OBJECT_MODULE)
            except ImportError:
                pass
            finally:
                mount(saved, "save")
    return nnsight


nnsight = _import_nnsight()
from nnsight import NNsight  # noqa: E402
from nnsight.intervention.envoy import Envoy  # noqa: E402

# --- wrapping and envoy access -----------------------------------------------------------------


def wrapped(subject) -> NNsight:
    """The subject's NNsight wrapper, built on first use and cached on the Subject."""
    cached = subject.__dict__.get("_nnsight")
    signature = _signature(subject)
    if cached is not None and cached[0] is subject.model and cached[2] == signature:
        return cached[1]
    with warnings.catch_warnings():
        # "Module ... has a submodule named 'output' ...": the E_output rename, handled by _envoy.
        warnings.filterwarnings("ignore", message=".*nnsight already serves.*")
        wrapper = NNsight(subject.model)
    subject.__dict__["_nnsight"] = (subject.model, wrapper, signature)
    subject.__dict__.pop("_nnsight_order", None)
    return wrapper


def _signature(subject) -> tuple[int, ...]:
    """Identity of the modules the sites live in: changes if something (a TransformerLens bridge
    built with copy_model=False) replaces submodules after wrapping, which calls for a new wrapper."""
    model, arch = subject.model, subject.arch
    paths = [arch.embed] + [p for p in (arch.pattern, arch.o_proj, arch.mlp_out, arch.resid_mid) if p]
    return (id(subject.layers), *(id(subject.layers[i]) for i in range(len(subject.layers))),
            *(id(get_module(model, paths[0])),),
            *(id(get_module(subject.layers[0], p)) for p in paths[1:]))


def _envoy(root: Envoy, model: nn.Module, path: str) -> Envoy:
    """The envoy of the module at `path` (an interp.arch module path), whatever nnsight renamed."""
    target = get_module(model, path)
    envoy: Any = root
    try:
        for part in path.split("."):
            if part.isdigit():
                envoy = envoy[int(part)]
                continue
            name = part
            if inspect.isdatadescriptor(getattr(Envoy, part, None)):  # `output`, `input`, ...
                name = getattr(Envoy, "OVERLOAD_PREFIX", "E_") + part
            envoy = getattr(envoy, name)
        if getattr(envoy, "_module", None) is target:
            return envoy
    except (AttributeError, IndexError, TypeError):
        pass
    for candidate in root.modules():  # another nnsight spelling: find the envoy by module identity
        if candidate._module is target:
            return candidate
    raise RuntimeError(f"nnsight {nnsight.__version__}: no envoy found for module {path!r}.")


# --- which module event each site is, and their forward order ----------------------------------


def _event(subject, kind: str, layer: int | None) -> tuple[str, str]:
    """(module path, "input" | "output") whose value is the site (before any tuple indexing)."""
    arch = subject.arch
    if kind == "embed":
        return arch.embed, "output"
    prefix = f"{arch.layers}.{layer}"
    path = {"hook_resid_post": None, "hook_attn_out": arch.o_proj, "attn.hook_z": arch.o_proj,
            "hook_mlp_out": arch.mlp_out, "hook_resid_mid": arch.resid_mid, "attn.hook_pattern": arch.pattern}[kind]
    return (prefix if path is None else f"{prefix}.{path}"), ("input" if kind == "attn.hook_z" else "output")


class _Stop(Exception):
    pass


def _kind_order(subject, batch: Mapping[str, torch.Tensor]) -> dict[str, int]:
    """Rank of each site kind within a layer, in the order the forward pass produces them.

    Measured once per Subject by a probe forward through layer 0 with plain hooks.
    """
    cached = subject.__dict__.get("_nnsight_order")
    if cached is not None:
        return cached
    seen: list[str] = []
    handles = []
    layer0 = subject.layers[0]
    for kind in subject.arch.kinds:
        path, where = _event(subject, kind, 0)
        module = get_module(subject.model, path)
        if where == "input":
            handles.append(module.register_forward_pre_hook(lambda m, a, k=kind: seen.append(k)))
        else:
            handles.append(module.register_forward_hook(lambda m, a, o, k=kind: seen.append(k)))

    def stop(module: nn.Module, args: Any, output: Any) -> None:
        raise _Stop

    handles.append(layer0.register_forward_hook(stop))
    try:
        with torch.no_grad():
            subject.model(**batch)
    except _Stop:
        pass
    finally:
        for h in handles:
            h.remove()
    order = {k: i for i, k in enumerate(dict.fromkeys(seen))}
    missing = [k for k in subject.arch.kinds if k not in order]
    if missing:
        raise RuntimeError(f"{subject.name}: the probe forward never reached the modules of {missing}.")
    subject.__dict__["_nnsight_order"] = order
    return order


# --- run ---------------------------------------------------------------------------------------


def _first(value: Any) -> torch.Tensor:
    return value[0] if isinstance(value, tuple) else value


def run(subject, batch: Mapping[str, torch.Tensor], read: Sequence[str],
        write: Mapping[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    root = wrapped(subject)
    model, n_heads = subject.model, subject.n_heads
    order = _kind_order(subject, batch)
    read_set = set(read)

    # Plan: one step per site, in forward order.
    steps = []
    for site in dict.fromkeys([*write, *read]):
        if site == "logits":
            continue
        s = parse_site(site, subject.n_layers, subject.arch.kinds)
        if s.kind == "attn.hook_pattern" and site in write:
            raise NotImplementedError(
                f"Writing {site!r} is not supported by the nnsight backend (the pattern is consumed inside the "
                "attention kernel). Patch the head's output 'attn.hook_z' instead.")
        path, where = _event(subject, s.kind, s.layer)
        key = (-1, 0) if s.layer is None else (s.layer, order[s.kind])
        steps.append((key, site, s.kind, _envoy(root, model, path), where))
    steps.sort(key=lambda step: step[0])

    with root.trace(**batch):
        cache = nnsight.save({})
        for _, site, kind, envoy, where in steps:
            raw = envoy.input if where == "input" else envoy.output
            if kind == "attn.hook_pattern":
                value = raw[1]
                if value is None:
                    raise RuntimeError(f"{site}: the model returned no attention pattern; use eager attention.")
            elif kind == "attn.hook_z":
                value = raw.view(*raw.shape[:-1], n_heads, raw.shape[-1] // n_heads)  # [batch, pos, head, d_head]
            else:
                value = _first(raw)
            if site in write:
                value = apply_write(write[site], value, site)
                if kind == "attn.hook_z":
                    envoy.input = value.reshape(raw.shape)
                elif isinstance(raw, tuple):
                    envoy.output = (value,) + tuple(raw[1:])
                else:
                    envoy.output = value
            if site in read_set:
                cache[site] = value
        logits = nnsight.save(root.output.logits)  # [batch, n_labels]
    cache = dict(cache)
    return logits_site(logits, read, write, cache), cache
