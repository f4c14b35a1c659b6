"""YAML configs with ``key.sub=value`` overrides from the command line."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, List

import yaml

from .train import ConfigError


def default_data_dir() -> str:
    """``$RESM_DATA``, else ``../shared/data`` (the development layout)."""
    return os.environ.get("RESM_DATA", "../shared/data")


def apply_override(cfg: Dict[str, Any], item: str) -> None:
    if "=" not in item:
        raise ConfigError(f"override {item!r} is not key=value")
    key, raw = item.split("=", 1)
    value = yaml.safe_load(raw) if raw != "" else None
    node = cfg
    parts = key.split(".")
    for p in parts[:-1]:
        if not isinstance(node.setdefault(p, {}), dict):
            raise ConfigError(f"override {item!r}: {p} is not a section")
        node = node[p]
    node[parts[-1]] = value


def _substitute(x: Any, data_dir: str) -> Any:
    if isinstance(x, str):
        return x.replace("{data_dir}", data_dir)
    if isinstance(x, list):
        return [_substitute(v, data_dir) for v in x]
    if isinstance(x, dict):
        return {k: _substitute(v, data_dir) for k, v in x.items()}
    return x


def load_config(path: str | os.PathLike, overrides: List[str] = ()) -> Dict[str, Any]:
    """Read a YAML config, apply overrides, and expand ``{data_dir}`` in strings."""
    path = Path(path)
    try:
        cfg = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(cfg, dict):
        raise ConfigError(f"{path}: a config must be a mapping of sections")
    for item in overrides:
        apply_override(cfg, item)
    data_dir = str(cfg.pop("data_dir", None) or default_data_dir())
    cfg = _substitute(cfg, data_dir)
    cfg["data_dir"] = data_dir
    return cfg
