"""LoRA adapters on the frozen ESM-2 backbone, and the on-disk bundle that holds them.

Design
------
ESM-2's attention projections (``q_proj k_proj v_proj out_proj``) and feed-forward layers
(``fc1 fc2``) are plain ``nn.Linear`` modules, so peft's LoRA can wrap them in place with
``peft.inject_adapter_in_model``: each targeted Linear becomes a ``peft.tuners.lora.Linear`` that
keeps the original module as ``.base_layer`` and adds ``lora_A.<name>`` / ``lora_B.<name>``.
peft is used rather than a home-made wrapper because it already handles several *named*
adapters per layer, switching between them (``BaseTunerLayer.set_adapter``), disabling them all
(``enable_adapters(False)`` runs the bare base layer, so the output is the backbone's exactly),
zero-initialised B (injection leaves the output unchanged), dtype/device placement and
requires_grad bookkeeping. Only the injection goes through peft; no ``PeftModel`` wrapper is
made, so the model stays an ``ESM2`` with its own ``forward`` and fair-esm parameter names
(plus peft's ``.base_layer`` infix, which :func:`base_state_dict` removes). Adapters are never
merged into the base weights, so the backbone stays bit-identical and shareable.

peft is imported lazily: importing this module does not pay for peft until an adapter is made.

On-disk format (an adapter *bundle*: one folder per backbone + mapping scheme)
------------------------------------------------------------------------------
* ``adapter-<name>.safetensors``: the adapter's LoRA tensors under portable keys (the adapter
  name removed, e.g. ``layers.0.self_attn.q_proj.lora_A.weight``);
* ``head-<name>.safetensors``: a task head's ``state_dict``;
* ``manifest.json``::

    {"format": "resm-adapters", "version": 1,
     "backbone": {"sha256": <backbone_checksum>, "source": <str>, "config": <ESM2Config dict>},
     "scheme": {"name": <scheme name>, "sha256": <scheme table hash>},
     "adapters": {<name>: {"file", "sha256" (of the file bytes), "config": AdapterConfig dict}},
     "heads": {<name>: {"file", "sha256", "task", "adapter": <adapter name or null>,
                        "config": <JSON>, "extra": <JSON>}}}

The backbone itself is not stored: the manifest pins it by checksum (and the mapping scheme by
name and table hash), and loading refuses any other backbone or scheme. Every file is written
atomically (temporary file + ``os.replace``); the manifest is read-modified-written, so a bundle
must not be written by two processes at once.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from ..config import format_version_problem
from ..mapping import Scheme
from ..utils.io import atomic_path, atomic_write_text
from ..utils.jsontext import load_json
from ..utils.paths import file_problem
from .esm2 import ESM2

TARGETS = ("q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2")
_ATTN_TARGETS = ("q_proj", "k_proj", "v_proj", "out_proj")
_NAME_RE = re.compile(r"[A-Za-z0-9_-]+")
MANIFEST = "manifest.json"
FORMAT = "resm-adapters"
VERSION = 1


class AdapterError(ValueError):
    """A bad adapter config, name, state, file or bundle; one-line message naming what and where."""


class BundleError(ValueError):
    """A bundle that cannot serve the request (one line naming the bundle)."""


# the command that reads a task's head from a bundle, named when a bundle lacks that head
COMMANDS = {"structure": "resm fold", "rri": "resm interact", "mrl": "resm predict --task mrl"}


def is_bundle(path: str | os.PathLike) -> bool:
    """A folder holding a bundle manifest (or the one-hot baseline's head files)."""
    p = Path(path)
    return p.is_dir() and ((p / MANIFEST).is_file() or any(p.glob("onehot-*.pt")))


def head_for(folder, entries: dict[str, dict], task: str, needs: dict[str, str] = COMMANDS) -> str:
    """The name of the bundle's head for ``task`` (``entries``: the manifest's heads); a
    :class:`BundleError` naming the bundle otherwise, and what needs the head (``needs``: task
    -> the command, or in the Python API the method, that reads it)."""
    names = [n for n, e in entries.items() if e.get("task") == task]
    if not names:
        have = ", ".join(sorted(f"{n} ({e.get('task')})" for n, e in entries.items())) or "none"
        need = f" that `{needs[task]}` needs" if task in needs else ""
        raise BundleError(f"{folder}: the bundle has no {task} head{need} (its heads: {have})")
    return names[0]


# ---------------------------------------------------------------------------------- config
@dataclass
class AdapterConfig:
    """Hyper-parameters of one LoRA adapter.

    * r: LoRA rank (positive int); each targeted Linear gets A (r x in) and B (out x r).
    * alpha: LoRA scaling numerator; the update is ``B @ A * alpha / r``.
    * dropout: dropout on the adapter's input, in [0, 1) (active only in ``train()`` mode).
    * targets: which Linear modules of each transformer layer get an adapter, a non-empty
      subset of ``TARGETS`` (q_proj, k_proj, v_proj, out_proj of self-attention; fc1, fc2).
    * layers: 0-based transformer layers that get adapters; None means all layers.
    """

    r: int = 8
    alpha: float = 16.0
    dropout: float = 0.0
    targets: list[str] = field(default_factory=lambda: list(TARGETS))
    layers: list[int] | None = None

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise AdapterError naming the first bad field."""

        def bad(f: str, why: str) -> AdapterError:
            return AdapterError(f"adapter config: field {f!r}: {why}")

        if isinstance(self.r, bool) or not isinstance(self.r, int) or self.r < 1:
            raise bad("r", f"must be a positive integer, got {self.r!r}")
        for f in ("alpha", "dropout"):
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v):
                raise bad(f, f"must be a number, got {v!r}")
            setattr(self, f, float(v))
        if self.alpha <= 0:
            raise bad("alpha", f"must be > 0, got {self.alpha}")
        if not 0.0 <= self.dropout < 1.0:
            raise bad("dropout", f"must be in [0, 1), got {self.dropout}")
        if isinstance(self.targets, str) or not isinstance(self.targets, (list, tuple)):
            raise bad("targets", f"must be a list of module names, got {self.targets!r}")
        self.targets = list(self.targets)
        if not self.targets:
            raise bad("targets", "must not be empty")
        for t in self.targets:
            if t not in TARGETS:
                raise bad("targets", f"unknown module {t!r} (allowed: {', '.join(TARGETS)})")
        if len(set(self.targets)) != len(self.targets):
            raise bad("targets", f"duplicate module in {self.targets}")
        if self.layers is not None:
            if not isinstance(self.layers, (list, tuple)) or not self.layers:
                raise bad("layers", f"must be None or a non-empty list of layer indices, got {self.layers!r}")
            self.layers = list(self.layers)
            for i in self.layers:
                if isinstance(i, bool) or not isinstance(i, int) or i < 0:
                    raise bad("layers", f"layer indices are integers >= 0, got {i!r}")
            if len(set(self.layers)) != len(self.layers):
                raise bad("layers", f"duplicate layer in {self.layers}")

    def to_dict(self) -> dict:
        return {
            "r": self.r,
            "alpha": self.alpha,
            "dropout": self.dropout,
            "targets": list(self.targets),
            "layers": None if self.layers is None else list(self.layers),
        }

    @classmethod
    def from_dict(cls, d: dict) -> AdapterConfig:
        if not isinstance(d, dict):
            raise AdapterError(f"adapter config: expected a mapping, got {type(d).__name__}")
        unknown = sorted(set(d) - {"r", "alpha", "dropout", "targets", "layers"})
        if unknown:
            raise AdapterError(f"adapter config: unknown field(s) {', '.join(map(repr, unknown))}")
        return cls(**d)


# ------------------------------------------------------------------------- backbone weights
def _is_lora_key(key: str) -> bool:
    return any(part.startswith("lora_") for part in key.split("."))


def base_state_dict(model: ESM2) -> dict[str, torch.Tensor]:
    """The backbone's state dict under fair-esm names: peft's ``.base_layer`` infix removed and
    every ``lora_*`` entry dropped, so a model with adapters still exports as a plain backbone."""
    return {k.replace(".base_layer.", "."): v for k, v in model.state_dict().items() if not _is_lora_key(k)}


def backbone_checksum(model: ESM2) -> str:
    """sha256 (hex) of the base backbone weights, independent of injected adapters and of the
    storage dtype: names sorted; name, shape and float32 little-endian bytes of each tensor."""
    h = hashlib.sha256()
    state = base_state_dict(model)
    for name in sorted(state):
        t = state[name].detach()
        h.update(name.encode() + b"\0" + repr(tuple(t.shape)).encode() + b"\0")
        a = np.ascontiguousarray(t.to("cpu", torch.float32).contiguous().numpy(), dtype="<f4")
        h.update(memoryview(a).cast("B"))
    return h.hexdigest()


# ----------------------------------------------------------------------- adapters in memory
def _lora_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    if "peft" not in sys.modules:  # no LoRA layer can exist yet; spare the slow import
        return []
    from peft.tuners.lora import LoraLayer

    return [(n, m) for n, m in model.named_modules() if isinstance(m, LoraLayer)]


def _check_name(name: str, what: str = "adapter") -> None:
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise AdapterError(f"{what} name {name!r}: must match [A-Za-z0-9_-]+")


def target_modules(model: ESM2, cfg: AdapterConfig) -> list[str]:
    """Module names (e.g. ``layers.0.self_attn.q_proj``) that ``cfg`` puts adapters on."""
    n = len(model.layers)
    layers = list(range(n)) if cfg.layers is None else cfg.layers
    for i in layers:
        if i >= n:
            raise AdapterError(f"adapter config: field 'layers': layer {i} does not exist (model has {n})")
    return [
        f"layers.{i}.self_attn.{t}" if t in _ATTN_TARGETS else f"layers.{i}.{t}" for i in layers for t in cfg.targets
    ]


def _adapter_params(model: nn.Module, name: str) -> dict[str, nn.Parameter]:
    """{portable key (adapter name removed): parameter} of adapter ``name``."""
    out: dict[str, nn.Parameter] = {}
    for key, p in model.named_parameters(remove_duplicate=False):
        parts = key.split(".")
        for i in range(len(parts) - 1):
            if parts[i].startswith("lora_") and parts[i + 1] == name:
                out[".".join(parts[: i + 1] + parts[i + 2 :])] = p
                break
    return out


def adapter_names(model: nn.Module) -> list[str]:
    """Names of the adapters injected into ``model``, sorted."""
    names: set = set()
    for _, layer in _lora_layers(model):
        names.update(layer.lora_A.keys())
    return sorted(names)


def active_adapter(model: nn.Module) -> str | None:
    """The active adapter's name; None when there are none or they are disabled."""
    layers = _lora_layers(model)
    if not layers or any(layer.disable_adapters for _, layer in layers):
        return None
    active = layers[0][1].active_adapters
    return active[0] if active else None


def set_active_adapter(model: nn.Module, name: str | None) -> None:
    """Route every LoRA layer through adapter ``name`` (its parameters trainable, every other
    adapter's frozen); None disables all adapters, so the model computes the plain backbone."""
    layers = _lora_layers(model)
    if name is None:
        for _, layer in layers:
            layer.enable_adapters(False)  # bare base_layer forward; freezes all adapter params
        return
    if name not in adapter_names(model):
        raise AdapterError(f"no adapter {name!r} in the model (has: {', '.join(adapter_names(model)) or 'none'})")
    for _, layer in layers:
        layer.set_adapter(name)
        layer.enable_adapters(True)


def add_adapter(model: ESM2, name: str, cfg: AdapterConfig) -> None:
    """Inject LoRA adapter ``name`` (in place; B = 0, so the output is unchanged), make it the
    active one, freeze every base parameter and leave only its LoRA parameters trainable."""
    _check_name(name)
    if name in adapter_names(model):
        raise AdapterError(f"adapter {name!r} already exists in the model")
    cfg.validate()
    targets = target_modules(model, cfg)
    from peft import LoraConfig, inject_adapter_in_model

    lcfg = LoraConfig(r=cfg.r, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout, target_modules=targets, bias="none")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Already found a `peft_config`")
        inject_adapter_in_model(lcfg, model, adapter_name=name)
    for key, p in model.named_parameters():
        if not _is_lora_key(key):
            p.requires_grad_(False)
    set_active_adapter(model, name)


def adapter_parameters(model: nn.Module, name: str) -> list[nn.Parameter]:
    """The trainable tensors of adapter ``name`` (for an optimiser)."""
    params = list(_adapter_params(model, name).values())
    if not params:
        raise AdapterError(f"no adapter {name!r} in the model")
    return params


def adapter_state_dict(model: nn.Module, name: str) -> dict[str, torch.Tensor]:
    """Copies of adapter ``name``'s tensors under portable keys (without the adapter name)."""
    params = _adapter_params(model, name)
    if not params:
        raise AdapterError(f"no adapter {name!r} in the model")
    return {k: p.detach().clone() for k, p in params.items()}


def load_adapter_state_dict(model: nn.Module, name: str, state: dict[str, torch.Tensor]) -> None:
    """Copy ``state`` (portable keys) into adapter ``name``; strict on keys and shapes."""
    params = _adapter_params(model, name)
    if not params:
        raise AdapterError(f"no adapter {name!r} in the model")
    missing = sorted(set(params) - set(state))
    unexpected = sorted(set(state) - set(params))
    if missing or unexpected:
        what = "; ".join(
            f"{label} {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''} ({len(keys)})"
            for label, keys in (("missing", missing), ("unexpected", unexpected))
            if keys
        )
        raise AdapterError(f"adapter {name!r}: state does not match: {what}")
    for k, p in params.items():
        v = state[k]
        if not isinstance(v, torch.Tensor) or tuple(v.shape) != tuple(p.shape):
            got = tuple(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__
            raise AdapterError(f"adapter {name!r}: {k}: shape {got} != expected {tuple(p.shape)}")
    with torch.no_grad():
        for k, p in params.items():
            p.copy_(state[k])


# --------------------------------------------------------------------------- on-disk bundle
def _sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _json_default(o):
    if hasattr(o, "tolist"):  # numpy scalars/arrays, torch tensors
        return o.tolist()
    raise TypeError(f"{type(o).__name__} is not JSON-serialisable")


def read_manifest(folder) -> dict:
    """The bundle's manifest; AdapterError if it is missing, not JSON or not a resm bundle."""
    path = Path(folder) / MANIFEST
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise AdapterError(f"{path}: no adapter manifest (missing file)") from None
    except OSError as e:
        raise AdapterError(f"{path}: cannot read: {e.strerror or e}") from None
    try:
        m = load_json(text)
    except json.JSONDecodeError as e:
        raise AdapterError(f"{path}: invalid JSON (line {e.lineno}: {e.msg})") from None
    if not isinstance(m, dict) or m.get("format") != FORMAT:
        raise AdapterError(f"{path}: not a {FORMAT} manifest (field 'format')")
    problem = format_version_problem(m.get("version"), VERSION)
    if problem:
        raise AdapterError(f"{path}: {problem}")
    b, s = m.get("backbone"), m.get("scheme")
    if not isinstance(b, dict) or not isinstance(b.get("sha256"), str):
        raise AdapterError(f"{path}: field 'backbone.sha256' missing or not a string")
    if not isinstance(s, dict) or not isinstance(s.get("name"), str) or not isinstance(s.get("sha256"), str):
        raise AdapterError(f"{path}: field 'scheme' must hold strings 'name' and 'sha256'")
    for key in ("adapters", "heads"):
        m.setdefault(key, {})
        if not isinstance(m[key], dict):
            raise AdapterError(f"{path}: field {key!r} must be an object")
        for name, entry in m[key].items():  # a head given as "x" was said as "no head 'rri' (has: rri)"
            if not isinstance(entry, dict):
                raise AdapterError(f"{path}: {key[:-1]} {name!r} must be an object, got {type(entry).__name__}")
            if key == "heads" and not isinstance(entry.get("task"), str):
                raise AdapterError(f"{path}: head {name!r}: field 'task' must be a string, got {entry.get('task')!r}")
            if not isinstance(entry.get("extra", {}), dict):  # null was "'NoneType' object has no attribute 'get'"
                raise AdapterError(f"{path}: {key[:-1]} {name!r}: field 'extra' must be an object")
    return m


def _check_backbone(manifest: dict, model: ESM2, where: str) -> None:
    want, have = manifest["backbone"]["sha256"], backbone_checksum(model)
    if want != have:
        raise AdapterError(f"{where}: adapters were trained on backbone {want[:12]} but this backbone is {have[:12]}")


def _check_scheme(manifest: dict, scheme: Scheme, where: str) -> None:
    s = manifest["scheme"]
    if s["name"] != scheme.name:
        raise AdapterError(
            f"{where}: adapters were trained with mapping scheme {s['name']!r} but this run uses scheme {scheme.name!r}"
        )
    if s["sha256"] != scheme.table_hash:
        raise AdapterError(
            f"{where}: the table of scheme {scheme.name!r} differs from the one the adapters were "
            f"trained with (hash {s['sha256'][:12]} != {scheme.table_hash[:12]})"
        )


def check_manifest(manifest: dict, model: ESM2, scheme: Scheme, where: str) -> None:
    """AdapterError unless the bundle was made for this backbone (checksum) and this scheme
    (name and table hash)."""
    _check_backbone(manifest, model, where)
    _check_scheme(manifest, scheme, where)


def _open_manifest(folder: Path, model: ESM2 | None, scheme: Scheme | None, source: str = "") -> dict:
    """The existing manifest checked against model/scheme, or a new one made from them."""
    path = folder / MANIFEST
    if path.exists():
        m = read_manifest(folder)
        if model is not None:
            _check_backbone(m, model, str(path))
        if scheme is not None:
            _check_scheme(m, scheme, str(path))
        if source and not m["backbone"].get("source"):
            m["backbone"]["source"] = source
        return m
    if model is None or scheme is None:
        raise AdapterError(f"{path}: no manifest yet; pass model and scheme to create it")
    return {
        "format": FORMAT,
        "version": VERSION,
        "backbone": {"sha256": backbone_checksum(model), "source": source, "config": model.cfg.to_dict()},
        "scheme": {"name": scheme.name, "sha256": scheme.table_hash},
        "adapters": {},
        "heads": {},
    }


def _sorted_metadata(data: bytes) -> bytes:
    """safetensors ``data`` with its header's metadata in sorted key order. safetensors writes
    the metadata map in an order that changes from one write to the next, so the same tensors
    and metadata made files (and a bundle's checksums) that differed from run to run."""
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + n])
    meta = header.pop("__metadata__", None)
    ordered = {"__metadata__": dict(sorted(meta.items())), **header} if meta else header
    text = json.dumps(ordered, separators=(",", ":"), ensure_ascii=False).encode()
    if len(text) > n:  # not the same header reordered: left as written
        return data
    return data[:8] + text.ljust(n, b" ") + data[8 + n :]


def _write_tensors(path: Path, state: dict[str, torch.Tensor], meta: dict[str, str]) -> str:
    """Atomically write ``state`` as safetensors, the same bytes for the same tensors and
    metadata; returns the sha256 of the bytes written."""
    from safetensors.torch import save

    state = {k: v.detach().to("cpu").contiguous().clone() for k, v in state.items()}
    data = _sorted_metadata(save(state, metadata=meta))
    with atomic_path(path, suffix=".safetensors") as tmp:
        tmp.write_bytes(data)
        return _sha256_bytes(data)


def _write_manifest(folder: Path, manifest: dict) -> None:
    try:
        text = json.dumps(manifest, indent=2, default=_json_default)
    except (TypeError, ValueError) as e:
        raise AdapterError(f"{folder / MANIFEST}: entry is not JSON-serialisable: {e}") from None
    atomic_write_text(folder / MANIFEST, text + "\n")


def _read_tensors(folder: Path, entry: dict, what: str) -> dict[str, torch.Tensor]:
    """Load an entry's safetensors file after checking its name and sha256."""
    from safetensors.torch import load

    file = entry.get("file")
    if not isinstance(file, str) or Path(file).name != file or file in ("", ".", ".."):
        raise AdapterError(f"{folder / MANIFEST}: {what}: field 'file' must be a plain file name, got {file!r}")
    path = folder / file
    if (problem := file_problem(path)) is not None:
        raise AdapterError(f"{path}: {what} {problem}")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise AdapterError(f"{path}: cannot read {what}: {e.strerror or e}") from None
    if _sha256_bytes(data) != entry.get("sha256"):
        raise AdapterError(f"{path}: sha256 checksum mismatch (file corrupt or changed after the manifest was written)")
    try:
        state = load(data)
    except Exception as e:  # a file that matches its checksum but is not safetensors
        raise AdapterError(f"{path}: not a safetensors file: {e}") from None
    from .load import non_finite

    if (bad := non_finite(state)) is not None:
        raise AdapterError(f"{path}: {what}: weight {bad} holds NaN or infinite values")
    return state


def save_adapter(folder, model: ESM2, name: str, cfg: AdapterConfig, scheme: Scheme, backbone_source: str = "") -> Path:
    """Write adapter ``name`` to ``folder/adapter-<name>.safetensors`` and record it in the
    manifest (created if needed; a manifest of another backbone or scheme -> AdapterError)."""
    folder = Path(folder)
    _check_name(name)
    cfg.validate()
    params = _adapter_params(model, name)
    if not params:
        raise AdapterError(f"no adapter {name!r} in the model")
    held = {k.rsplit(".lora_", 1)[0] for k in params}
    if held != set(target_modules(model, cfg)) or any(
        p.shape[0] != cfg.r for k, p in params.items() if ".lora_A." in f".{k}"
    ):
        raise AdapterError(f"adapter {name!r}: the config given does not match the adapter in the model")
    manifest = _open_manifest(folder, model, scheme, backbone_source)
    file = f"adapter-{name}.safetensors"
    sha = _write_tensors(folder / file, adapter_state_dict(model, name), {"format": "pt", "adapter": name})
    manifest["adapters"][name] = {"file": file, "sha256": sha, "config": cfg.to_dict()}
    _write_manifest(folder, manifest)
    return folder / file


def save_head(
    folder,
    name: str,
    head: nn.Module,
    config: dict,
    task: str,
    adapter: str | None,
    extra: dict | None = None,
    model: ESM2 | None = None,
    scheme: Scheme | None = None,
    backbone_source: str = "",
) -> Path:
    """Write a task head to ``folder/head-<name>.safetensors`` and record it in the manifest with
    its task, the adapter it runs on (None = the plain frozen backbone), its constructor config
    and extra JSON data (thresholds, target mean/std...). A new bundle needs model and scheme."""
    folder = Path(folder)
    _check_name(name, "head")
    if adapter is not None:
        _check_name(adapter)
    manifest = _open_manifest(folder, model, scheme, backbone_source)
    entry = {"task": task, "adapter": adapter, "config": config, "extra": dict(extra or {})}
    try:  # fail before writing anything
        entry = json.loads(json.dumps(entry, default=_json_default))
    except (TypeError, ValueError) as e:
        raise AdapterError(f"head {name!r}: config/extra is not JSON-serialisable: {e}") from None
    file = f"head-{name}.safetensors"
    sha = _write_tensors(folder / file, head.state_dict(), {"format": "pt", "head": name})
    manifest["heads"][name] = {"file": file, "sha256": sha, **entry}
    _write_manifest(folder, manifest)
    return folder / file


def load_adapter(folder, model: ESM2, name: str, scheme: Scheme) -> AdapterConfig:
    """Check the bundle against this backbone and scheme, verify the file's sha256, inject
    adapter ``name`` if the model lacks it, load its weights and make it active."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    where = str(folder / MANIFEST)
    check_manifest(manifest, model, scheme, where)
    entry = manifest["adapters"].get(name)
    if not isinstance(entry, dict):
        have = ", ".join(sorted(manifest["adapters"])) or "none"
        raise AdapterError(f"{where}: no adapter {name!r} (has: {have})")
    try:
        cfg = AdapterConfig.from_dict(entry.get("config"))
    except AdapterError as e:
        raise AdapterError(f"{where}: adapter {name!r}: {e}") from None
    state = _read_tensors(folder, entry, f"adapter {name!r}")
    if name not in adapter_names(model):
        add_adapter(model, name, cfg)
    load_adapter_state_dict(model, name, state)
    set_active_adapter(model, name)
    return cfg


def load_head_state(
    folder, name: str, model: ESM2 | None = None, scheme: Scheme | None = None
) -> tuple[dict[str, torch.Tensor], dict]:
    """(state dict, manifest entry) of head ``name``, its file's sha256 verified; the bundle is
    checked against ``model`` and/or ``scheme`` when given."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    where = str(folder / MANIFEST)
    if model is not None:
        _check_backbone(manifest, model, where)
    if scheme is not None:
        _check_scheme(manifest, scheme, where)
    entry = manifest["heads"].get(name)
    if not isinstance(entry, dict):
        have = ", ".join(sorted(manifest["heads"])) or "none"
        raise AdapterError(f"{where}: no head {name!r} (has: {have})")
    adapter = entry.get("adapter")
    if adapter is not None and adapter not in manifest["adapters"]:
        raise AdapterError(f"{where}: head {name!r} runs on adapter {adapter!r}, which the bundle lacks")
    return _read_tensors(folder, entry, f"head {name!r}"), entry
