"""The named structure sets of ``resm evaluate structure`` and the fold tables.

``DATASETS`` names files under the data folder (``$RESM_DATA``, :func:`resm.config.default_data_dir`):
bpRNA's TS0 and bpRNA-new (dbn), ArchiveII (CSV; ``archiveii-long`` is its ct archive, RNAs of
at least 1,000 nt, read by :func:`iter_ct_tarball`) and ArchiveII's family-wise folds (``split_famfold.csv``, read by
:func:`read_split`; also the ``data.split`` of the structure task), and SPOT-RNA's PDB-derived
``tr1`` and ``vl1`` (pair tables, :mod:`resm.structure.pairsets`: non-canonical pairs and base
multiplets included). :func:`reference_views` gives the references a set is scored against:
the PDB sets twice, over their canonical pairs (the pairs resm and the classical folders can
predict) and over all their pairs, and, when asked, a third time over their non-canonical pairs
alone (the pairs ``--non-canonical`` adds; a prediction is scored on the same class of its own
pairs, :func:`restrict`).
"""

from __future__ import annotations

import os
import tarfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..fasta import check_record_ids
from ..nucleotides import MappingError, normalise
from .io import Structure, StructureError, file_stem, iter_ct, read_archiveii_csv, read_structures
from .pairsets import PairRecord, read_pair_table

__all__ = [
    "DATASETS",
    "PAIR_TABLES",
    "FAMFOLD_SPLIT",
    "read_split",
    "dataset_files",
    "load_dataset",
    "reference_views",
    "view_class",
    "restrict",
    "iter_ct_tarball",
]

DATASETS = {
    "ts0": "ss/bprna/TS0.dbn",
    "bprna-new": "ss/bprna/bpRNAnew.dbn",
    "archiveii": "ss/archiveII/ArchiveII.csv",
    "archiveii-long": "ss/archiveII/archiveII_ct.tar.gz",
    "archiveii-famfold": "ss/archiveII/ArchiveII.csv",
    "tr1": "ss/pdb/TR1.tsv",
    "vl1": "ss/pdb/VL1.tsv",
}
PAIR_TABLES = ("tr1", "vl1")  # sets whose records are PairRecord (a base may sit in several pairs)
FAMFOLD_SPLIT = "ss/archiveII/split_famfold.csv"


def read_split(path: str | os.PathLike) -> dict[str, dict[str, set]]:
    """``{fold_name: {partition: ids}}`` from a fold table with columns ``fold_name``,
    ``partition`` (train / valid / test) and ``id`` (ArchiveII's split_famfold.csv), opened as
    every input (:func:`resm.fasta.open_text`: a device such as ``/dev/zero`` was read until
    memory ran out); a cell with bytes that are not UTF-8 text or a control character is a
    ValueError naming the line, a file that cannot be read one naming the file."""
    import csv

    from ..fasta import csv_problem, id_problem, open_text
    from ..utils.paths import no_such

    out: dict[str, dict[str, set]] = {}
    n = 0  # the line of the last row read
    try:
        with open_text(path, newline="") as fh:
            try:
                rows = csv.DictReader(fh)
                missing = {"fold_name", "partition", "id"} - set(rows.fieldnames or [])
                if missing:
                    raise ValueError(f"{path}: fold table lacks column(s) {sorted(missing)}")
                for n, r in enumerate(rows, 2):
                    if not r["fold_name"] or r["partition"] not in ("train", "valid", "test") or not r["id"]:
                        raise ValueError(f"{path} line {n}: expected fold_name, partition in train/valid/test, id")
                    for key in ("fold_name", "id"):
                        if (why := id_problem(r[key])) is not None:
                            raise ValueError(f"{path} line {n}: {key} {r[key]!r} {why}")
                    parts = out.setdefault(r["fold_name"], {"train": set(), "valid": set(), "test": set()})
                    parts[r["partition"]].add(r["id"])
            except csv.Error as e:
                raise ValueError(f"{path} line {n + 1}: {csv_problem(e)}") from None
    except FileNotFoundError:
        raise ValueError(f"{path}: {no_such(path, 'fold table')}") from None
    except (OSError, EOFError, zlib.error) as e:  # a folder, a device, a damaged gzip
        raise ValueError(f"{path}: cannot read ({getattr(e, 'strerror', None) or e})") from None
    return out


def dataset_files(names, data_dir: str | os.PathLike | None = None) -> dict[str, Path]:
    """``{"data set NAME": path}``: the files :func:`load_dataset` reads for the sets ``names``
    under ``data_dir`` (None: :func:`resm.config.default_data_dir`), the fold table of
    ``archiveii-famfold`` included (the inputs no output of ``resm evaluate`` may replace)."""
    from ..config import default_data_dir

    root = Path(data_dir or default_data_dir())
    out = {f"data set {n}": root / DATASETS[n] for n in names if n in DATASETS}
    if "archiveii-famfold" in names:
        out["the archiveii-famfold fold table"] = root / FAMFOLD_SPLIT
    return out


def load_dataset(
    name: str, data_dir: str | os.PathLike, limit: int | None = None, seed: int = 0
) -> list[Structure | PairRecord]:
    """The structures of a named set; ``limit`` takes a seeded random subset (reported). A set
    without records, or with a letter that is no nucleotide, is a one-line error naming the file."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    path = Path(data_dir) / DATASETS[name]
    if not path.exists():
        raise FileNotFoundError(f"{path}: data set not found (set RESM_DATA or --data-dir)")
    if name in ("archiveii", "archiveii-famfold"):
        recs = list(read_archiveii_csv(path))
    elif name == "archiveii-long":
        recs = [r for r in iter_ct_tarball(path) if len(r.seq) >= 1000]
    elif name in PAIR_TABLES:
        recs = read_pair_table(path)
    else:
        recs = list(read_structures(path))
    if not recs:
        raise StructureError(f"{path}: no records" + (" of at least 1,000 nt" if name == "archiveii-long" else ""))
    for r in recs:  # a letter that is no nucleotide, named with the file (the model would name the record alone)
        try:
            normalise(r.seq, r.name)
        except MappingError as e:
            raise StructureError(f"{path}: {e}") from None
    try:  # a repeated id: the predictions and scores are keyed by id
        check_record_ids(r.name for r in recs)
    except ValueError as e:
        raise StructureError(f"{path}: {e}") from None
    if limit is not None and limit < len(recs):
        idx = sorted(np.random.default_rng(seed).choice(len(recs), limit, replace=False))
        recs = [recs[i] for i in idx]
    return recs


def reference_views(name: str, records: list[Structure | PairRecord], non_canonical: bool = False) -> dict[str, list]:
    """``{label: references}`` a set is scored against: ``{name: pairs}``, or for a pair table
    ``{"name, canonical pairs": ..., "name, all pairs": ...}`` and, with ``non_canonical``,
    ``"name, non-canonical pairs"`` too (:func:`view_class` names each view's pairs)."""
    if name in PAIR_TABLES or any(isinstance(r, PairRecord) for r in records):
        out = {
            f"{name}, canonical pairs": [r.canonical().pairs for r in records],
            f"{name}, all pairs": [r.pairs for r in records],
        }
        if non_canonical:
            out[f"{name}, non-canonical pairs"] = [r.non_canonical().pairs for r in records]
        return out
    return {name: [r.pairs for r in records]}


def view_class(label: str) -> str | None:
    """The pairs a view of :func:`reference_views` holds: ``"canonical"``, ``"non-canonical"``
    or None (all); a prediction is scored on the same class of its pairs (:func:`restrict`)."""
    for c in ("non-canonical", "canonical"):
        if label.endswith(f", {c} pairs"):
            return c
    return None


def restrict(pred, rec: Structure | PairRecord, which: str | None):
    """The pairs of ``pred`` (a partner array or pair set of ``rec``'s sequence) of the class
    ``which`` (:func:`view_class`; letters read from ``rec``'s sequence), or ``pred`` itself
    for None."""
    if which is None:
        return pred
    from .pairsets import PairSet

    if not isinstance(pred, PairSet):
        a = np.asarray(pred, dtype=np.int64)
        i = np.flatnonzero(a > np.arange(len(a)))
        pred = PairSet(np.stack([i, a[i]], 1), len(a))
    r = PairRecord(rec.name, rec.seq, pred)
    return (r.canonical() if which == "canonical" else r.non_canonical()).pairs


def iter_ct_tarball(path: str | os.PathLike, limit: int | None = None) -> Iterator[Structure]:
    """Stream the ``.ct`` members of a tar(.gz) archive, named by member stem (members holding
    several ct blocks give ``stem``, ``stem_2``, ...); ``limit`` stops after that many members."""
    n = 0
    try:
        with tarfile.open(path, mode="r|*") as tar:
            for member in tar:
                if not member.isfile() or not member.name.lower().endswith(".ct"):
                    continue
                if limit is not None and n >= limit:
                    return
                n += 1
                fh = tar.extractfile(member)
                assert fh is not None
                stem = file_stem(Path(member.name))
                text = fh.read().decode("utf-8", errors="replace").splitlines()
                for k, rec in enumerate(iter_ct(text, source=f"{path}:{member.name}", name=stem)):
                    rec.name = stem if k == 0 else f"{stem}_{k + 1}"
                    yield rec
    except (tarfile.TarError, EOFError, zlib.error, OSError) as e:  # not an archive, or one cut off
        raise StructureError(f"{path}: not a readable tar archive ({e})") from None
