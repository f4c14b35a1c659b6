"""``resm embed``: per-sequence and per-nucleotide representations, like fair-esm's esm-extract.

All records are read, mapped and checked before the model runs, and the output file is written
atomically at the end, so a bad record never leaves a half-written file behind.

The output is one file (:func:`write_embeddings`): ``.safetensors`` or ``.npz``, holding one
array per record and kind, keyed ``<id>/mean/<layer>`` (E,), ``<id>/per_tok/<layer>`` (L, E),
``<id>/bos/<layer>`` (E,) and ``<id>/contacts`` (L, L), float32, plus a JSON index: ``ids`` (in
input order), ``lengths``, ``layers`` (absolute layer numbers, 0 = the embedding layer),
``include``, ``scheme``, ``scheme_hash`` and ``model``. :func:`read_embeddings` returns
``(arrays, index)``. :func:`embed_file` is the command: under ``torchrun`` every process embeds
its shards of the records and rank 0 merges them into the same file
(:mod:`resm.utils.shards`).
"""

from __future__ import annotations

import json
import numbers
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from .alphabet import pad_batch
from .backbone.esm2 import ESM2
from .config import UsageError
from .fasta import checked_toks_per_batch, token_batches
from .mapping import MappingError, Scheme
from .utils.io import atomic_path
from .utils.jsontext import load_json
from .utils.paths import file_problem, numpy_problem
from .utils.shards import DEFAULT_SHARD_SIZE

INCLUDE_CHOICES = ("mean", "per_tok", "bos", "contacts")
"""What an embeddings file keeps per sequence (esm-extract's names): ``include=`` of the API and
``resm embed --include``, whose parser reads this tuple."""


@dataclass
class Mapped:
    id: str
    ids: np.ndarray  # token ids, one per nucleotide


def map_records(records, scheme: Scheme, max_length: int | None = None, source: str = "input") -> list[Mapped]:
    """Map every ``(id, sequence)`` record; errors name the record."""
    out = []
    for rid, seq in records:
        try:
            ids = scheme.encode(seq, rid)
            if max_length is not None and len(ids) > max_length:
                raise MappingError(f"record {rid!r}: {len(ids)} nt is longer than --max-length {max_length}")
        except MappingError as e:
            raise MappingError(f"{source}: {e}") from None
        out.append(Mapped(rid, ids))
    if not out:
        raise MappingError(f"{source}: no records")
    return out


def resolve_layers(layers: Sequence[int], num_layers: int, name: str = "layers") -> list[int]:
    """The layers ``layers`` names (negative counts from the end), in order, as Python ints (a
    NumPy integer went into the index as itself, which JSON cannot write); an integer out of
    range is a one-line ValueError naming ``name`` (the API's keyword, or ``--repr-layers``), one
    that is no integer a TypeError naming it."""
    out = []
    for layer in layers:
        if isinstance(layer, bool) or not isinstance(layer, numbers.Integral):
            raise TypeError(f"{name}: each layer must be an integer, got {layer!r}")
        if not -(num_layers + 1) <= layer <= num_layers:
            raise ValueError(
                f"{name}: layer {layer} does not exist (the model has {num_layers} layers: give 0, the "
                f"embedding layer, to {num_layers}, or -{num_layers + 1} to -1)"
            )
        out.append((int(layer) + num_layers + 1) % (num_layers + 1))
    return sorted(set(out))


AUTOCAST_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
"""``--dtype``'s names -> the autocast dtype of a forward pass (None: plain fp32)."""


def autocast_dtype(dtype: str | torch.dtype | None) -> torch.dtype | None:
    """The autocast dtype of ``dtype``: one of :data:`AUTOCAST_DTYPES`' names (``--dtype``'s),
    a torch dtype among their values (``torch.float32``: None), or None; anything else is a
    one-line ValueError naming ``dtype``."""
    if dtype is None or dtype == torch.float32:
        return None
    if isinstance(dtype, str) and dtype in AUTOCAST_DTYPES:
        return AUTOCAST_DTYPES[dtype]
    if isinstance(dtype, torch.dtype) and dtype in AUTOCAST_DTYPES.values():
        return dtype
    raise ValueError(f"dtype: must be one of {', '.join(AUTOCAST_DTYPES)} (or None: fp32), got {dtype!r}")


@torch.inference_mode()
def embed_records(
    model: ESM2,
    records: list[Mapped],
    layers: Sequence[int] = (-1,),
    include: Sequence[str] = ("mean",),
    toks_per_batch: int = 4096,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
    progress: bool = True,
    desc: str = "embed",
) -> dict[str, np.ndarray]:
    """Run the model over token-budget batches; returns ``{"<id>/<what>/<layer>": array}``
    (``dtype``: autocast, as :func:`autocast_dtype` reads it; ``progress``: a bar on stderr,
    labelled ``desc``, counting records against their total)."""
    dtype = autocast_dtype(dtype)
    bad = set(include) - set(INCLUDE_CHOICES)
    if bad:  # resm embed's --include is held to INCLUDE_CHOICES by its parser: the API's keyword is named
        raise ValueError(f"include: unknown {sorted(bad)}; choose from {INCLUDE_CHOICES}")
    layers = resolve_layers(layers, model.num_layers)
    want_contacts = "contacts" in include
    out: dict[str, np.ndarray] = {}
    batches = token_batches([len(r.ids) for r in records], checked_toks_per_batch(toks_per_batch))
    autocast = torch.autocast(device_type=torch.device(device).type, dtype=dtype, enabled=dtype is not None)
    bar = tqdm(total=len(records), desc=desc, unit="seq", disable=not progress)  # records, as every command's
    for batch in batches:
        recs = [records[i] for i in batch]
        toks = pad_batch([r.ids for r in recs]).to(device)
        with autocast:
            res = model(toks, repr_layers=layers, return_contacts=want_contacts, return_logits=False)
        for b, r in enumerate(recs):
            n = len(r.ids)
            for layer in layers:
                h = res["representations"][layer][b].float()
                if "per_tok" in include:
                    out[f"{r.id}/per_tok/{layer}"] = h[1 : n + 1].cpu().numpy()
                if "mean" in include:
                    out[f"{r.id}/mean/{layer}"] = h[1 : n + 1].mean(0).cpu().numpy()
                if "bos" in include:
                    out[f"{r.id}/bos/{layer}"] = h[0].cpu().numpy()
            if want_contacts:
                out[f"{r.id}/contacts"] = res["contacts"][b, :n, :n].float().cpu().numpy()
        bar.update(len(recs))
    bar.close()
    return out


def require_contact_regression(meta: Mapping, where: str, what: str = "contact maps", other: str = "") -> None:
    """The contact head's output (``what``) asked of a backbone loaded without its contact
    regression (a fair-esm ``.pt`` whose ``<stem>-contact-regression.pt`` is not beside it): a
    CheckpointError naming it and the ways out (``other``: the caller's own), where the untrained
    head's output was written with exit code 0 (``resm embed --include contacts``, ``resm
    interact --zero-shot`` without a probe)."""
    from .backbone.load import CheckpointError

    if not meta.get("contact_regression"):
        raise CheckpointError(
            f"{where}: has no contact regression (fair-esm keeps it in <stem>-contact-regression.pt beside the "
            f"model), so its {what} would be an untrained head's: put the file beside it{other}"
        )


NPZ_NAME_MAX = 65535  # bytes in a zip entry's name: an .npz holds each array as an entry "<key>.npy"


def array_keys(rid: str, layers: Sequence[int], include: Sequence[str]) -> list[str]:
    """The keys of one record's arrays (:func:`embed_records` writes them)."""
    keys = [f"{rid}/{what}/{layer}" for what in include if what != "contacts" for layer in layers]
    return keys + ([f"{rid}/contacts"] if "contacts" in include else [])


def check_array_names(path: str | os.PathLike, keys) -> None:
    """An ``.npz`` whose arrays' names would be too long for its zip entries is refused naming
    the record (before any work, from :func:`embed_file`): it failed once the work was done,
    with 'ushort format requires 0 <= number <= 65535'."""
    if Path(path).suffix != ".npz":
        return
    for k in keys:
        n = len(f"{k}.npy".encode())
        if n > NPZ_NAME_MAX:
            rid = _record_of(k)
            short = rid if len(rid) <= 40 else rid[:40] + "..."
            raise ValueError(
                f"{path}: record {short!r} ({len(rid)} characters): its array name would be {n} bytes, more than "
                f"the {NPZ_NAME_MAX} an .npz entry name may hold; shorten the id, or write .safetensors"
            )


def _record_of(key: str) -> str:
    """The record id of an array key (ids may hold ``/``)."""
    return key[: -len("/contacts")] if key.endswith("/contacts") else key.rsplit("/", 2)[0]


def _numpy_value(o):
    """For ``json.dumps``: a NumPy number or array as the Python value it holds."""
    if isinstance(o, (np.generic, np.ndarray)):
        return o.tolist()
    raise TypeError(f"{type(o).__name__} is not JSON-able")


def index_problem(arrays: Mapping[str, np.ndarray], index: Mapping) -> str | None:
    """What makes ``arrays`` disagree with what ``index`` says of them, in words (None when
    nothing does): an array of a record the index's ``ids`` do not list, a listed record without
    arrays; with ``layers`` and ``include``, an array missing or not asked for
    (:func:`array_keys`); with ``lengths``, a ``per_tok`` or ``contacts`` array whose rows are not
    its record's nucleotides, and a ``mean`` or ``bos`` array that is not one vector."""
    ids = index.get("ids")
    if not isinstance(ids, (list, tuple)) or not all(isinstance(i, str) for i in ids):
        return f"index: 'ids' must be the list of record ids, got {ids!r:.60}"
    listed = set(ids)
    stray = next((k for k in arrays if _record_of(k) not in listed), None)
    if stray is not None:
        return f"array {stray!r} is of a record the index's ids do not list"
    have = {_record_of(k) for k in arrays}
    lost = next((i for i in ids if i not in have), None)
    if lost is not None:
        return f"record {lost!r} of the index's ids has no arrays"
    layers, include = index.get("layers"), index.get("include")
    if isinstance(layers, (list, tuple)) and isinstance(include, (list, tuple)):
        want = {k for rid in ids for k in array_keys(rid, layers, include)}
        odd = next((k for k in sorted(want.symmetric_difference(arrays))), None)
        if odd is not None:
            said = "is missing" if odd in want else "is not one its layers and include ask for"
            return f"array {odd!r} {said} (index: layers {layers}, include {include})"
    lengths = index.get("lengths")
    if not isinstance(lengths, (list, tuple)) or len(lengths) != len(ids):
        return None
    length = dict(zip(ids, lengths))
    for k, v in arrays.items():
        shape, n = np.shape(v), length[_record_of(k)]
        parts = k.rsplit("/", 2)
        kind = "contacts" if k.endswith("/contacts") else parts[-2] if len(parts) == 3 else ""
        wanted = {"contacts": f"({n}, {n})", "per_tok": f"({n}, E)", "mean": "(E,)", "bos": "(E,)"}.get(kind)
        ok = {"contacts": shape == (n, n), "per_tok": len(shape) == 2 and shape[0] == n}.get(kind, len(shape) == 1)
        if wanted is not None and not ok:
            return f"array {k!r} has shape {shape}, not {wanted} (index: {n} nt)"
    return None


def write_embeddings(path: str | os.PathLike, arrays: dict[str, np.ndarray], index: dict) -> None:
    """One file at ``path`` holding every array of ``arrays`` (keyed ``<id>/<kind>/<layer>``),
    as float32, plus ``index``, the JSON index (ids in input order, lengths, layers). Arrays
    that disagree with the index (:func:`index_problem`) are a ValueError naming the file and
    the array, and nothing is written: such a file read back without a word, its index naming
    arrays it does not hold.

    ``.safetensors``: the index is in the file's metadata under ``resm_index``;
    ``.npz``: the index is the array ``__index__`` (a JSON string). Arrays are stored in the
    order of the index's ids (then by key), whatever order they were computed in."""
    path = Path(path)
    if not isinstance(arrays, Mapping) or not all(isinstance(k, str) for k in arrays):
        raise TypeError(f"{path}: arrays: expected a mapping of array name (str) to array, got {type(arrays).__name__}")
    if not isinstance(index, Mapping):
        raise TypeError(
            f"{path}: index: expected a mapping (the index embed_sequences returns), got {type(index).__name__}"
        )
    check_array_names(path, arrays)
    for k, v in arrays.items():  # an object array would be pickled into an .npz that read_embeddings refuses
        if np.asarray(v).dtype.kind not in "biuf":
            raise ValueError(f"{path}: array {k!r} holds {np.asarray(v).dtype} values, not numbers")
    if (problem := index_problem(arrays, index)) is not None:
        raise ValueError(f"{path}: {problem}")
    arrays = {k: np.asarray(v, dtype=np.float32) for k, v in arrays.items()}  # the layout's type, as read back
    try:  # a NumPy number is written as the number it is
        text = json.dumps(index, default=_numpy_value)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{path}: index: not JSON-able ({e})") from None
    rank = {rid: k for k, rid in enumerate(index.get("ids", []))}
    arrays = {k: arrays[k] for k in sorted(arrays, key=lambda k: (rank.get(_record_of(k), len(rank)), k))}
    if path.suffix == ".safetensors":
        from safetensors.numpy import save_file

        with atomic_path(path, ".safetensors") as tmp:
            save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(tmp), metadata={"resm_index": text})
    elif path.suffix == ".npz":
        with atomic_path(path, ".npz") as tmp, open(tmp, "wb") as fh:
            np.savez(fh, __index__=np.array(text), **arrays)
    else:
        raise ValueError(f"{path}: output must end in .safetensors or .npz")


def read_embeddings(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict]:
    """Inverse of ``write_embeddings``: the file at ``path`` (``.safetensors`` or ``.npz``) as
    ``(arrays, index)``: ``arrays`` maps each key (``<id>/mean/<layer>``, ``<id>/per_tok/<layer>``,
    ``<id>/bos/<layer>``, ``<id>/contacts``) to its float32 array, ``index`` is the JSON index
    (``ids`` in input order, ``lengths``, ``layers``, ``include``, ``scheme``, ``scheme_hash``,
    ``model``). A file that cannot be read (or holds pickled objects, which are never loaded) is
    a one-line ValueError naming it."""
    path = Path(path)
    if (problem := file_problem(path)) is not None:  # a named pipe: the read waited for ever
        raise ValueError(f"{path}: {problem}, not an embeddings file")
    try:
        if path.suffix == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(path), framework="np") as fh:
                index = load_json(fh.metadata()["resm_index"])
                return {k: fh.get_tensor(k) for k in fh.keys()}, index  # noqa: SIM118 (a safetensors file, not a dict)
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files if k != "__index__"}
            return arrays, load_json(str(z["__index__"]))
    except Exception as e:  # noqa: BLE001 -- every reader's error: one message naming the file
        if isinstance(e, FileNotFoundError):
            from .utils.paths import no_such

            raise ValueError(f"{path}: {no_such(path, 'file')}") from None
        text = " ".join(str(e).split())
        why = numpy_problem(path, e) or (f"{type(e).__name__}: {text}" if text else type(e).__name__)
        raise ValueError(f"{path}: not a readable embeddings file ({why})") from None


def _require_memory(
    net: ESM2, lengths: list[int], toks_per_batch: int, contacts: bool, device: str | torch.device = "cpu"
) -> None:
    """Refuse, before any work, an embedding estimated to need more memory than is available
    (:mod:`resm.utils.memory`; ``--ignore-memory-check`` turns it off). On a GPU the weights and
    activations live in the GPU's memory: the estimate is held against that device's free
    memory, not the machine's."""
    from .utils.memory import embed_estimate, require_memory

    n_params = sum(p.numel() for p in net.parameters())
    need = embed_estimate(
        n_params, net.embed_dim, net.num_layers, net.attention_heads, lengths, toks_per_batch, contacts
    )
    device = torch.device(device)
    on_gpu = device.type == "cuda"
    require_memory(
        need,
        f"embedding {len(lengths)} record{'' if len(lengths) == 1 else 's'} "
        f"(the longest {max(lengths)} nt{', with contacts' if contacts else ''}){f' on {device}' if on_gpu else ''}",
        available=torch.cuda.mem_get_info(device)[0] if on_gpu else None,
    )


def _read_shard(run, s: int, path: Path) -> dict[str, np.ndarray]:
    """The arrays of one shard of a sharded run: its index must list the input's records of that
    shard, each with arrays; a damaged shard is refused naming it (never unpickled)."""
    from .utils.shards import ShardError

    try:
        arrays, index = read_embeddings(path)
        if not isinstance(index, dict) or not isinstance(index.get("ids"), list):
            raise ValueError(f"{path}: no index of ids")
    except ValueError as e:
        why = str(e).split(": ", 1)[-1]
        raise ShardError(f"{path}: damaged shard ({why}); remove it and re-run the command to recompute it") from None
    run.check_ids(s, index["ids"])
    have = {_record_of(k) for k in arrays}
    lost = [i for i in index["ids"] if i not in have]
    if lost or have - set(index["ids"]):
        what = f"no arrays for {', '.join(map(repr, lost[:3]))}" if lost else "arrays of records it does not list"
        raise ShardError(f"{path}: {what}; remove it and re-run the command to recompute it")
    return arrays


def embedding_index(
    records: list[Mapped], layers: list[int], include: Sequence[str], scheme: Scheme, model: str
) -> dict:
    """The index of an embeddings file (see the module's docstring); ``include`` named twice
    (``--include mean mean``) is listed once, as a layer named twice is."""
    per_layer = any(w in include for w in ("mean", "per_tok", "bos"))
    return {
        "ids": [r.id for r in records],
        "lengths": [int(len(r.ids)) for r in records],
        "layers": list(layers) if per_layer else [],
        "include": list(dict.fromkeys(include)),
        "scheme": scheme.name,
        "scheme_hash": scheme.table_hash,
        "model": str(model),
    }


@dataclass(frozen=True, kw_only=True)
class EmbedOptions:
    """The options of ``resm embed`` (:func:`embed_file`), keyword-only: the backbone's
    ``scheme`` (None: its own), ``regression`` (contact-regression file), ``trust``; what to
    keep (``layers``, ``include``); the run (``toks_per_batch``, ``max_length``, ``device``,
    ``dtype`` (autocast; None: fp32), ``shard_size``, ``input_format``, ``progress``)."""

    scheme: str | None = None
    regression: str | os.PathLike | None = None
    trust: bool = False
    layers: Sequence[int] = (-1,)
    include: Sequence[str] = ("mean",)
    toks_per_batch: int = 4096
    max_length: int | None = 10000
    device: str = "cpu"
    dtype: torch.dtype | None = None
    shard_size: int = DEFAULT_SHARD_SIZE
    input_format: str | None = None
    progress: bool = True


def embed_file(model: str | os.PathLike, inp, out: str | os.PathLike, opts: EmbedOptions = EmbedOptions()) -> dict:
    """``resm embed``: embed every record of ``inp`` (FASTA, bare sequences or structure files;
    ``-``: standard input) with the backbone ``model`` into the file ``out``, as ``opts``
    (:class:`EmbedOptions`) says.

    Every record is checked before any work and ``out`` is written atomically. Records are
    embedded in shards of ``shard_size`` (token-budget batches form inside a shard); under
    ``torchrun`` each process takes its shards (:class:`resm.utils.shards.ShardRun`), finished
    shards are kept in ``<out>.shards/`` and reused by a re-run, and rank 0 merges them into
    ``out``. Returns ``{"n", "nt", "rank", "world", "shards", "skipped", "seconds"}``."""
    import time

    from .structure.inputs import read_sequences, source_name
    from .structure.model import load_with_scheme
    from .utils.io import suspended
    from .utils.shards import ShardRun, fingerprint_records

    o = opts
    scheme, include, device, dtype, toks_per_batch = o.scheme, o.include, o.device, o.dtype, o.toks_per_batch
    out = Path(out)
    if out.suffix not in (".safetensors", ".npz"):
        raise UsageError(f"{out}: output must end in .safetensors or .npz")
    bad = set(include) - set(INCLUDE_CHOICES)
    if bad:
        raise UsageError(f"unknown --include {sorted(bad)}; choose from {INCLUDE_CHOICES}")
    loaded, the_scheme = load_with_scheme(model, scheme, o.regression, o.trust)
    if "contacts" in include:
        require_contact_regression(
            loaded.meta, str(model), other=", give it with --regression FILE, or leave contacts out"
        )
    seqs = read_sequences(inp, o.input_format)
    records = map_records(seqs, the_scheme, o.max_length, source_name(inp))  # every record checked first
    the_layers = resolve_layers(o.layers, loaded.model.num_layers, "--repr-layers")
    check_array_names(out, (k for r in records for k in array_keys(r.id, the_layers, include)))
    _require_memory(loaded.model, [len(r.ids) for r in records], toks_per_batch, "contacts" in include, device)
    index = embedding_index(records, the_layers, include, the_scheme, str(model))
    job = {
        "command": "embed",
        "input": fingerprint_records(seqs),
        "model": ShardRun.hash_file(model),
        "scheme": the_scheme.name,
        "layers": the_layers,
        "include": sorted(include),
        "toks_per_batch": toks_per_batch,
        "dtype": str(dtype),
    }
    run = ShardRun(out, len(records), o.shard_size, job, out.suffix, ids=[r.id for r in records])
    run.prepare()
    net = loaded.model.to(device)
    t0 = time.perf_counter()
    result = {
        "n": len(records),
        "nt": sum(index["lengths"]),
        "rank": run.rank,
        "world": run.world,
        "shards": run.n_shards,
        "skipped": 0,
    }

    def embed(recs: list[Mapped], desc: str = "embed") -> dict[str, np.ndarray]:
        return embed_records(net, recs, the_layers, include, toks_per_batch, device, dtype, o.progress, desc)

    if not run.sharded:
        write_embeddings(out, embed(records), index)
    else:

        def shard(s: int, block: range) -> None:
            recs = [records[k] for k in block]
            arrays = embed(recs, f"embed shard {s + 1}/{run.n_shards}")  # as resm fold's bars
            with suspended():  # on disk at once, even inside the command's transaction: other ranks read it
                write_embeddings(
                    run.path(s), arrays, embedding_index(recs, the_layers, include, the_scheme, str(model))
                )
            run.seal(s)

        def combine(paths: list[Path]) -> None:
            merged: dict[str, np.ndarray] = {}
            for s, path in enumerate(paths):
                merged.update(_read_shard(run, s, path))
            write_embeddings(out, merged, index)

        result["skipped"] = run.process(shard)
        run.merge(combine)
    return {**result, "seconds": time.perf_counter() - t0}
