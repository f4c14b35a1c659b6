"""``resm embed``: per-sequence and per-nucleotide representations, like fair-esm's esm-extract.

All records are read, mapped and checked before the model runs, and the output file is written
atomically at the end, so a bad record never leaves a half-written file behind.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from .alphabet import pad_batch
from .data.fasta import read_fasta, token_batches
from .mapping import MappingError, Scheme
from .model.esm2 import ESM2
from .utils.io import atomic_path

INCLUDE_CHOICES = ("mean", "per_tok", "bos", "contacts")


@dataclass
class Mapped:
    id: str
    ids: np.ndarray  # token ids, one per nucleotide


def map_fasta(path, scheme: Scheme, max_length: Optional[int] = None) -> List[Mapped]:
    """Read and map every record; errors name the record (duplicate ids are errors too)."""
    out = []
    for rec in read_fasta(path, unique=True):
        ids = scheme.encode(rec.seq, rec.id)
        if max_length is not None and len(ids) > max_length:
            raise MappingError(
                f"record {rec.id!r}: {len(ids)} nt is longer than --max-length {max_length}"
            )
        out.append(Mapped(rec.id, ids))
    if not out:
        raise MappingError(f"{os.path.basename(str(path))}: no records")
    return out


def resolve_layers(layers: Sequence[int], num_layers: int) -> List[int]:
    out = []
    for layer in layers:
        if not -(num_layers + 1) <= layer <= num_layers:
            raise ValueError(f"layer {layer} does not exist (model has {num_layers} layers)")
        out.append((layer + num_layers + 1) % (num_layers + 1))
    return sorted(set(out))


@torch.inference_mode()
def embed_records(
    model: ESM2,
    records: List[Mapped],
    layers: Sequence[int] = (-1,),
    include: Sequence[str] = ("mean",),
    toks_per_batch: int = 4096,
    device: str | torch.device = "cpu",
    dtype: Optional[torch.dtype] = None,
    progress: bool = True,
) -> Dict[str, np.ndarray]:
    """Run the model over token-budget batches; returns ``{"<id>/<what>/<layer>": array}``."""
    bad = set(include) - set(INCLUDE_CHOICES)
    if bad:
        raise ValueError(f"unknown --include {sorted(bad)}; choose from {INCLUDE_CHOICES}")
    layers = resolve_layers(layers, model.num_layers)
    want_contacts = "contacts" in include
    out: Dict[str, np.ndarray] = {}
    batches = token_batches([len(r.ids) for r in records], toks_per_batch)
    autocast = torch.autocast(device_type=torch.device(device).type, dtype=dtype, enabled=dtype is not None)
    for batch in tqdm(batches, desc="embed", unit="batch", disable=not progress):
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
    return out


def write_embeddings(path: str | os.PathLike, arrays: Dict[str, np.ndarray], index: dict) -> None:
    """One file holding every array plus a JSON index (ids in input order, lengths, layers).

    ``.safetensors``: the index is in the file's metadata under ``resm_index``;
    ``.npz``: the index is the array ``__index__`` (a JSON string)."""
    path = Path(path)
    text = json.dumps(index)
    if path.suffix == ".safetensors":
        from safetensors.numpy import save_file

        with atomic_path(path, ".safetensors") as tmp:
            save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(tmp), metadata={"resm_index": text})
    elif path.suffix == ".npz":
        with atomic_path(path, ".npz") as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, __index__=np.array(text), **arrays)
    else:
        raise ValueError(f"{path}: output must end in .safetensors or .npz")


def read_embeddings(path: str | os.PathLike):
    """Inverse of ``write_embeddings``: returns (arrays, index)."""
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(path), framework="np") as fh:
            index = json.loads(fh.metadata()["resm_index"])
            return {k: fh.get_tensor(k) for k in fh.keys()}, index
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files if k != "__index__"}
        return arrays, json.loads(str(z["__index__"]))
