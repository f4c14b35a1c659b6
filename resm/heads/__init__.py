"""Task heads on top of the backbone, and the registry of all of them.

``HEADS`` maps a head's name to its builder, ``build(head_config, embed_dim) -> (head, apply)``:
``apply(head, h, mask, batch)`` reads an encoder's residue embeddings ``h`` (B, L, E) and mask
for that head (:class:`resm.tasks.base.TaskModel`). The names: ``pairs``
(:class:`resm.heads.pairs.PairHead`, the shipped structure head), ``structure`` (the dense
2-D :class:`resm.heads.pair_map.StructureHead`), ``rri`` and ``mrl``. Saved models name their
heads, and :func:`resm.tasks.base.load_bundle` rebuilds each one through this registry.

Each module of this package declares its own entries in a module-level ``HEADS`` dict, and the
registry is their union: a new head is one new module here, and nothing else in this package
changes.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Mapping


def _discover() -> dict[str, Callable]:
    found: dict[str, Callable] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        for name, build in getattr(module, "HEADS", {}).items():
            if name in found:
                raise RuntimeError(f"head {name!r} is declared twice (resm.heads.{info.name})")
            found[name] = build
    return found


HEADS = _discover()

__all__ = ["HEADS", "build_for_weights", "check_finite_head"]


def check_finite_head(state: dict) -> None:
    """A ValueError naming the first weight of a saved head that holds a NaN or an infinity:
    such a head scores every pair NaN, which decodes as no pair at all (a structure model
    folded every RNA unpaired, with an expected F1 of 1.000, and exit code 0)."""
    from ..backbone.load import non_finite

    if (bad := non_finite(state)) is not None:
        raise ValueError(f"its head weight {bad} holds NaN or infinite values")


def _skip_init_mode():
    """A torch function mode under which ``torch.nn.init``'s in-place fills do nothing: the shape sketch
    on ``meta`` needs no values, and a ``normal_`` on a meta tensor (an ``nn.Embedding``'s
    initialisation) runs torch's Python reference, whose first call imports ``torch._dynamo``
    (seconds of every ``resm fold``'s start-up for nothing)."""
    from torch.overrides import TorchFunctionMode

    class SkipInit(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            if getattr(func, "__module__", None) == "torch.nn.init" and func.__name__.endswith("_"):
                return args[0] if args else kwargs["tensor"]
            return func(*args, **kwargs)

    return SkipInit()


def build_for_weights(build: Callable, config: dict, embed_dim: int, state: dict) -> tuple:
    """``build(config, embed_dim)`` for a head whose saved weights are ``state``: built first
    on torch's ``meta`` device (no memory) and its weights' shapes compared with ``state``'s,
    so that a saved config whose sizes its weights do not hold (10**9 channels) is a
    ValueError naming the first weight that differs, not an allocation until memory runs out.
    A saved config that is no mapping (null, a list) is a ValueError too: an empty list read as
    no settings at all, every one at its default, whatever the head was trained with. So is a
    weight holding a NaN or an infinity (:func:`check_finite_head`)."""
    import torch

    if not isinstance(config, Mapping):
        raise ValueError(f"its head config is a {type(config).__name__}, not a mapping of settings")
    check_finite_head(state)

    with torch.device("meta"), _skip_init_mode():
        sketch, _ = build(config, embed_dim)
    for k, v in sketch.state_dict().items():
        if k in state and tuple(state[k].shape) != tuple(v.shape):
            raise ValueError(f"its config gives {k} the shape {tuple(v.shape)}, its weights {tuple(state[k].shape)}")
    return build(config, embed_dim)
