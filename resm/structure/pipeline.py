"""``resm fold``: secondary structures from FASTA to structure files, arc diagrams or scores.

This module reads, orchestrates and writes; the folding itself (model and decoding) is a
:class:`resm.structure.predictor.Predictor`, which yields ``(Structure, probabilities)`` per
record, so a caller that plots keeps one map at a time and one that only writes structures
drops it at once.

* :class:`FoldOptions` holds every option of the command (keyword-only; the predictor's own
  are those of :class:`resm.structure.predictor_loading.PredictorOptions`);
* :func:`fold_fasta` is the whole command: the input read once (FASTA, ``-``/a pipe, bare
  sequences, or the sequences of structure files: :mod:`resm.structure.inputs`), every input
  checked before any work, then the structures written (:mod:`resm.structure.writers`: dbn,
  multi-record ct, bpseq; sparse base-pair probabilities with ``bpp``), drawn
  (:mod:`resm.structure.plot`) and, with ``reference``, scored record by record next to RNAfold
  (:mod:`resm.structure.report`). Under ``torchrun`` every process folds its shards of the
  records and rank 0 merges them into the output a one-process run writes
  (:mod:`resm.utils.shards`).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import first_given, flag
from ..fasta import record_id
from ..mapping import MappingError, Scheme, get_scheme
from ..nucleotides import normalise
from ..utils.jsontext import load_json
from ..utils.memory import require_fold_memory
from ..utils.shards import DEFAULT_SHARD_SIZE, ShardRun, fingerprint_records
from ..utils.stdout import require_stdout
from .io import (
    FoldError,
    FoldUsageError,
    Structure,
    format_structures,
    infer_format,
    read_pair_list,
    read_structures,
)
from .pairsets import PairRecord, PairSet, pair_table_named, read_pair_table
from .partners import pairs_from_list
from .predictor import Namer, PairPredictor, Predictor, refuse_dense_decoding
from .predictor_loading import BundleOpener, PredictorOptions, fold_flag, load_predictor
from .probe import ProbeFile

__all__ = [
    "FoldOptions",
    "annotate",
    "check_non_canonical",
    "check_records",
    "read_reference",
    "fold_fasta",
]


# ----------------------------------------------------------------------------- inputs
def check_records(
    records: Sequence[tuple[str, str]], scheme: Scheme, max_length: int | None = None, source: str | None = None
) -> list[int]:
    """Check every record before any work (sequences mappable under ``scheme``, none longer
    than ``max_length``); their lengths. Errors name ``source`` (the input file) too."""
    lengths = []
    for name, seq in records:
        try:
            n = len(scheme.encode(seq, name))
            if max_length is not None and n > max_length:
                raise MappingError(f"record {name!r}: {n} nt is longer than --max-length {max_length}")
        except MappingError as e:
            if source is None:
                raise
            raise MappingError(f"{source}: {e}") from None
        lengths.append(n)
    return lengths


def read_reference(
    path: str | os.PathLike,
    wanted: Sequence[tuple[str, int]],
    sequences: dict[str, str] | None = None,
    fmt: str | None = None,
) -> dict[str, np.ndarray | PairSet]:
    """Reference structures for the ``(id, length)`` records in ``wanted``, read from any
    structure file (``fmt``: dbn, ct, bpseq, pairs, tsv: a pair table; None: from the
    extension); every id must be there with the same length (extra records are ignored). A
    reference's id is cut at its first whitespace, as the input's are (``>id description``).
    Where ``sequences`` gives the input's sequence and the reference holds one too, the two must
    agree once normalised (case, T/U; an unknown letter, N, matches any base). Each is a partner
    array, but the base triples of a pair list or a pair table (a base in several pairs, as in
    3D-derived structures) are kept: such a reference is a
    :class:`resm.structure.pairsets.PairSet` of every pair, scored as it stands."""
    want = dict(wanted)
    found: dict[str, np.ndarray | PairSet] = {}
    try:
        fmt = fmt or ("tsv" if pair_table_named(path) else infer_format(Path(path)))
    except ValueError as e:
        raise FoldError(f"{e}; give the format with --reference-format") from None
    for rec in _reference_records(path, fmt):
        rec.name = record_id(rec.name)
        if rec.name in found:
            raise FoldError(f"{path}: duplicate id {rec.name!r}: which reference structure to score against is unclear")
        if rec.name in want:
            if len(rec.pairs) != want[rec.name]:  # a PairRecord's len is its sequence's, maybe not given
                raise FoldError(
                    f"{path}: record {rec.name!r} has length {len(rec.pairs)}, the FASTA's has {want[rec.name]}"
                )
            if sequences is not None and rec.seq and rec.name in sequences:
                _same_sequence(path, rec.name, rec.seq, sequences[rec.name])
            found[rec.name] = rec.pairs
    missing = [i for i in want if i not in found]
    if missing:
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        raise FoldError(f"{path}: no reference structure for {', '.join(repr(m) for m in missing[:3])}{more}")
    return found


def _reference_records(path, fmt: str) -> Iterator[Structure | PairRecord]:
    """The records of a reference file: Structures, and those of a pair list or a pair table
    (``tsv``) whose bases sit in several pairs as the PairRecord of every pair."""
    if fmt not in ("pairs", "tsv"):
        yield from read_structures(path, fmt)
        return
    if fmt == "pairs":
        got = read_pair_list(path)
        recs = [PairRecord(got.name, got.seq, PairSet(np.asarray(got.ij, dtype=np.int64).reshape(-1, 2), got.length))]
    else:
        recs = read_pair_table(path)
    for r in recs:
        multiplet = r.pairs.multiplet_bases()
        yield r if multiplet else Structure(r.name, r.seq, pairs_from_list(r.pairs.ij.tolist(), r.pairs.length))


def _same_sequence(path, name: str, ref_seq: str, seq: str) -> None:
    """Raise a one-line FoldError where a reference's sequence is not the input's."""
    try:
        a, b = normalise(ref_seq, name), normalise(seq, name)
    except MappingError as e:
        raise FoldError(f"{path}: {e}") from None
    p = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y and "N" not in (x, y)), None)
    if p is not None:
        raise FoldError(
            f"{path}: record {name!r}: the reference's sequence differs from the input's "
            f"at position {p + 1} ({a[p]} against {b[p]})"
        )


# ----------------------------------------------------------------------------- the command
@dataclass
class _Plan:
    """What one record turns into (decided before any work)."""

    fmt: str
    structures: bool  # formatted into the merged structure output (stdout or -o)
    split_dir: Path | None
    plot: Path | None
    bpp_min: float | None  # None: no --bpp
    wanted: dict[str, np.ndarray] | None  # reference structures
    plot_style: tuple[str, int]  # --plot-format, --dpi: FoldOptions.plot_style()
    notes: tuple[bool, bool, str | None]  # score, mfe, compare


def annotate(
    rec: Structure, probs, *, score: bool = True, mfe: bool = False, compare: str | None = None
) -> tuple[Structure, np.ndarray | None]:
    """``rec`` with its notes (a new :class:`Structure`; ``rec`` is left as it is) and the
    compared folder's partner array (None without ``compare``): with ``score``, ``eF1``, the
    structure's expected F1 under the pair probabilities ``probs``
    (:func:`resm.structure.metrics.expected_f1`); with ``mfe``, RNAfold's minimum free energy
    of the sequence (``MFE``, kcal/mol); with ``compare`` (a name of
    :data:`resm.structure.folders.FOLDERS`), that folder's structure as an alternative labelled
    with the folder's label (RNAfold's with its ``MFE``)."""
    from .folders import FOLDERS, on_record, rnafold
    from .metrics import expected_f1

    scores = dict(rec.scores)
    if score and probs is not None:
        scores["eF1"] = expected_f1(rec.pairs, probs)
    other = energy = None
    if mfe or compare == "rnafold":
        with on_record("RNAfold", rec.name, rec.seq):
            other, energy = rnafold(rec.seq)
    if mfe:
        scores["MFE"] = energy
    alternatives = list(rec.alternatives)
    if compare is not None:
        folder = FOLDERS[compare]
        if compare != "rnafold":
            with on_record(folder.label, rec.name, rec.seq):
                other = folder.fold(rec.seq)
        alternatives.append(Structure(folder.label, rec.seq, other, {"MFE": energy} if compare == "rnafold" else {}))
    return Structure(rec.name, rec.seq, rec.pairs, scores, alternatives), (other if compare is not None else None)


def _format(rec, fmt: str) -> str:
    """One folded record's text: a :class:`Structure` in ``fmt``, a ``PairRecord`` (with
    non-canonical pairs added) as a pair list (:func:`check_non_canonical` allowed no other)."""
    from .pairsets import PairRecord, format_pair_list

    return format_pair_list(rec) if isinstance(rec, PairRecord) else format_structures([rec], fmt)


def check_non_canonical(predictor: Predictor | None, o: FoldOptions) -> None:
    """``--non-canonical`` with a pair-head model: its scorer must be in the model file and
    usable, and the structures are written only as a pair list (a base may sit in several
    pairs, which dbn, ct and bpseq cannot hold; ``--reference`` scores every pair); drawings and the
    ``--mfe`` / ``--compare`` notes read one partner per base and are refused (the ``eF1``
    note is left out: the added pairs have no probability in the model's map). A one-line
    FoldError, before any work. (With a 2-D head or a probe the switch keeps the greedy
    decoding's non-canonical pairs, one partner per base, which every format holds.)"""
    if not isinstance(predictor, PairPredictor):
        return
    predictor.non_canonical_scorer()
    # the model file decides (exit code 1, not 2): a 2-D head's or a probe's pairs fit every format
    model = predictor.source or "this structure model"
    if o.fmt != "pairs":
        raise FoldError(
            f"--format {o.fmt} cannot hold the pairs --non-canonical adds with {model} (a pair-head model: a base "
            "may sit in two or three pairs; dbn, ct and bpseq give each base one partner): give --format pairs"
        )
    given = {"--plot": o.plot, "--compare": o.compare, "--mfe": o.mfe or None}  # --reference scores pair sets
    clash = next((k for k, v in given.items() if v is not None), None)
    if clash is not None:
        raise FoldError(
            f"{clash} reads one partner per base and --non-canonical gives some bases several with {model} "
            "(a pair-head model): drop one of them (resm evaluate structure --non-canonical scores such pairs)"
        )


def _fold_block(
    predictor: Predictor, records: Sequence[tuple[str, str]], plan: _Plan, emit: Callable[[dict], None], fold_kw: dict
) -> None:
    """Fold ``records``; per record, the texts of the merged outputs go to ``emit`` and the
    per-record files (``--split-dir``, plots) into folders staged until the block is done."""
    from .writers import format_bpp, safe_filename, staged_dir

    with contextlib.ExitStack() as stack:
        split = stack.enter_context(staged_dir(plan.split_dir)) if plan.split_dir is not None else None
        plots = stack.enter_context(staged_dir(plan.plot)) if plan.plot is not None else None
        score, mfe, compare = plan.notes
        for rec, P in predictor.fold(records, **fold_kw):
            if isinstance(rec, Structure):  # not a PairRecord (--non-canonical): no notes
                rec, other = annotate(rec, P, score=score, mfe=mfe, compare=compare)
            else:
                other = None
            item: dict[str, object] = {"name": rec.name}
            if plan.structures:
                item["structure"] = _format(rec, plan.fmt)
            if split is not None:
                from ..utils.io import atomic_write_text

                atomic_write_text(split / f"{safe_filename(rec.name)}.{plan.fmt}", _format(rec, plan.fmt))
            if plan.bpp_min is not None:
                item["bpp"] = format_bpp(rec.name, P, plan.bpp_min)
            ref = plan.wanted[rec.name] if plan.wanted is not None else None
            if ref is not None:
                from .report import score_record

                mfe_pairs = other if compare == "rnafold" else None
                item["report"] = score_record(rec.name, rec.seq, rec.pairs, ref, rnafold_pairs=mfe_pairs)
            if plots is not None:  # <id>.<fmt> (arcs and map) and <id>_ss.<fmt> (ViennaRNA's 2-D layout)
                from .plot import plot_record

                fmt, dpi = plan.plot_style
                plot_record(
                    plots,
                    safe_filename(rec.name),
                    rec.seq,
                    rec.pairs,
                    P,
                    title=rec.name,
                    reference=ref,
                    fmt=fmt,
                    dpi=dpi,
                    compare=(rec.alternatives[-1].name, other) if other is not None else None,
                )
            emit(item)


def _read_shard(path: Path) -> list[dict]:
    """The items of one shard file of a sharded fold; a damaged one is refused naming it."""
    from ..utils.shards import ShardError

    try:
        with open(path, encoding="utf-8") as fh:
            items = [load_json(line) for line in fh]
        if not all(isinstance(x, dict) and isinstance(x.get("name"), str) for x in items):
            raise ValueError("a line is not a record")
    except (OSError, ValueError) as e:
        why = " ".join(str(getattr(e, "strerror", None) or e).split())
        raise ShardError(f"{path}: damaged shard ({why}); remove it and re-run the command to recompute it") from None
    return items


class _Sinks:
    """The merged outputs (structures, ``--bpp``, the report), committed together."""

    def __init__(
        self,
        fmt: str,
        out: Path | None,
        mode: str | None,
        bpp: Path | None,
        bpp_min: float | None,
        reference: bool,
        report: Path | None,
    ):
        from .report import HEADER
        from .writers import BPP_HEADER, StructureSink, TextSink

        self._stack = contextlib.ExitStack()
        self.structures = (
            self._stack.enter_context(StructureSink(fmt, out, mode)) if mode in ("stdout", "file") else None
        )
        self.bpp = (
            self._stack.enter_context(TextSink(bpp, BPP_HEADER.format(min_p=bpp_min))) if bpp is not None else None
        )
        self.report = self._stack.enter_context(TextSink(report, HEADER)) if reference else None
        self.rows: list[dict] = []
        self.n = 0

    def add(self, item: dict) -> None:
        from .report import format_row

        if self.structures is not None:
            self.structures.add_text(item["name"], item["structure"])
        if self.bpp is not None:
            self.bpp.write(item["bpp"])
        if self.report is not None:
            self.rows.append(item["report"])
            self.report.write(format_row(item["report"]))
        self.n += 1

    def __enter__(self) -> _Sinks:
        return self

    def __exit__(self, et, ev, tb) -> bool:
        return self._stack.__exit__(et, ev, tb)


@dataclass(frozen=True, kw_only=True)
class FoldOptions(PredictorOptions):
    """Every option of ``resm fold`` (:func:`fold_fasta`), keyword-only; those of the predictor
    (``model``, ``zero_shot``, ``scheme``, ``trust``, ``device``, ``threads``, ``bpp_cache``)
    are :class:`resm.structure.predictor_loading.PredictorOptions`', as is ``turner_scale`` (the
    Turner-corrected decoding of a pair-head model). Outputs: ``fmt`` (dbn, bpseq, ct)
    to ``out`` (None: stdout) or ``split_dir`` (one file per record), ``bpp`` (sparse pair
    probabilities of at least ``bpp_min``), ``plot`` (a folder of drawings), ``reference`` (known
    structures: score each record) with ``report`` (the scores' TSV). Decoding:
    ``threshold`` and ``method`` (a 2-D head or probe only; None: the model's),
    ``noncanonical`` (a pair-head model: add the pairs of the non-canonical scorer stored in
    its file, written only with ``fmt="pairs"``, :func:`check_non_canonical`; a 2-D head or
    probe: keep the greedy decoding's non-canonical pairs), ``nested`` (no pseudoknots),
    ``no_lp`` (no lone pairs; both applied to the canonical structure). Input: ``input_format``
    (None: sniffed), ``max_length`` (longer records refused). Run: ``progress`` (bars on
    stderr), ``shard_size`` (records per shard under torchrun). Figures: ``plot_format`` (png,
    svg, pdf; None: png) and ``dpi`` (None: 100) of the ``plot`` folder's files;
    ``reference_format`` (dbn, ct, bpseq, pairs; None: from the reference's extension). ``bpp_min``
    (None: 0.001), ``plot_format``, ``dpi`` and ``reference_format`` shape an output or an input
    and are refused without it (:meth:`check`). Notes (:func:`annotate`): ``score`` (each
    structure's expected F1, ``[eF1=...]``), ``mfe`` (RNAfold's minimum free energy beside it)
    and ``compare`` (a classical folder of :data:`resm.structure.folders.FOLDERS`, e.g.
    ``rnafold``: its structure on a labelled line after resm's, and in the plots)."""

    fmt: str = "dbn"
    out: Path | None = None
    split_dir: Path | None = None
    bpp: Path | None = None
    bpp_min: float | None = None
    plot: Path | None = None
    reference: Path | None = None
    report: Path | None = None
    threshold: float | None = None
    method: str | None = None
    noncanonical: bool = False
    nested: bool = False
    no_lp: bool = False
    input_format: str | None = None
    max_length: int | None = 10000
    progress: bool = True
    shard_size: int = DEFAULT_SHARD_SIZE
    plot_format: str | None = None
    dpi: int | None = None
    reference_format: str | None = None
    score: bool = True
    mfe: bool = False
    compare: str | None = None

    def check(self, name: Namer = fold_flag) -> None:
        """:meth:`PredictorOptions.check`, and an option shaping an output or an input that is
        not asked for (``--dpi`` without ``--plot``, ``--bpp-min`` without ``--bpp``,
        ``--reference-format`` without ``--reference``, ``--report`` without ``--reference``):
        a one-line FoldError, where it was passed over in silence; ``out`` with ``split_dir``
        (one file, and one file per record) likewise, before the model or the input is read."""
        super().check(name)
        for parent, shaped, without in (
            ("plot", ("plot_format", "dpi"), "nothing is drawn"),
            ("bpp", ("bpp_min",), "no pair probabilities are written"),
            ("reference", ("reference_format",), "no known structures are read"),
        ):
            given = first_given({key: getattr(self, key) for key in shaped})
            if given is not None and getattr(self, parent) is None:
                raise FoldUsageError(f"{name(given)} comes with {name(parent)}: {without} without it")
        if self.report is not None and self.reference is None:
            raise FoldUsageError(
                f"{name('report')} writes the {name('reference')} scores: give {name('reference')} too"
            )
        if self.out is not None and self.split_dir is not None:
            raise FoldUsageError("-o writes one file and --split-dir one file per record: give one of them")

    def plot_style(self) -> tuple[str, int]:
        """``plot_format`` and ``dpi``, their defaults (png, 100:
        :data:`resm.structure.rnafold_vocabulary.DEFAULT_PLOT_FORMAT`, ``DEFAULT_DPI``) filled in."""
        from .rnafold_vocabulary import DEFAULT_DPI, DEFAULT_PLOT_FORMAT

        return (self.plot_format or DEFAULT_PLOT_FORMAT, DEFAULT_DPI if self.dpi is None else self.dpi)

    def to_stdout(self) -> bool:
        """Whether an output goes to standard output: the structures (no ``out``, ``split_dir``
        or ``reference``), the scores (``reference`` without ``report``), or one named ``-``."""
        return (
            (self.out is None and self.split_dir is None and self.reference is None)
            or (self.reference is not None and self.report is None)
            or any(p is not None and str(p) == "-" for p in (self.out, self.bpp, self.report))
        )

    def bpp_floor(self) -> float | None:
        """``bpp_min`` (default 0.001) with ``bpp``, else None (no pair probabilities written)."""
        return None if self.bpp is None else (1e-3 if self.bpp_min is None else self.bpp_min)


def _check_notes(o: FoldOptions) -> None:
    """Refuse, before any work, a ``compare`` that names no folder or one whose package is
    missing, and ``compare`` or ``mfe`` into ct, which has no room for a second structure or an
    energy per record (its default score is simply left out)."""
    from .folders import FOLDERS

    if o.compare is not None and o.compare not in FOLDERS:
        raise FoldUsageError(f"--compare {o.compare}: unknown folder; known: {', '.join(FOLDERS)}")
    ct_written = o.fmt == "ct" and (o.out is not None or o.split_dir is not None or o.reference is None)
    if ct_written and o.compare is not None:
        raise FoldUsageError(
            f"--compare {o.compare}: ct has no room for a second structure per record; "
            "write dbn, bpseq or pairs (--format), or draw both with --plot DIR"
        )
    if ct_written and o.mfe:
        raise FoldUsageError("--mfe: ct has no room for an energy per record; write dbn, bpseq or pairs (--format)")
    if o.compare is not None:
        FOLDERS[o.compare].check()


def fold_fasta(
    fasta: str | os.PathLike, opts: FoldOptions = FoldOptions(), *, stdin=None, open_bundle: BundleOpener | None = None
) -> dict[str, object]:
    """``resm fold``: fold every record of ``fasta`` (``-``: standard input) and write, draw
    and score the structures as ``opts`` (:class:`FoldOptions`) says.

    The predictor is :func:`resm.structure.predictor_loading.load_predictor`'s: the structure model
    at ``opts.model`` (None or ``"default"``: the shipped one), or, with ``opts.zero_shot`` (a
    probe from ``resm probe``), the backbone at ``opts.model`` with that probe. Every input is
    checked before the backbone loads (the records against the scheme, the output targets, the
    reference structures) and nothing is written until every record is folded (a sharded run:
    until its shard is). Structures go to ``out`` (one file; stdout when None) or to
    ``split_dir`` (one file per record); with ``reference`` they are scored (a TSV row per
    record to ``report``, else stdout) and written only when ``out`` or ``split_dir`` is given.
    Returns ``{"n", "mode", "rank", "world", "shards", "skipped"}`` and, with ``reference``,
    ``"metrics"`` (the report's means). ``bpp_cache``: a folder of stored thermodynamic priors,
    read and filled (a supervised model's; the results are the same). ``open_bundle``: how a
    bundle folder at ``opts.model`` is opened (:data:`resm.structure.predictor_loading.BundleOpener`).
    """
    from .inputs import read_sequences, source_name
    from .writers import check_distinct, record_file_names, structure_output_mode

    o = opts
    o.check(fold_flag)
    if o.to_stdout():  # none: said now, not once every record is folded
        require_stdout()
    predictor: Predictor | None = None
    probe = None
    if o.zero_shot is not None:
        probe = ProbeFile.read(o.zero_shot)
        the_scheme = get_scheme(o.scheme or probe.scheme)
    else:
        predictor = load_predictor(o, open_bundle=open_bundle, name=fold_flag)
        the_scheme = predictor.scheme

    records = read_sequences(fasta, o.input_format, stdin)
    lengths = check_records(records, the_scheme, o.max_length, source_name(fasta))
    require_fold_memory(lengths, o.threads, predictor is not None and predictor.turner_corrected)
    ids = [i for i, _ in records]
    wanted = (
        read_reference(o.reference, list(zip(ids, lengths)), dict(records), o.reference_format)
        if o.reference is not None
        else None
    )
    if o.noncanonical:
        check_non_canonical(predictor, o)
    write_structures = o.reference is None or o.out is not None or o.split_dir is not None
    mode = structure_output_mode(o.fmt, o.out, ids, o.split_dir) if write_structures else None
    check_distinct(**{"-o": o.out, "--bpp": o.bpp, "--report": o.report})
    files = {"-o": o.out, "--bpp": o.bpp, "--report": o.report}  # none may be a file of a folder output
    if mode == "dir":
        record_file_names(ids, o.fmt, o.split_dir, files=files)
    _check_notes(o)
    if o.plot is not None:
        from .plot import plot_suffixes, require_matplotlib

        triple = next((k for k, v in (wanted or {}).items() if isinstance(v, PairSet)), None)
        if triple is not None:
            raise FoldError(
                f"{o.reference}: record {triple!r} has a base in several pairs, which --plot cannot draw (one "
                "partner per base); leave out --plot to score it"
            )
        require_matplotlib()
        record_file_names(ids, o.plot_style()[0], o.plot, plot_suffixes(o.compare), files)
    plan = _Plan(
        o.fmt,
        mode in ("stdout", "file"),
        o.split_dir if mode == "dir" else None,
        o.plot,
        o.bpp_floor(),
        wanted,
        o.plot_style(),
        (o.score, o.mfe, o.compare),
    )
    job = {
        "command": "fold",
        "input": fingerprint_records(records),
        "source": source_name(fasta),
        "model": ShardRun.hash_file(o.model if o.zero_shot is not None else o.model_file()),
        "zero_shot": ShardRun.hash_file(o.zero_shot),
        "scheme": the_scheme.name,
        "format": o.fmt,
        "threshold": o.threshold,
        "method": o.method,
        "noncanonical": o.noncanonical,
        "nested": o.nested,
        "no_lp": o.no_lp,
        "turner_scale": o.turner_scale,
        "bpp_min": plan.bpp_min,
        "reference": ShardRun.hash_file(o.reference),
        "structures": plan.structures,
        "split_dir": str(o.split_dir) if o.split_dir else None,
        "plot": str(o.plot) if o.plot else None,
        "notes": [o.score, o.mfe, o.compare],
    }
    run = ShardRun(o.out or o.split_dir or o.bpp or o.report, len(records), o.shard_size, job, ".jsonl", ids=ids)
    run.prepare()
    if predictor is None:
        predictor = load_predictor(o, probe, open_bundle=open_bundle, name=fold_flag)
    if isinstance(predictor, PairPredictor):  # said with the flags, before any record is folded
        refuse_dense_decoding(predictor, o.threshold, o.method, flag)
    fold_kw = dict(
        threshold=o.threshold,
        method=o.method,
        noncanonical=o.noncanonical,
        progress=o.progress,
        nested=o.nested,
        no_lp=o.no_lp,
    )
    sinks = lambda: _Sinks(o.fmt, o.out, mode, o.bpp, plan.bpp_min, o.reference is not None, o.report)  # noqa: E731
    result: dict[str, object] = {
        "n": len(records),
        "mode": mode,
        "rank": run.rank,
        "world": run.world,
        "shards": run.n_shards,
        "skipped": 0,
    }
    rows: list[dict] = []  # the report's, with reference
    if not run.sharded:
        with sinks() as sink:
            _fold_block(predictor, records, plan, sink.add, fold_kw)
        rows.extend(sink.rows)
    else:

        def shard(s: int, block: range) -> None:
            kw = {**fold_kw, "desc": f"fold shard {s + 1}/{run.n_shards}"}
            recs = [records[k] for k in block]

            def fill(tmp: Path) -> None:
                with open(tmp, "w", encoding="utf-8") as fh:
                    _fold_block(predictor, recs, plan, lambda item: fh.write(json.dumps(item) + "\n"), kw)

            run.write(s, fill)

        def combine(paths: list[Path]) -> None:
            with sinks() as sink:
                for s, path in enumerate(paths):
                    items = _read_shard(path)
                    run.check_ids(s, [item.get("name") for item in items])
                    for item in items:
                        sink.add(item)
            rows.extend(sink.rows)

        result["skipped"] = run.process(shard)
        if not run.merge(combine):
            return result
    if o.reference is not None:
        from .report import summary

        result["metrics"] = summary(rows)
    return result
