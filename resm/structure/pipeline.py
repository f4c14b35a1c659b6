"""``resm fold``: secondary structures from FASTA to structure files, arc diagrams or scores.

* :func:`fold_records` folds ``(id, sequence)`` records one at a time and *yields*
  ``(Structure, prob_map)``, so a caller that plots keeps one (L, L) map at a time and a caller
  that only writes structures drops it at once.
* :class:`Predictor` bundles what folding needs (model, scheme, threshold, decoding method and
  the function giving a pair-probability map): :func:`supervised_predictor` for a structure
  model (:mod:`resm.structure.model`; the shipped one is :func:`default_model_path`),
  :func:`zero_shot_predictor` for a backbone with a fitted probe (:mod:`resm.structure.probe`).
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
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from ..mapping import MappingError, Scheme, get_scheme
from ..nucleotides import normalise
from ..utils.shards import DEFAULT_SHARD_SIZE, ShardRun, fingerprint_records
from .decode import METHODS, decode, nested_subset, remove_lone_pairs
from .io import FoldError, Structure, format_structures, read_structures
from .probe import ProbeFile, predict_pair_probs

__all__ = [
    "PairProbs",
    "Predictor",
    "fold_records",
    "zero_shot_predictor",
    "supervised_predictor",
    "default_model_path",
    "check_records",
    "read_reference",
    "fold_fasta",
]

PairProbs = Callable[[str], np.ndarray]
STAGE_LENGTH = 1000  # from this length on, the progress bar names the stage of each record


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
    nested: bool = False,
    no_lp: bool = False,
    desc: str = "fold",
) -> Iterator[Tuple[Structure, np.ndarray]]:
    """Fold ``records`` one at a time, yielding ``(Structure, probabilities)``.

    ``records``: ``(id, sequence)`` tuples, :class:`Structure` or FASTA records. The
    probabilities are ``pair_probs(seq)`` — by default
    :func:`resm.structure.probe.predict_pair_probs` with ``model`` and ``scheme`` — dense (L, L)
    or sparse ``(i, j, p)``, decoded by :func:`resm.structure.decode.decode` at
    ``probe_threshold``; then, with ``nested``, pseudoknots are removed
    (:func:`resm.structure.decode.nested_subset`) and, with ``no_lp``, lone pairs
    (:func:`resm.structure.decode.remove_lone_pairs`). Only the current map is alive unless the
    caller keeps it. The structure's sequence is normalised (upper case, U for T). The progress
    bar (stderr) counts records against their total with an ETA, and names the stage of a long
    record.
    """
    from tqdm.auto import tqdm

    from .io import dense_probs

    if method not in METHODS:
        raise FoldError(f"unknown method {method!r}; expected one of {METHODS}")
    if pair_probs is None:
        def pair_probs(seq: str) -> np.ndarray:
            return predict_pair_probs(model, scheme, seq)

    total = len(records) if hasattr(records, "__len__") else None
    bar = tqdm(records, desc=desc, unit="seq", total=total, disable=not progress)
    for rec in bar:
        name, seq = _name_seq(rec)
        staged = progress and len(seq) >= STAGE_LENGTH
        if staged:
            bar.set_postfix_str(f"{name} ({len(seq)} nt): pair probabilities")
        P = pair_probs(seq)
        if staged:
            bar.set_postfix_str(f"{name} ({len(seq)} nt): decoding")
        dense = P if isinstance(P, np.ndarray) and P.ndim == 2 else dense_probs(P, len(seq))
        pairs = decode(dense, seq, probe_threshold, method, noncanonical)
        if nested:
            pairs = nested_subset(pairs)
        if no_lp:
            pairs = remove_lone_pairs(pairs)
        if staged:
            bar.set_postfix_str(f"{name} ({len(seq)} nt): done")
        yield Structure(name, _output_seq(seq, name), pairs), P


@dataclass
class Predictor:
    """A ready-to-fold model: what :func:`fold_records` needs besides the records.

    ``pair_probs`` (seq -> (L, L) probabilities) is None for the zero-shot probe (the model's
    contact head); a structure model supplies its own."""

    model: object
    scheme: Scheme
    threshold: Optional[float]
    method: str = "greedy"
    pair_probs: Optional[PairProbs] = None
    source: str = ""
    fold_many: Optional[Callable[..., Iterator[Tuple[Structure, tuple]]]] = None  # a pair-head model's own folding

    def fold(
        self,
        records: Iterable,
        threshold: Optional[float] = None,
        method: Optional[str] = None,
        noncanonical: bool = False,
        progress: bool = True,
        nested: bool = False,
        no_lp: bool = False,
        desc: str = "fold",
    ) -> Iterator[Tuple[Structure, np.ndarray]]:
        """:func:`fold_records` with this predictor's threshold and method unless overridden; a
        pair-head model folds through its own :func:`pair_head_folder` (MEA decoding; no
        threshold or method)."""
        if self.fold_many is not None:
            if threshold is not None or method is not None or noncanonical:
                raise FoldError("--threshold, --method and --noncanonical set the greedy decoding of 2-D heads and "
                                "probes; this model decodes by maximum expected accuracy, as stored in its file")
            return self.fold_many(records, nested=nested, no_lp=no_lp, progress=progress, desc=desc)
        return fold_records(
            self.model,
            self.scheme,
            records,
            self.threshold if threshold is None else threshold,
            method or self.method,
            noncanonical,
            progress,
            self.pair_probs,
            nested,
            no_lp,
            desc,
        )

    def fold_one(self, seq: str, name: str = "seq", **kw) -> Tuple[Structure, np.ndarray]:
        """One sequence: ``(Structure, probabilities)``, the probabilities as a dense (L, L)
        map (keyword arguments as :meth:`fold`)."""
        from .io import dense_probs

        kw.setdefault("progress", False)
        ((rec, P),) = list(self.fold([(name, seq)], **kw))
        return rec, (P if isinstance(P, np.ndarray) and P.ndim == 2 else dense_probs(P, len(seq)))


def zero_shot_predictor(model, scheme: Scheme, backbone: str | os.PathLike, probe_path, probe: Optional[ProbeFile] = None) -> Predictor:
    """Load the probe at ``probe_path`` into ``model`` after checking it belongs to this scheme
    and to the backbone at ``backbone``; threshold and method come from its sidecar."""
    probe = probe or ProbeFile.read(probe_path)
    probe.load_into(model, probe_path, scheme, backbone)
    return Predictor(model, scheme, float(probe.threshold), probe.method, None, f"zero-shot probe {probe_path}")


def supervised_predictor(path: str | os.PathLike, device: str = "cpu", tile: int = 512, workers: int = 0,
                         cache: Optional[str | os.PathLike] = None) -> Predictor:
    """A structure model written by ``resm finetune``, loaded once; its file names the mapping
    scheme (name and table hash, checked here). A pair-head model folds in batches with
    ``workers`` processes for its priors (0: one per CPU core); a 2-D head model decodes its
    map at the stored threshold. ``cache``: a folder where the thermodynamic priors are stored
    and found again (:func:`resm.structure.priors.cached_prior`; the same folder serves
    ``resm evaluate --bpp-cache`` and training's ``data.bpp_cache``)."""
    from .model import load_structure_model, predict_pairs

    model, meta = load_structure_model(path)
    model = model.to(device).eval()
    scheme = get_scheme(meta["scheme"])
    scheme.check(meta, where=str(path))
    if model.kind == "pairs":
        return Predictor(model, scheme, None, "mea", None, f"structure model {path}",
                         pair_head_folder(model, meta, scheme, workers, cache=cache))

    def pair_probs(seq: str) -> np.ndarray:
        return predict_pairs(model, scheme, seq, tile=tile, bpp_cache=cache)

    return Predictor(model, scheme, float(meta["threshold"]), "greedy", pair_probs, f"structure model {path}")


BATCH_TOKENS = 8192  # nucleotides per batch of the pair head
CHUNK = 256  # records whose priors are computed together (one process pool)


def pair_head_folder(model, meta: Dict, scheme: Scheme, workers: int = 0, batch_tokens: int = BATCH_TOKENS,
                     chunk: int = CHUNK, cache=None) -> Callable[..., Iterator[Tuple[Structure, tuple]]]:
    """The folding function of a pair-head model: records go in chunks; each chunk's priors
    (:func:`resm.structure.priors.compute_priors`, ``workers`` processes) are computed
    together, its sequences run through the model in batches of about ``batch_tokens``
    nucleotides (sorted by length, so little padding), and each record is decoded by the
    model's stored :class:`resm.structure.decode.Decoding` (``nested``: without the pseudoknot
    step; ``no_lp``: lone pairs removed). Yields ``(Structure, (i, j, p))`` in input order, ``p``
    the decoded (blended) probabilities of the candidate pairs. ``cache``: a folder of stored
    priors (:func:`resm.structure.priors.cached_prior`), read and filled."""
    from tqdm.auto import tqdm

    from ..fasta import token_batches
    from ..heads.pairs import prior_probability
    from .decode import Decoding, blend, decode_sparse
    from .model import model_priors, predict_candidates
    from .priors import compute_priors

    cfgs = model_priors(meta)
    decoding = Decoding.from_dict(meta.get("decoding") or {})
    n_workers = workers or os.cpu_count() or 1

    def fold_many(records: Iterable, nested: bool = False, no_lp: bool = False, progress: bool = True,
                  desc: str = "fold") -> Iterator[Tuple[Structure, tuple]]:
        records = [_name_seq(r) for r in records]
        bar = tqdm(total=len(records), desc=desc, unit="seq", disable=not progress)
        try:
            for start in range(0, len(records), chunk):
                block = records[start : start + chunk]
                seqs = [_output_seq(seq, name) for name, seq in block]
                long = progress and max(len(x) for x in seqs) >= STAGE_LENGTH
                if long:
                    bar.set_postfix_str(f"{block[0][0]} ({len(seqs[0])} nt): pair priors" if len(block) == 1 else "pair priors")
                priors = compute_priors(seqs, cfgs, cache, min(n_workers, len(seqs)), progress=False)
                done: Dict[int, Tuple[Structure, tuple]] = {}
                for group in token_batches([len(x) for x in seqs], batch_tokens, extra=2):
                    if long:
                        bar.set_postfix_str("model")
                    got = predict_candidates(model, scheme, [seqs[k] for k in group], [priors[k] for k in group])
                    if long:
                        bar.set_postfix_str("decoding")
                    for k, (c, q) in zip(group, got):
                        prior_p = prior_probability(c, model.head.cfg)
                        pairs = decode_sparse(seqs[k], c.i, c.j, q, decoding, prior_p, nested)
                        if no_lp:
                            pairs = remove_lone_pairs(pairs)
                        p = blend(q, prior_p, decoding.prior_weight)
                        done[k] = (Structure(block[k][0], seqs[k], pairs), (c.i, c.j, p))
                for k in range(len(block)):
                    yield done.pop(k)
                    bar.update(1)
        finally:
            bar.close()

    return fold_many


def default_model_path() -> Path:
    """The structure model that ships inside the package (used when no --model is given, or
    ``--model default``)."""
    from ..backbone.load import shipped_structure_model

    return shipped_structure_model()


# ----------------------------------------------------------------------------- inputs
def check_records(records: Sequence[Tuple[str, str]], scheme: Scheme, max_length: Optional[int] = None) -> List[int]:
    """Check every record before any work (sequences mappable under ``scheme``, none longer
    than ``max_length``); their lengths."""
    lengths = []
    for name, seq in records:
        n = len(scheme.encode(seq, name))
        if max_length is not None and n > max_length:
            raise MappingError(f"record {name!r}: {n} nt is longer than --max-length {max_length}")
        lengths.append(n)
    return lengths


def read_reference(path: str | os.PathLike, wanted: Sequence[Tuple[str, int]],
                   sequences: Optional[Dict[str, str]] = None) -> Dict[str, np.ndarray]:
    """Reference partner arrays for the ``(id, length)`` records in ``wanted``, read from any
    structure file; every id must be there with the same length (extra records are ignored).
    Where ``sequences`` gives the input's sequence and the reference holds one too, the two
    must agree once normalised (case, T/U; an unknown letter, N, matches any base)."""
    want = dict(wanted)
    found: Dict[str, np.ndarray] = {}
    for rec in read_structures(path):
        if rec.name in want and rec.name not in found:
            if len(rec) != want[rec.name]:
                raise FoldError(
                    f"{Path(path).name}: record {rec.name!r} has length {len(rec)}, the FASTA's has {want[rec.name]}"
                )
            if sequences is not None and rec.seq and rec.name in sequences:
                _same_sequence(path, rec.name, rec.seq, sequences[rec.name])
            found[rec.name] = rec.pairs
    missing = [i for i in want if i not in found]
    if missing:
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        raise FoldError(
            f"{Path(path).name}: no reference structure for {', '.join(repr(m) for m in missing[:3])}{more}"
        )
    return found


def _same_sequence(path, name: str, ref_seq: str, seq: str) -> None:
    """Raise a one-line FoldError where a reference's sequence is not the input's."""
    try:
        a, b = normalise(ref_seq, name), normalise(seq, name)
    except MappingError as e:
        raise FoldError(f"{Path(path).name}: {e}") from None
    p = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y and "N" not in (x, y)), None)
    if p is not None:
        raise FoldError(
            f"{Path(path).name}: record {name!r}: the reference's sequence differs from the input's "
            f"at position {p + 1} ({a[p]} against {b[p]})"
        )


# ----------------------------------------------------------------------------- the command
@dataclass
class _Plan:
    """What one record turns into (decided before any work)."""

    fmt: str
    structures: bool  # formatted into the merged structure output (stdout or -o)
    split_dir: Optional[Path]
    plot: Optional[Path]
    bpp_min: Optional[float]  # None: no --bpp
    wanted: Optional[Dict[str, np.ndarray]]  # reference structures


def _fold_block(predictor: "Predictor", records: Sequence[Tuple[str, str]], plan: _Plan, emit: Callable[[dict], None],
                fold_kw: dict) -> None:
    """Fold ``records``; per record, the texts of the merged outputs go to ``emit`` and the
    per-record files (``--split-dir``, plots) into folders staged until the block is done."""
    from .writers import format_bpp, safe_filename, staged_dir

    with contextlib.ExitStack() as stack:
        split = stack.enter_context(staged_dir(plan.split_dir)) if plan.split_dir is not None else None
        plots = stack.enter_context(staged_dir(plan.plot)) if plan.plot is not None else None
        for rec, P in predictor.fold(records, **fold_kw):
            item: Dict[str, object] = {"name": rec.name}
            if plan.structures:
                item["structure"] = format_structures([rec], plan.fmt)
            if split is not None:
                from ..utils.io import atomic_write_text

                atomic_write_text(split / f"{safe_filename(rec.name)}.{plan.fmt}", format_structures([rec], plan.fmt))
            if plan.bpp_min is not None:
                item["bpp"] = format_bpp(rec.name, P, plan.bpp_min)
            ref = plan.wanted[rec.name] if plan.wanted is not None else None
            if ref is not None:
                from .report import score_record

                item["report"] = score_record(rec.name, rec.seq, rec.pairs, ref)
            if plots is not None:
                from .plot import plot_structure

                plot_structure(plots / f"{safe_filename(rec.name)}.png", rec.seq, rec.pairs, P, title=rec.name,
                               reference=ref)
            emit(item)


class _Sinks:
    """The merged outputs (structures, ``--bpp``, the report), committed together."""

    def __init__(self, fmt: str, out: Optional[Path], mode: Optional[str], bpp: Optional[Path], bpp_min: float,
                 reference: bool, report: Optional[Path]):
        from .report import HEADER
        from .writers import BPP_HEADER, StructureSink, TextSink

        self._stack = contextlib.ExitStack()
        self.structures = self._stack.enter_context(StructureSink(fmt, out, mode)) if mode in ("stdout", "file") else None
        self.bpp = self._stack.enter_context(TextSink(bpp, BPP_HEADER.format(min_p=bpp_min))) if bpp is not None else None
        self.report = self._stack.enter_context(TextSink(report, HEADER)) if reference else None
        self.rows: List[dict] = []
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

    def __enter__(self) -> "_Sinks":
        return self

    def __exit__(self, et, ev, tb) -> bool:
        return self._stack.__exit__(et, ev, tb)


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
    *,
    split_dir: Optional[Path] = None,
    bpp: Optional[Path] = None,
    bpp_min: float = 1e-3,
    report: Optional[Path] = None,
    nested: bool = False,
    no_lp: bool = False,
    input_format: Optional[str] = None,
    shard_size: int = DEFAULT_SHARD_SIZE,
    stdin=None,
    threads: int = 0,
    bpp_cache: Optional[Path] = None,
) -> Dict[str, object]:
    """``resm fold``: fold every record of ``fasta`` (``-``: standard input) and write, draw
    and score the structures.

    The predictor is the structure model at ``model`` (default or ``"default"``: the shipped
    one), or, with ``zero_shot`` (a probe from ``resm probe``), the backbone at ``model`` with
    that probe. Every input is checked before the backbone loads (the records against the
    scheme, the output targets, the reference structures) and nothing is written until every
    record is folded (a sharded run: until its shard is). Structures go to ``out`` (one file;
    stdout when None) or to ``split_dir`` (one file per record); with ``reference`` they are
    scored (a TSV row per record to ``report``, else stdout) and written only when ``out`` or
    ``split_dir`` is given. Returns ``{"n", "mode", "rank", "world", "shards", "skipped"}`` and,
    with ``reference``, ``"metrics"`` (the report's means). ``bpp_cache``: a folder of stored
    thermodynamic priors, read and filled (a supervised model's; the results are the same).
    """
    from .inputs import read_sequences, source_name
    from .writers import check_distinct, record_file_names, structure_output_mode

    predictor: Optional[Predictor] = None
    if bpp_cache is not None:
        if zero_shot is not None:
            raise FoldError("--bpp-cache stores a structure model's pair priors; a --zero-shot probe reads none")
        if Path(bpp_cache).exists() and not Path(bpp_cache).is_dir():
            raise FoldError(f"{bpp_cache}: --bpp-cache must be a folder, not a file")
    if zero_shot is not None:
        if model is None:
            raise FoldError("--zero-shot needs --model, the backbone the probe was fitted on")
        probe = ProbeFile.read(zero_shot)
        the_scheme = get_scheme(scheme or probe.scheme)
    else:
        model_path = default_model_path() if model in (None, "default") else model
        if not Path(model_path).exists():
            raise FoldError(f"{model_path}: no such structure model (train one with `resm finetune`)")
        predictor = supervised_predictor(model_path, device, workers=threads, cache=bpp_cache)
        the_scheme = predictor.scheme

    records = read_sequences(fasta, input_format, stdin)
    lengths = check_records(records, the_scheme, max_length)
    ids = [i for i, _ in records]
    wanted = read_reference(reference, list(zip(ids, lengths)), dict(records)) if reference is not None else None
    write_structures = reference is None or out is not None or split_dir is not None
    mode = structure_output_mode(fmt, out, ids, split_dir) if write_structures else None
    check_distinct(**{"-o": out, "--bpp": bpp, "--report": report})
    if report is not None and reference is None:
        raise FoldError("--report writes the --reference scores: give --reference too")
    if plot is not None:
        from .plot import require_matplotlib

        require_matplotlib()
        record_file_names(ids, "png")
    plan = _Plan(fmt, mode in ("stdout", "file"), split_dir if mode == "dir" else None, plot,
                 bpp_min if bpp is not None else None, wanted)
    job = {"command": "fold", "input": fingerprint_records(records), "source": source_name(fasta),
           "model": ShardRun.hash_file(model or default_model_path()), "zero_shot": ShardRun.hash_file(zero_shot),
           "scheme": the_scheme.name, "format": fmt, "threshold": threshold, "method": method,
           "noncanonical": noncanonical, "nested": nested, "no_lp": no_lp, "bpp_min": plan.bpp_min,
           "reference": ShardRun.hash_file(reference), "structures": plan.structures,
           "split_dir": str(split_dir) if split_dir else None, "plot": str(plot) if plot else None}
    run = ShardRun(out or split_dir or bpp or report, len(records), shard_size, job, ".jsonl")
    run.prepare()
    if predictor is None:
        from ..backbone.load import load_with_scheme

        loaded, the_scheme = load_with_scheme(model, the_scheme.name, trust=trust)
        predictor = zero_shot_predictor(loaded.model.to(device), the_scheme, loaded.meta["source"], zero_shot, probe)
    fold_kw = dict(threshold=threshold, method=method, noncanonical=noncanonical, progress=progress, nested=nested,
                   no_lp=no_lp)
    sinks = lambda: _Sinks(fmt, out, mode, bpp, bpp_min, reference is not None, report)  # noqa: E731
    result: Dict[str, object] = {"n": len(records), "mode": mode, "rank": run.rank, "world": run.world,
                                 "shards": run.n_shards, "skipped": 0}
    rows: List[dict] = []  # the report's, with reference
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

        def combine(paths: List[Path]) -> None:
            with sinks() as sink:
                for path in paths:
                    with open(path, encoding="utf-8") as fh:
                        for line in fh:
                            sink.add(json.loads(line))
            rows.extend(sink.rows)

        result["skipped"] = run.process(shard)
        if not run.merge(combine):
            return result
    if reference is not None:
        from .report import summary

        result["metrics"] = summary(rows)
    return result
