"""``resm fold``: secondary structures from FASTA to structure files, arc diagrams or scores.

* :func:`fold_records` folds ``(id, sequence)`` records one at a time and *yields*
  ``(Structure, prob_map)``, so a caller that plots keeps one (L, L) map at a time and a caller
  that only writes structures drops it at once.
* :class:`Predictor` bundles what folding needs (model, scheme, threshold, decoding method and
  the function giving a pair-probability map): :func:`supervised_predictor` for a structure
  model (:mod:`resm.structure.model`; the shipped one is :func:`default_model_path`),
  :func:`zero_shot_predictor` for a backbone with a fitted probe (:mod:`resm.structure.probe`).
* :func:`fold_fasta` is the whole command: every input checked before any work, then the
  structures written (:mod:`resm.structure.writers`), drawn (:mod:`resm.structure.plot`) or
  scored against reference structures.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from ..mapping import MappingError, Scheme, get_scheme, normalise
from .decode import METHODS, decode
from .io import FoldError, Structure, read_structures
from .probe import ProbeFile, predict_pair_probs

__all__ = [
    "PairProbs",
    "Predictor",
    "fold_records",
    "zero_shot_predictor",
    "supervised_predictor",
    "default_model_path",
    "validate_fasta",
    "iter_fasta",
    "read_reference",
    "fold_fasta",
]

PairProbs = Callable[[str], np.ndarray]
DEFAULT_MODEL_NAME = "structure_default.pt"


def _name_seq(rec) -> Tuple[str, str]:
    """``(name, seq)`` of a tuple, a :class:`Structure` or a FASTA record."""
    if isinstance(rec, tuple):
        return str(rec[0]), str(rec[1])
    return str(getattr(rec, "id", None) or getattr(rec, "name")), str(rec.seq)


def _output_seq(seq: str, name: str) -> str:
    """The sequence written with a structure: upper-case ACGU with N for unknown bases (as
    decoding reads it); left as given when it is not a nucleotide sequence."""
    try:
        return normalise(seq, name)
    except MappingError:
        return seq


def fold_records(
    model,
    scheme: Scheme,
    records: Iterable,
    probe_threshold: float,
    method: str = "greedy",
    noncanonical: bool = False,
    progress: bool = True,
    pair_probs: Optional[PairProbs] = None,
) -> Iterator[Tuple[Structure, np.ndarray]]:
    """Fold ``records`` one at a time, yielding ``(Structure, prob_map)``.

    ``records``: ``(id, sequence)`` tuples, :class:`Structure` or FASTA records. Each map is
    ``pair_probs(seq)`` — by default :func:`resm.structure.probe.predict_pair_probs` with
    ``model`` and ``scheme`` — decoded by :func:`resm.structure.decode.decode` at
    ``probe_threshold``. Only the
    current map is alive unless the caller keeps it. The structure's sequence is normalised
    (upper case, U for T).
    """
    from tqdm.auto import tqdm

    if method not in METHODS:
        raise FoldError(f"unknown method {method!r}; expected one of {METHODS}")
    if pair_probs is None:
        def pair_probs(seq: str) -> np.ndarray:
            return predict_pair_probs(model, scheme, seq)

    total = len(records) if hasattr(records, "__len__") else None
    for rec in tqdm(records, desc="fold", unit="seq", total=total, disable=not progress):
        name, seq = _name_seq(rec)
        P = pair_probs(seq)
        pairs = decode(P, seq, probe_threshold, method, noncanonical)
        yield Structure(name, _output_seq(seq, name), pairs), P


@dataclass
class Predictor:
    """A ready-to-fold model: what :func:`fold_records` needs besides the records.

    ``pair_probs`` (seq -> (L, L) probabilities) is None for the zero-shot probe (the model's
    contact head); a structure model supplies its own."""

    model: object
    scheme: Scheme
    threshold: float
    method: str = "greedy"
    pair_probs: Optional[PairProbs] = None
    source: str = ""

    def fold(
        self,
        records: Iterable,
        threshold: Optional[float] = None,
        method: Optional[str] = None,
        noncanonical: bool = False,
        progress: bool = True,
    ) -> Iterator[Tuple[Structure, np.ndarray]]:
        """:func:`fold_records` with this predictor's threshold and method unless overridden."""
        return fold_records(
            self.model,
            self.scheme,
            records,
            self.threshold if threshold is None else threshold,
            method or self.method,
            noncanonical,
            progress,
            self.pair_probs,
        )


def zero_shot_predictor(model, scheme: Scheme, backbone: str | os.PathLike, probe_path, probe: Optional[ProbeFile] = None) -> Predictor:
    """Load the probe at ``probe_path`` into ``model`` after checking it belongs to this scheme
    and to the backbone at ``backbone``; threshold and method come from its sidecar."""
    probe = probe or ProbeFile.read(probe_path)
    probe.load_into(model, probe_path, scheme, backbone)
    return Predictor(model, scheme, float(probe.threshold), probe.method, None, f"zero-shot probe {probe_path}")


def supervised_predictor(path: str | os.PathLike, device: str = "cpu", tile: int = 512) -> Predictor:
    """A structure model written by ``resm finetune`` (backbone + 2D head + threshold), loaded
    once; its file names the mapping scheme (name and table hash, checked here)."""
    from .model import load_structure_model, predict_pairs

    model, meta = load_structure_model(path)
    model = model.to(device).eval()
    scheme = get_scheme(meta["scheme"])
    scheme.check(meta, where=str(path))

    def pair_probs(seq: str) -> np.ndarray:
        return predict_pairs(model, scheme, seq, tile=tile)

    return Predictor(model, scheme, float(meta["threshold"]), "greedy", pair_probs, f"structure model {path}")


def default_model_path() -> Path:
    """The structure model that ships inside the package (used when no --model is given)."""
    return Path(__file__).resolve().parents[1] / "models" / DEFAULT_MODEL_NAME


# ----------------------------------------------------------------------------- inputs
def validate_fasta(path: str | os.PathLike, scheme: Scheme, max_length: Optional[int] = None) -> List[Tuple[str, int]]:
    """Check every record of a FASTA file before any work (:func:`resm.embed.map_fasta`: ids
    unique, sequences mappable, none longer than ``max_length``); ``[(id, length)]``."""
    from ..embed import map_fasta

    return [(m.id, int(len(m.ids))) for m in map_fasta(path, scheme, max_length)]


def iter_fasta(path: str | os.PathLike) -> Iterator[Tuple[str, str]]:
    """Stream ``(id, sequence)`` of a FASTA file (validate it first with :func:`validate_fasta`)."""
    from ..data.fasta import read_fasta

    for rec in read_fasta(path, unique=True):
        yield rec.id, rec.seq


def read_reference(path: str | os.PathLike, wanted: Sequence[Tuple[str, int]]) -> Dict[str, np.ndarray]:
    """Reference partner arrays for the ``(id, length)`` records in ``wanted``, read from any
    structure file; every id must be there with the same length (extra records are ignored)."""
    want = dict(wanted)
    found: Dict[str, np.ndarray] = {}
    for rec in read_structures(path):
        if rec.name in want and rec.name not in found:
            if len(rec) != want[rec.name]:
                raise FoldError(
                    f"{Path(path).name}: record {rec.name!r} has length {len(rec)}, the FASTA's has {want[rec.name]}"
                )
            found[rec.name] = rec.pairs
    missing = [i for i in want if i not in found]
    if missing:
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        raise FoldError(
            f"{Path(path).name}: no reference structure for {', '.join(repr(m) for m in missing[:3])}{more}"
        )
    return found


# ----------------------------------------------------------------------------- the command
def fold_fasta(
    fasta: str | os.PathLike,
    model: Optional[str | os.PathLike] = None,
    zero_shot: Optional[str | os.PathLike] = None,
    fmt: str = "dbn",
    out: Optional[Path] = None,
    plot: Optional[Path] = None,
    reference: Optional[Path] = None,
    threshold: Optional[float] = None,
    method: Optional[str] = None,
    noncanonical: bool = False,
    scheme: Optional[str] = None,
    max_length: Optional[int] = 10000,
    trust: bool = False,
    device: str = "cpu",
    progress: bool = True,
) -> Dict[str, object]:
    """``resm fold``: fold every record of ``fasta`` and write, draw or score the structures.

    The predictor is the structure model at ``model`` (default: the shipped one), or, with
    ``zero_shot`` (a probe from ``resm probe``), the backbone at ``model`` with that probe. Every
    input is checked before the backbone loads (the FASTA against the scheme, the output
    target, the reference structures) and nothing is written until every record is folded.
    With ``reference`` the structures are only scored. Returns ``{"n", "mode"}`` (how the
    structures were written: :func:`resm.structure.writers.check_output`) or, with
    ``reference``, ``{"n", "metrics"}``.
    """
    from .writers import StructureSink, check_output, record_file_names, safe_filename, staged_dir

    if reference is not None and (out is not None or plot is not None):
        raise FoldError("--reference only evaluates (prints F1); drop -o/--plot")
    predictor: Optional[Predictor] = None
    if zero_shot is not None:
        if model is None:
            raise FoldError("--zero-shot needs --model, the backbone the probe was fitted on")
        probe = ProbeFile.read(zero_shot)
        the_scheme = get_scheme(scheme or probe.scheme)
    else:
        model_path = model or default_model_path()
        if not Path(model_path).exists():
            raise FoldError(f"{model_path}: no such structure model (train one with `resm finetune`)")
        predictor = supervised_predictor(model_path, device)
        the_scheme = predictor.scheme

    records = validate_fasta(fasta, the_scheme, max_length)
    ids = [i for i, _ in records]
    wanted = read_reference(reference, records) if reference is not None else None
    mode = None if wanted is not None else check_output(fmt, out, ids)
    if plot is not None:
        from .plot import require_matplotlib

        require_matplotlib()
        record_file_names(ids, "png")
    if predictor is None:
        from ..model.load import load_with_scheme

        loaded, the_scheme = load_with_scheme(model, the_scheme.name, trust=trust)
        predictor = zero_shot_predictor(loaded.model.to(device), the_scheme, loaded.meta["source"], zero_shot, probe)
    folded = predictor.fold(iter_fasta(fasta), threshold, method, noncanonical, progress)

    if wanted is not None:
        from .metrics import evaluate

        preds, trues = [], []
        for rec, _ in folded:
            preds.append(rec.pairs)
            trues.append(wanted[rec.name])
        return {"n": len(preds), "metrics": evaluate(preds, trues)}
    plots = staged_dir(plot) if plot is not None else contextlib.nullcontext()
    with plots as plot_dir, StructureSink(fmt, out, mode) as sink:
        for rec, P in folded:
            sink.add(rec)
            if plot_dir is not None:
                from .plot import plot_structure

                plot_structure(plot_dir / f"{safe_filename(rec.name)}.png", rec.seq, rec.pairs, P, title=rec.name)
    return {"n": sink.n, "mode": mode}
