"""A CUDA device on a machine without one, for tests of the GPU path on the CPU.

Inside ``with VirtualCuda():`` a tensor moved to ``cuda`` (``.to("cuda")``, ``.cuda()``,
``Module.to("cuda")``, a factory with ``device="cuda"``) stays a CPU tensor that is marked as
on the GPU, and reports ``device == cuda:0``; what is computed from it is marked too. The mode
raises where CUDA would, so that code that forgets a ``.to(device)`` fails here as it fails on a
GPU:

* an op that meets a marked tensor and an unmarked CPU tensor of one or more dimensions
  ("Expected all tensors to be on the same device"; CPU scalars of 0 dimensions are allowed,
  as CUDA allows them; a CUDA tensor may be indexed by CPU indices, not the other way round);
* ``.numpy()`` of a marked tensor;
* a random draw on the GPU from a CPU ``torch.Generator``.

Values are computed on the CPU, so results can be compared with a plain CPU run. Not covered:
dtype rules that differ between the devices, autocast on ``cuda`` (torch disables it, with a
warning, when CUDA is not available), ``torch.cuda.*`` calls, and the backward pass (run by
autograd outside the mode: gradients are marked when read through ``.grad`` of a marked
parameter).
"""

from __future__ import annotations

import types
from collections.abc import Iterator
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

CUDA = torch.device("cuda", 0)
_MARK = "_virtual_cuda"
RANDOM = {"rand", "randn", "randint", "randperm", "rand_like", "randn_like", "randint_like", "normal", "bernoulli"}
QUERIES = {"_has_compatible_shallow_copy_type", "is_same_size"}  # about tensors, computing nothing
RANDOM_METHODS = {"uniform_", "normal_", "random_", "bernoulli_", "exponential_", "geometric_", "multinomial"}


class DeviceMismatch(RuntimeError):
    """What CUDA would have refused."""


def on_gpu(t: Any) -> bool:
    """Whether ``t`` is a tensor marked as on the (virtual) GPU."""
    return isinstance(t, torch.Tensor) and bool(getattr(t, _MARK, False))


def _mark(x: Any) -> Any:
    if isinstance(x, torch.Tensor):
        setattr(x, _MARK, True)
    elif isinstance(x, (list, tuple)):
        for y in x:
            _mark(y)
    return x


def _tensors(args, kwargs) -> Iterator[torch.Tensor]:
    for a in [*args, *kwargs.values()]:
        if isinstance(a, torch.Tensor):
            yield a
        elif isinstance(a, (list, tuple)):
            yield from (b for b in a if isinstance(b, torch.Tensor))


def _wants_gpu(d: Any) -> bool | None:
    """Whether a device argument names the GPU (None: it names no device)."""
    if d is None or isinstance(d, torch.dtype):
        return None
    if isinstance(d, torch.Tensor):
        return on_gpu(d)
    if isinstance(d, int) and not isinstance(d, bool):
        return True  # an int device is a CUDA index
    try:
        return torch.device(d).type == "cuda"
    except (RuntimeError, TypeError):
        return None


def _target(args, kwargs) -> bool | None:
    """The device of ``Tensor.to``'s arguments (after self)."""
    if "device" in kwargs:
        return _wants_gpu(kwargs["device"])
    for a in args[1:2]:
        w = _wants_gpu(a)
        if w is not None:
            return w
    return None


class VirtualCuda(TorchFunctionMode):
    """See the module's notes. ``syncs`` counts reads of a marked tensor's value on the host
    (``.item()``, ``.tolist()``, ``bool``, ``float``, ``int``): each one waits for the GPU."""

    def __init__(self):
        super().__init__()
        self.syncs = 0

    def __torch_function__(self, func, types_=(), args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        name = getattr(func, "__name__", "")
        owner = getattr(func, "__self__", None)
        if isinstance(owner, types.GetSetDescriptorType):  # a tensor property
            return self._property(owner.__name__, name, func, args)
        if name in ("to", "cuda", "cpu") and args and isinstance(args[0], torch.Tensor):
            return self._move(name, func, args, kwargs)
        if name == "numpy" and on_gpu(args[0]):
            raise DeviceMismatch("can't convert cuda:0 device type tensor to numpy. Use Tensor.cpu() first")
        if name in ("item", "tolist", "__bool__", "__float__", "__int__", "__index__") and on_gpu(args[0]):
            self.syncs += 1
            return func(*args, **kwargs)
        gpu = None
        if "device" in kwargs:  # a factory, or *_like / new_* with a device
            gpu = _wants_gpu(kwargs["device"])
            if gpu:
                kwargs["device"] = "cpu"
        self._check_generator(name, args, kwargs, gpu)
        given = list(_tensors(args, kwargs))
        marked = [t for t in given if on_gpu(t)]
        if gpu is None and marked:
            self._check_mixed(name, args, given)
        out = func(*args, **kwargs)
        follows = bool(marked) and not (name == "__getitem__" and not on_gpu(args[0]))
        if gpu or (gpu is None and follows):
            _mark(out)
        return out

    # ---------------------------------------------------------------------------------------
    def _property(self, prop: str, name: str, func, args):
        if name == "__get__":
            t = args[0]
            if prop == "device" and on_gpu(t):
                return CUDA
            if prop == "is_cuda" and on_gpu(t):
                return True
            out = func(*args)
            if prop in ("grad", "data") and on_gpu(t) and out is not None:
                _mark(out)
            return out
        out = func(*args)
        if name == "__set__" and prop == "data" and on_gpu(args[1]):
            _mark(args[0])  # Module.to: param.data = its moved copy
        return out

    def _move(self, name: str, func, args, kwargs):
        t = args[0]
        if name == "cuda":
            return _mark(t.view_as(t))
        if name == "cpu":
            return t.clone() if on_gpu(t) else func(*args, **kwargs)
        want = _target(args, kwargs)
        if want:
            args = (t, *(("cpu" if _wants_gpu(a) else a) for a in args[1:]))
            if "device" in kwargs:
                kwargs["device"] = "cpu"
            out = func(*args, **kwargs)
            return _mark(out.view_as(out) if out is t else out)
        out = func(*args, **kwargs)
        if want is False and on_gpu(t):  # back to the CPU: a copy, unmarked
            return out.clone() if out is t else out
        if want is None and on_gpu(t):
            _mark(out)
        return out

    def _check_generator(self, name: str, args, kwargs, gpu) -> None:
        g = kwargs.get("generator")
        if not isinstance(g, torch.Generator) or g.device.type == "cuda":
            return
        draws_on_gpu = gpu if name in RANDOM else (name in RANDOM_METHODS and args and on_gpu(args[0]))
        if draws_on_gpu:
            raise DeviceMismatch(f"{name}: Expected a 'cuda' device type for generator but found 'cpu'")

    def _check_mixed(self, name: str, args, given) -> None:
        if name in QUERIES:
            return
        if name in ("copy_", "__setitem__"):  # copies between devices are allowed
            if name == "__setitem__" and not on_gpu(args[0]) and any(on_gpu(t) for t in _tensors([args[1]], {})):
                raise DeviceMismatch("__setitem__: indices on cuda:0 for a tensor on the cpu")
            return
        if name == "__getitem__":
            if not on_gpu(args[0]):
                raise DeviceMismatch("__getitem__: indices should be either on cpu or on the same device (cpu)")
            return
        for t in given:
            if not on_gpu(t) and t.dim() > 0 and t.device.type == "cpu":
                raise DeviceMismatch(
                    f"{name}: Expected all tensors to be on the same device, but found at least two devices, "
                    f"cuda:0 and cpu (a cpu tensor of shape {tuple(t.shape)})"
                )


def pretend_cuda(monkeypatch) -> None:
    """Make ``torch.cuda`` say that one GPU of 80 GiB is there (``is_available``,
    ``device_count``, ``current_device``, ``set_device``, ``is_bf16_supported``, ``mem_get_info``;
    its random state empty), so that code which checks before it moves (``resolve_device``, ``check_device``, the
    training loop and its checkpoints) runs its GPU branch under :class:`VirtualCuda`."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: None)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda *a, **k: (80 * 2**30, 80 * 2**30))
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", list)
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda state, device="cuda": None)
