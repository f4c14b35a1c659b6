"""The Python API: what ``resm fold`` and ``resm embed`` do, as calls (exposed lazily at the
top level: ``resm.load_predictor``, ``resm.embed_sequences``, ...; see the package's docstring).

* :func:`load_predictor`: the shipped structure model, a ``structure_model.pt`` of your own, or
  a backbone with a zero-shot probe, ready to fold
  (:meth:`resm.structure.predictor.Predictor.fold_one` folds one sequence,
  :meth:`~resm.structure.predictor.Predictor.fold` many, lazily: a :class:`Folded` each, the
  structure and its pair probabilities), built from the same
  options as ``resm fold``'s (:class:`resm.structure.predictor_loading.PredictorOptions`, through
  :func:`resm.config.options`);
* :func:`load_bundle`: a trained model folder (``out_dir/model`` of ``resm finetune``) with
  ``.fold`` / ``.fold_one`` (as a predictor's), ``.interact`` and ``.predict_mrl`` for the heads
  it holds (:class:`resm.bundle.Bundle`);
* :func:`load_backbone`: an ESM-2 backbone and its mapping scheme, from any model spec;
* :func:`embed_sequences`: representations of sequences, the arrays and index ``resm embed`` writes;
* :func:`read_embeddings` / :func:`write_embeddings`: the embeddings file (layout in
  :mod:`resm.embed`).
"""

from __future__ import annotations

import functools
import numbers
import os
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from .backbone.esm2 import ESM2
from .bundle import Bundle
from .config import check_switches
from .embed import (
    INCLUDE_CHOICES,
    autocast_dtype,
    embed_records,
    embedding_index,
    map_records,
    require_contact_regression,
    resolve_layers,
)
from .embed import read_embeddings as _read_embeddings
from .embed import write_embeddings as _write_embeddings
from .mapping import Scheme, get_scheme
from .structure.io import Structure
from .structure.model import DEFAULT_MODEL, load_with_scheme
from .structure.predictor import Folded, Predictor
from .utils.device import resolve_device

__all__ = [
    "load_predictor",
    "load_bundle",
    "Bundle",
    "load_backbone",
    "embed_sequences",
    "read_embeddings",
    "write_embeddings",
    "Structure",
    "Predictor",
    "Folded",
]

Sequences = Mapping[str, str] | Iterable[tuple[str, str]] | Iterable[str] | str | os.PathLike


def load_predictor(
    model: str | os.PathLike | None = DEFAULT_MODEL,
    zero_shot: str | os.PathLike | None = None,
    device: str = "auto",
    scheme: str | None = None,
    trust: bool = False,
    threads: int = 0,
    bpp_cache: str | os.PathLike | None = None,
    turner_scale: float | None = None,
) -> Predictor:
    """A :class:`~resm.structure.predictor.Predictor`: the structure model at ``model``
    (``"default"`` or None: the one shipped in the package), or, with ``zero_shot`` (a probe
    from ``resm probe``), the backbone at ``model`` with that probe. ``device`` ``auto``: the
    GPU when there is one. A structure model computes its thermodynamic priors in ``threads``
    processes (0: one per core) and, with ``bpp_cache``, stores them in that folder and reads
    them back (as ``resm fold --threads --bpp-cache``); ``turner_scale``: a pair-head model's
    stored decoding with the Turner-corrected step at this scale (as ``resm fold
    --turner-scale``; None: the decoding as stored). ``scheme``: with ``zero_shot``, the
    backbone's mapping scheme (None: the probe's; a structure model has its own). ``trust``:
    unpickle what the allow-list refuses, as ``--trust-checkpoint`` (only for files you trust).
    A bad value is a one-line FoldError naming its keyword (``turner_scale: must be ...``)."""
    from .config import keyword, options
    from .structure.io import FoldError
    from .structure.predictor_loading import PredictorOptions
    from .structure.predictor_loading import load_predictor as build

    _check_paths({"model": model, "zero_shot": zero_shot})
    check_switches({"trust": trust})
    given = dict(
        model=model,
        zero_shot=zero_shot,
        device=_device(device),
        scheme=scheme,
        trust=trust,
        threads=threads,
        bpp_cache=bpp_cache,
        turner_scale=turner_scale,
    )
    _check_keywords(given, FoldError)
    return build(options(PredictorOptions, given), open_bundle=_open_bundle, name=keyword, caller="resm.load_predictor")


def _check_keywords(given: Mapping[str, object], error: type[Exception] = ValueError) -> None:
    """Each keyword of ``given`` held to the rule the command line holds its flag to
    (:data:`resm.commands.common.OPTION_RULES`, through
    :func:`~resm.commands.common.option_problem`): a one-line ``error`` naming the keyword
    (``toks_per_batch: must be >= 1, got 0``) where the command line names the flag."""
    from .commands.common import option_problem
    from .config import keyword

    problem = option_problem(given, keyword)
    if problem:
        raise error(problem)


def _check_paths(
    given: Mapping[str, object], required: tuple[str, ...] = (), what: str = "a path or a model name"
) -> None:
    """Keywords that name a file, a folder or a model (``model``, ``zero_shot``, ``backbone``;
    ``what`` says which): anything but a str or a path (None allowed unless ``required``) is a
    TypeError naming the keyword, where ``os.fspath`` said 'expected str, bytes or os.PathLike
    object, not int'; the empty string is a ValueError naming the keyword (``Path("")`` is the
    current folder: it was said as '.: is a folder')."""
    for key, value in given.items():
        if (value is not None or key in required) and not isinstance(value, (str, os.PathLike)):
            raise TypeError(f"{key}: expected {what}, got {type(value).__name__}")
        if value == "":
            raise ValueError(f"{key}: is empty ('' names nothing to read)")


def _device(name: str | None) -> str:
    """``device`` checked as ``--device`` is (a bad one named: torch's own error lists every
    device type it knows), then resolved (``auto``, or None: the GPU when there is one). A
    device that is neither text nor a ``torch.device`` is a TypeError naming the keyword, and an
    empty one is refused as ``--device ''`` is: ``device=0`` and ``device=""`` were taken as
    ``auto`` in silence (the CPU where there is no GPU), where ``device=1`` was an unknown
    device."""
    import torch

    from .config import check_device

    if name is None:
        name = "auto"
    if isinstance(name, torch.device):
        name = str(name)
    if not isinstance(name, str):
        raise TypeError(f"device: expected a device name (auto, cpu, cuda or cuda:N), got {name!r}")
    return resolve_device(check_device(name, "device"))


def _open_bundle(folder):
    """A bundle folder given to :func:`load_predictor`: :func:`resm.tasks.base.open_bundle`,
    imported only then (a structure model does not pay for importing every task)."""
    from .tasks.base import open_bundle

    return open_bundle(folder)


@functools.wraps(_read_embeddings)
def read_embeddings(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict]:
    _check_paths({"path": path}, required=("path",), what="a path")  # 3 or None: os.fspath's words
    return _read_embeddings(path)


@functools.wraps(_write_embeddings)
def write_embeddings(path: str | os.PathLike, arrays: dict[str, np.ndarray], index: dict) -> None:
    if path == "":
        raise ValueError("path: is empty ('' names no file to write)")
    _check_paths({"path": path}, required=("path",), what="a path")
    _write_embeddings(path, arrays, index)


def load_bundle(
    model: str | os.PathLike, backbone: str | None = None, device: str = "auto", trust: bool = False
) -> Bundle:
    """The trained bundle in the folder ``model`` (``out_dir/model`` of ``resm finetune``:
    adapter, one file per head, manifest; what ``resm fold / interact / predict --model DIR``
    read) on ``device`` (``auto``: the GPU when there is one): ``.fold`` and ``.fold_one`` (as a
    :class:`Predictor`'s), ``.interact`` and ``.predict_mrl`` serve the heads it holds.
    ``backbone`` overrides the recorded backbone (its checksum must match); ``trust`` as
    :func:`load_predictor`'s."""
    from .bundle import load_bundle as _load

    _check_paths({"model": model, "backbone": backbone}, required=("model",))
    check_switches({"trust": trust})
    return _load(model, backbone=backbone, device=_device(device), trust=trust)


def load_backbone(
    model: str | os.PathLike = DEFAULT_MODEL, scheme: str | None = None, device: str = "auto", trust: bool = False
) -> tuple[ESM2, Scheme]:
    """``(ESM-2 model in eval mode, its mapping scheme)`` from ``model``: a fair-esm ``.pt``, a
    Hugging Face folder or cached hub id, an ESM-2 name, a ``structure_model.pt`` or
    ``"default"``. ``scheme``: None for the checkpoint's own (else kdny); another than the one it
    was trained with is an error. ``device`` and ``trust`` as :func:`load_predictor`'s."""
    _check_paths({"model": model})
    _check_keywords({"scheme": scheme})
    check_switches({"trust": trust})
    loaded, the_scheme = load_with_scheme(model, scheme, trust=trust)
    return loaded.model.to(_device(device)).eval(), the_scheme


def _records(sequences: Sequences) -> list:
    _check_paths({"sequences": sequences} if isinstance(sequences, str) else {})  # '' is no file
    if isinstance(sequences, str) and not os.path.exists(sequences) and _looks_like_rna(sequences):
        raise TypeError(
            f"sequences: {sequences[:20]!r}{'...' if len(sequences) > 20 else ''} is read as a file name and "
            "there is no such file; give a sequence in a list or a mapping: ['ACGU...'] or {'id': 'ACGU...'}"
        )
    if isinstance(sequences, (bytes, bytearray)):  # was read byte by byte: 'got int', naming nothing
        raise TypeError(
            f"sequences: got one {type(sequences).__name__} object; give sequences in a list or a mapping: "
            "[b'ACGU...'] or {'id': b'ACGU...'}, or a file name as a str"
        )
    if isinstance(sequences, (str, os.PathLike)):
        from .structure.inputs import read_sequences

        return read_sequences(sequences)
    from .records import RECORDS, name_records  # as Predictor.fold reads its records

    return name_records(sequences, keyword="sequences", what=RECORDS + ", or a file")


def _looks_like_rna(text: str) -> bool:
    """A string of nucleotide letters only (IUPAC codes included), which no one means as a file name."""
    return bool(text) and not set(text.upper()) - set("ACGUTNRYSWKMBDHV")


def embed_sequences(
    model: str | os.PathLike | ESM2,
    sequences: Sequences,
    layers: int | Sequence[int] = (-1,),
    include: str | Sequence[str] = ("mean",),
    scheme: str | None = None,
    device: str = "auto",
    toks_per_batch: int = 4096,
    dtype: str | None = None,
    progress: bool = False,
    trust: bool = False,
) -> tuple[dict[str, np.ndarray], dict]:
    """Representations of ``sequences`` (a dict id -> sequence, ``(id, sequence)`` pairs, bare
    sequences named ``seq_1``..., or a FASTA / structure file) under ``model`` (any spec of
    :func:`load_backbone`, or a loaded ``ESM2``, then with ``scheme``, default kdny).
    ``layers``: the layers kept, one or a list (0: the embedding layer; negative counts from the
    end; ``resm embed --repr-layers``); ``include``: one or a list of ``mean``, ``per_tok``,
    ``bos``, ``contacts``;
    ``device`` as :func:`load_predictor`'s; ``toks_per_batch``: the token budget of a batch
    (padded tokens); ``dtype``: the forward pass's autocast, as ``resm embed --dtype``:
    ``"bf16"``, ``"fp16"`` (or the torch dtype), ``"fp32"`` or None (plain fp32);
    ``progress``: a progress bar on stderr; ``trust`` as :func:`load_predictor`'s (``resm embed
    --trust-checkpoint``: a checkpoint the allow-list refuses says to pass ``trust=True``).

    Returns ``(arrays, index)`` exactly as :func:`read_embeddings` gives them back from a file
    of ``resm embed``: arrays keyed ``<id>/mean/<layer>``, ``<id>/per_tok/<layer>``,
    ``<id>/bos/<layer>``, ``<id>/contacts``."""
    dev = _device(device)
    if not isinstance(model, ESM2):
        _check_paths({"model": model}, required=("model",))
    _check_keywords({"scheme": scheme, "toks_per_batch": toks_per_batch})
    check_switches({"progress": progress, "trust": trust})
    dtype = autocast_dtype(dtype)  # a bad one is refused before the model is loaded
    one_layer = isinstance(layers, numbers.Integral) and not isinstance(layers, bool)  # numpy's too
    layers = [layers] if one_layer else layers  # layers=-1, include="mean": one of each
    include = [include] if isinstance(include, str) else include
    from .records import iterable  # layers=None or 1.0 was "'float' object is not iterable", naming nothing

    iterable(layers, "layers", "a layer (an integer) or a list of layers")
    iterable(include, "include", f"one or a list of {', '.join(INCLUDE_CHOICES)}")
    wanted = {"layers": "layer", "include": f"of {', '.join(INCLUDE_CHOICES)}"}
    for key, given in (("layers", layers), ("include", include)):  # resm embed's parser wants one of each too
        if isinstance(given, (list, tuple)) and not given:
            raise ValueError(f"{key}: give at least one {wanted[key]}, got an empty list (nothing would be embedded)")
    if isinstance(model, ESM2):
        net, the_scheme, name = model.to(dev).eval(), get_scheme(scheme or "kdny"), type(model).__name__
    else:
        loaded, the_scheme = load_with_scheme(model, scheme, trust=trust)
        if "contacts" in include:
            require_contact_regression(loaded.meta, str(model), other=", or leave contacts out")
        net, name = loaded.model.to(dev).eval(), str(model)
    records = map_records(_records(sequences), the_scheme, None, "sequences")
    the_layers = resolve_layers(layers, net.num_layers)
    arrays = embed_records(net, records, the_layers, include, toks_per_batch, dev, dtype, progress)
    return arrays, embedding_index(records, the_layers, include, the_scheme, name)
