"""Folding with a loaded model: one predictor per kind of model, each decoding as its file says.

Decoding happens here and nowhere else (``resm fold``, ``resm evaluate``, the Python API and
the experiments all fold through these classes):

* :class:`PairPredictor`: a structure model with the sparse pair head
  (:class:`resm.heads.pairs.PairHead`). Records go in chunks; each chunk's pair priors are
  computed together (:func:`resm.structure.priors.compute_priors`, in worker processes), its
  sequences run through the model in batches of about ``batch_tokens`` nucleotides (sorted by
  length, so little padding), and each record is decoded by the model's stored
  :class:`resm.structure.decode.Decoding` (maximum expected accuracy over the blended model and
  prior probabilities); asked for non-canonical pairs, the model file's scorer
  (:mod:`resm.structure.noncanonical`) adds them to each decoded structure.
* :class:`MapPredictor`: a dense (L, L) pair-probability map decoded at a threshold
  (:func:`resm.structure.decode.decode`, greedy or matching): a structure model with the 2-D
  head (:func:`resm.structure.model.predict_pairs`, its stored threshold) or a backbone with a
  zero-shot probe (:mod:`resm.structure.probe`, the probe's threshold and method).

A trained structure model's predictor is the one its head kind names (:data:`PREDICTORS`,
``head kind -> class``; each class builds itself with ``for_model`` from the model and its stored
settings), whether the model is a ``structure_model.pt`` or the structure head of a bundle
(:func:`bundle_predictor`). :func:`load_predictor` builds one from a :class:`PredictorOptions`, the one place where the
name ``default`` (the shipped model, :func:`resm.structure.model.resolve_model`), the probe and
the prior cache are resolved; ``resm fold`` (:class:`resm.structure.pipeline.FoldOptions`
extends the options) and :func:`resm.load_predictor` both go through it, handing in how a bundle
is opened (:func:`resm.tasks.base.open_bundle`: the tasks stand above this package).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from ..config import flag
from ..fasta import check_record_ids
from ..mapping import Scheme, get_scheme
from ..nucleotides import MappingError, normalise
from .decode import METHODS, decode, nested_subset, remove_lone_pairs, stored_threshold
from .io import FoldError, Structure
from .probe import ProbeFile, predict_pair_probs

__all__ = [
    "bundle_predictor",
    "PREDICTORS",
    "PairProbs",
    "Predictor",
    "MapPredictor",
    "PairPredictor",
    "PredictorOptions",
    "load_predictor",
    "zero_shot_predictor",
    "supervised_predictor",
]

PairProbs = Callable[[str], np.ndarray]
PathLike = str | os.PathLike
# opens a bundle folder: ``(model, head entries, scheme)``, as :func:`resm.tasks.base.open_bundle`
# does; the library cannot import the tasks above it, so the commands and the API hand it in
BundleOpener = Callable[[PathLike], tuple]
# how an error names an option: resm.config.flag (the command line, the default) or
# resm.config.keyword (the Python API)
Namer = Callable[[str], str]
STAGE_LENGTH = 1000  # from this length on, the progress bar names the stage of each record
BATCH_TOKENS = 8192  # nucleotides per batch of the pair head
CHUNK = 256  # records whose priors are computed together (one process pool)


def iterable(value, keyword: str, what: str):
    """``value`` as an iterable, or a TypeError naming the API's ``keyword`` and what it takes
    (``records: expected (id, sequence) pairs or a mapping of id to sequence, got NoneType``),
    where Python's own said "'NoneType' object is not iterable", naming nothing."""
    try:
        iter(value)
    except TypeError:
        raise TypeError(f"{keyword}: expected {what}, got {type(value).__name__}") from None
    return value


def name_seq(rec) -> tuple[str, str]:
    """``(name, seq)`` of an ``(id, sequence)`` pair, a :class:`Structure` or a FASTA record. The
    sequence must be text (``bytes`` are read as ASCII): anything else is a TypeError naming the
    record, where ``str()`` of it would fold ``"None"`` or ``"b'ACGU'"`` as a sequence."""
    if isinstance(rec, (tuple, list)):
        if len(rec) != 2:
            raise TypeError(f"a record must be an (id, sequence) pair, got {len(rec)} items: {rec!r:.80}")
        name, seq = rec
    elif hasattr(rec, "seq") and (getattr(rec, "id", None) or hasattr(rec, "name")):
        name, seq = getattr(rec, "id", None) or rec.name, rec.seq
    else:
        raise TypeError(
            f"a record must be an (id, sequence) pair, a Structure or a FASTA record, got {type(rec).__name__}"
        )
    if isinstance(seq, (bytes, bytearray)):
        seq = bytes(seq).decode("ascii", errors="replace")  # a non-ASCII byte is named by the scheme's check
    if not isinstance(seq, str):
        raise TypeError(f"record {str(name)!r}: the sequence must be a str, got {type(seq).__name__}")
    return str(name), seq


def _output_seq(seq: str, name: str) -> str:
    """The sequence written with a structure: upper-case ACGU with N for unknown bases (as
    decoding reads it); left as given when it is not a nucleotide sequence."""
    try:
        return normalise(seq, name)
    except MappingError:
        return seq


def checked_records(records: Iterable, scheme: Scheme) -> list[tuple[str, str]]:
    """``(name, seq)`` of every record, each checked against ``scheme`` before any work, so that
    a bad sequence is an error naming the caller's id (not the sequence's place in a batch).
    ``records`` may also be a mapping of id to sequence; a lone sequence is a TypeError
    (:meth:`Predictor.fold_one` folds one)."""
    if isinstance(records, (str, bytes, bytearray)):
        raise TypeError(
            "records must be (id, sequence) pairs or a mapping of id to sequence, got one "
            f"{type(records).__name__} (fold_one folds a single sequence)"
        )
    if isinstance(records, Mapping):
        records = records.items()
    out = [name_seq(r) for r in iterable(records, "records", "(id, sequence) pairs or a mapping of id to sequence")]
    check_record_ids((name for name, _ in out), FoldError)  # as a file's are: the results are keyed by id
    for name, seq in out:
        scheme.encode(seq, name)
    return out


class Predictor:
    """A ready-to-fold model. :meth:`fold` yields ``(Structure, probabilities)`` per record, in
    input order; :meth:`fold_one` folds one sequence. Subclasses: :class:`MapPredictor`,
    :class:`PairPredictor`. Its ``repr`` is one line: the class, the model's source, scheme and
    device, and the decoding settings (not the network's layers)."""

    model: object
    scheme: Scheme
    source: str

    @property
    def turner_corrected(self) -> bool:
        """Whether the decoding adds a Turner-corrected step (a ViennaRNA fold per record, which
        the memory check counts: :func:`resm.utils.memory.fold_estimate`); a dense map's never does."""
        return False

    def _settings(self) -> dict[str, object]:
        """The decoding settings :meth:`__repr__` shows."""
        return {}

    def _checked(self, records: Iterable) -> list[tuple[str, str]]:
        """:func:`checked_records`, then the memory check ``resm fold`` makes before any work
        (:func:`resm.utils.memory.require_fold_memory`): a caller of the API handing a 100,000-nt
        sequence gets a one-line MemoryCheckError, not a process killed for its memory."""
        from ..utils.memory import OVERRIDE_API, require_fold_memory

        out = checked_records(records, self.scheme)
        workers = getattr(self, "workers", 1)
        require_fold_memory([len(s) for _, s in out], workers, self.turner_corrected, override=OVERRIDE_API)
        return out

    def __repr__(self) -> str:
        params = getattr(self.model, "parameters", None)
        device = next((str(w.device) for w in params()), "?") if callable(params) else "?"
        shown = {"source": self.source, "scheme": self.scheme.name, "device": device, **self._settings()}
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in shown.items())})"

    def fold(
        self,
        records: Iterable,
        *,
        threshold: float | None = None,
        method: str | None = None,
        noncanonical: bool = False,
        progress: bool = True,
        nested: bool = False,
        no_lp: bool = False,
        desc: str = "fold",
    ) -> Iterator[tuple[Structure, object]]:
        """Fold ``records`` (``(id, sequence)`` pairs, a mapping of id to sequence, or
        :class:`Structure` records), lazily, yielding ``(Structure, probabilities)`` in input
        order, with a progress bar on stderr unless ``progress`` is False (``desc``: its
        label). The probabilities are what the model decodes: a pair-head model's
        (:class:`PairPredictor`, the shipped one) are sparse, a tuple ``(i, j, p)`` of 0-based
        candidate pairs and their probabilities; a 2-D head's or a probe's
        (:class:`MapPredictor`) a dense (L, L) map (:func:`resm.structure.pair_probs.dense_probs`
        turns the first into the second; :meth:`fold_one` gives the dense map). ``threshold``
        and ``method``: a dense map's decoding (a pair-head model refuses them); ``nested``: no
        pseudoknots; ``no_lp``: no lone pairs; ``noncanonical``: add the model file's
        non-canonical pairs."""
        raise NotImplementedError

    def fold_one(self, seq: str, name: str = "seq", **kw) -> tuple[Structure, np.ndarray]:
        """One sequence ``seq``, named ``name``: ``(Structure, probabilities)``, the
        probabilities as a dense (L, L) map (``kw``: keyword arguments as :meth:`fold`)."""
        from .pair_probs import dense_probs

        kw.setdefault("progress", False)
        ((rec, P),) = list(self.fold([(name, seq)], **kw))
        return rec, (P if isinstance(P, np.ndarray) and P.ndim == 2 else dense_probs(P, len(seq)))


@dataclass(repr=False)
class MapPredictor(Predictor):
    """A dense pair-probability map decoded at a threshold (:meth:`MapPredictor.fold`): a 2-D head
    structure model (``pair_probs`` its tiled inference) or a zero-shot probe (``pair_probs``
    None: the backbone's contact head with the probe loaded)."""

    model: object
    scheme: Scheme
    threshold: float
    method: str = "greedy"
    pair_probs: PairProbs | None = None
    source: str = ""
    kind: ClassVar[str] = "conv"  # the structure head kind it folds with (PREDICTORS)

    @classmethod
    def for_model(
        cls, model, settings: dict, scheme: Scheme, *, workers: int = 0, cache=None, tile: int = 512, source: str = ""
    ) -> MapPredictor:
        """The predictor of a 2-D head structure model (a :class:`resm.structure.model.StructureModel`
        or a bundle's head, :class:`resm.structure.model.HeadOfBundle`): its tiled inference
        (:func:`resm.structure.model.predict_pairs`, the thermodynamic channel read from and
        stored in ``cache``), decoded greedily at the ``threshold`` of ``settings`` (the file's
        meta or the bundle head's extra; 0.5 when none). ``workers`` is unused."""
        from .model import predict_pairs

        def pair_probs(seq: str) -> np.ndarray:
            return predict_pairs(model, scheme, seq, tile=tile, bpp_cache=cache)

        threshold = stored_threshold(settings.get("threshold", 0.5), source or "structure model")
        return cls(model, scheme, threshold, "greedy", pair_probs, source)

    def _settings(self) -> dict[str, object]:
        return {"threshold": self.threshold, "method": self.method}

    def decode(self, P: np.ndarray, seq: str, threshold: float | None = None) -> np.ndarray:
        """The partner array of one dense (L, L) map at this predictor's threshold (or
        ``threshold``) and method, canonical pairs only (as :meth:`fold`)."""
        return decode(P, seq, self.threshold if threshold is None else threshold, self.method)

    def fold(
        self,
        records: Iterable,
        *,
        threshold: float | None = None,
        method: str | None = None,
        noncanonical: bool = False,
        progress: bool = True,
        nested: bool = False,
        no_lp: bool = False,
        desc: str = "fold",
    ) -> Iterator[tuple[Structure, np.ndarray]]:
        """Fold ``records`` one at a time, yielding ``(Structure, probabilities)`` in input order,
        at this predictor's threshold and method unless overridden. Every record is checked first
        (:func:`checked_records`).

        ``records``: ``(id, sequence)`` tuples, :class:`Structure` or FASTA records. The
        probabilities are ``pair_probs(seq)`` — by default
        :func:`resm.structure.probe.predict_pair_probs` with ``model`` and ``scheme`` — dense
        (L, L) or sparse ``(i, j, p)``, decoded by :func:`resm.structure.decode.decode` at the
        threshold; then, with ``nested``, pseudoknots are removed
        (:func:`resm.structure.decode.nested_subset`) and, with ``no_lp``, lone pairs
        (:func:`resm.structure.decode.remove_lone_pairs`). Only the current map is alive unless
        the caller keeps it. The structure's sequence is normalised (upper case, U for T). The
        progress bar (stderr) counts records against their total with an ETA, and names the
        stage of a long record.
        """
        records = self._checked(records)
        threshold = self.threshold if threshold is None else threshold
        return self._fold(records, threshold, method or self.method, noncanonical, progress, nested, no_lp, desc)

    def _fold(
        self,
        records: list[tuple[str, str]],
        threshold: float,
        method: str,
        noncanonical: bool,
        progress: bool,
        nested: bool,
        no_lp: bool,
        desc: str,
    ) -> Iterator[tuple[Structure, np.ndarray]]:
        from tqdm.auto import tqdm

        from .pair_probs import dense_probs

        if method not in METHODS:
            raise FoldError(f"unknown method {method!r}; expected one of {METHODS}")
        pair_probs = self.pair_probs
        if pair_probs is None:

            def pair_probs(seq: str) -> np.ndarray:
                return predict_pair_probs(self.model, self.scheme, seq)

        total = len(records) if hasattr(records, "__len__") else None
        bar = tqdm(records, desc=desc, unit="seq", total=total, disable=not progress)
        for rec in bar:
            name, seq = name_seq(rec)
            staged = progress and len(seq) >= STAGE_LENGTH
            if staged:
                bar.set_postfix_str(f"{name} ({len(seq)} nt): pair probabilities")
            P = pair_probs(seq)
            if staged:
                bar.set_postfix_str(f"{name} ({len(seq)} nt): decoding")
            dense = P if isinstance(P, np.ndarray) and P.ndim == 2 else dense_probs(P, len(seq))
            pairs = decode(dense, seq, threshold, method, noncanonical)
            if nested:
                pairs = nested_subset(pairs)
            if no_lp:
                pairs = remove_lone_pairs(pairs)
            if staged:
                bar.set_postfix_str(f"{name} ({len(seq)} nt): done")
            yield Structure(name, _output_seq(seq, name), pairs), P


@dataclass(repr=False)
class PairPredictor(Predictor):
    """A pair-head structure model folding in batches with its stored decoding (see the
    module's docstring). ``priors``: the model's :class:`resm.structure.priors.PriorConfig`
    list; ``decoding``: its :class:`resm.structure.decode.Decoding`; ``workers`` processes
    compute the priors (0: one per CPU core); ``cache``: a folder of stored priors
    (:func:`resm.structure.priors.cached_prior`), read and filled."""

    model: object
    scheme: Scheme
    priors: list
    decoding: object
    workers: int = 0
    cache: PathLike | None = None
    batch_tokens: int = BATCH_TOKENS
    chunk: int = CHUNK
    source: str = ""
    kind: ClassVar[str] = "pairs"  # the structure head kind it folds with (PREDICTORS)
    non_canonical: dict | None = None  # the file's non-canonical scorer entry, read when first asked for

    @classmethod
    def from_meta(cls, model, meta: dict, scheme: Scheme, **kw) -> PairPredictor:
        """The predictor of a loaded pair-head model and its file's ``meta`` (the priors and
        decoding it stores)."""
        from .decode import Decoding
        from .model import model_priors
        from .noncanonical import KEY

        where = kw.get("source") or "structure model"
        stored = meta.get("decoding") or {}
        if not isinstance(stored, dict):
            raise FoldError(f"{where}: its decoding entry is a {type(stored).__name__}, not a mapping of settings")
        try:
            decoding = Decoding.from_dict(stored)
        except ValueError as e:  # a file's bad decoding value: one line naming the file and the key
            raise FoldError(f"{where}: {e}") from None
        kw.setdefault("non_canonical", meta.get(KEY))
        return cls(model, scheme, model_priors(meta), decoding, **kw)

    @classmethod
    def for_model(
        cls, model, settings: dict, scheme: Scheme, *, workers: int = 0, cache=None, tile: int = 512, source: str = ""
    ) -> PairPredictor:
        """The predictor of a pair-head structure model (a
        :class:`resm.structure.model.StructureModel` or a bundle's head,
        :class:`resm.structure.model.HeadOfBundle`) with the priors and decoding of
        ``settings`` (the file's meta or the bundle head's extra). ``tile`` is unused."""
        return cls.from_meta(model, settings, scheme, workers=workers, cache=cache, source=source)

    @property
    def turner_corrected(self) -> bool:
        """Whether the stored decoding (or ``turner_scale``) adds the Turner-corrected step."""
        return self.decoding.turner_scale is not None

    def _settings(self) -> dict[str, object]:
        return {"decoding": self.decoding, "workers": self.workers, "cache": self.cache}

    def non_canonical_scorer(self):
        """The model file's :class:`resm.structure.noncanonical.NonCanonical` (read once); a
        one-line error naming the file when it has none or an unusable one."""
        from .noncanonical import NonCanonical

        where = self.source or "this structure model"
        if self.non_canonical is None:
            raise FoldError(
                f"{where}: has no non-canonical scorer, so it cannot add non-canonical pairs "
                "(train one with experiments/noncanonical/train.py)"
            )
        if not isinstance(self.non_canonical, NonCanonical):
            self.non_canonical = NonCanonical.from_payload(self.non_canonical, where)
        return self.non_canonical

    def fold(
        self,
        records: Iterable,
        *,
        threshold: float | None = None,
        method: str | None = None,
        noncanonical: bool = False,
        progress: bool = True,
        nested: bool = False,
        no_lp: bool = False,
        desc: str = "fold",
    ) -> Iterator[tuple[Structure, tuple]]:
        """Yields ``(Structure, (i, j, p))`` in input order, ``p`` the decoded (blended)
        probabilities of the candidate pairs (``nested``: without the pseudoknot step;
        ``no_lp``: lone pairs removed). The threshold and method switches belong to the greedy
        decoding of dense maps, and are refused. ``noncanonical``: the model file's
        non-canonical scorer (:meth:`non_canonical_scorer`) adds its pairs to each decoded
        structure, which is then a :class:`resm.structure.pairsets.PairRecord` (a base may sit
        in several pairs)."""
        if threshold is not None or method is not None:
            raise FoldError(
                "threshold and method (--threshold, --method) set the greedy decoding of 2-D heads and "
                "probes; this model decodes by maximum expected accuracy, as stored in its file"
            )
        scorer = self.non_canonical_scorer() if noncanonical else None
        out = self._fold(self._checked(records), nested, no_lp, progress, desc)
        return out if scorer is None else _with_non_canonical(out, scorer)

    def _fold(
        self, records: list[tuple[str, str]], nested: bool, no_lp: bool, progress: bool, desc: str
    ) -> Iterator[tuple[Structure, tuple]]:
        from tqdm.auto import tqdm

        from ..fasta import token_batches
        from .priors import compute_priors

        n_workers = self.workers or os.cpu_count() or 1
        bar = tqdm(total=len(records), desc=desc, unit="seq", disable=not progress)
        try:
            for start in range(0, len(records), self.chunk):
                block = records[start : start + self.chunk]
                seqs = [_output_seq(seq, name) for name, seq in block]
                long = progress and max(len(x) for x in seqs) >= STAGE_LENGTH
                if long:
                    one = f"{block[0][0]} ({len(seqs[0])} nt): "
                    bar.set_postfix_str((one if len(block) == 1 else "") + "pair priors")
                priors = compute_priors(
                    seqs,
                    self.priors,
                    self.cache,
                    min(n_workers, len(seqs)),
                    progress=False,
                    names=[n for n, _ in block],
                )
                done: dict[int, tuple[Structure, tuple]] = {}
                for group in token_batches([len(x) for x in seqs], self.batch_tokens, extra=2):
                    for k, item in zip(
                        group,
                        self._batch(
                            [seqs[k] for k in group], [priors[k] for k in group], nested, no_lp, bar if long else None
                        ),
                    ):
                        done[k] = (Structure(block[k][0], seqs[k], item[0]), item[1])
                for k in range(len(block)):
                    yield done.pop(k)
                    bar.update(1)
        finally:
            bar.close()

    def _batch(
        self, seqs: list[str], priors: list, nested: bool, no_lp: bool, bar=None
    ) -> list[tuple[np.ndarray, tuple]]:
        """One batch through the model, each sequence decoded: ``(pairs, (i, j, p))``."""
        from .decode import blend

        if bar is not None:
            bar.set_postfix_str("model")
        got = self.probabilities(seqs, priors)
        if bar is not None:
            bar.set_postfix_str("decoding")
        out = []
        for seq, (c, q, prior_p) in zip(seqs, got):
            pairs = self.decode(seq, c.i, c.j, q, prior_p, nested)
            if no_lp:
                pairs = remove_lone_pairs(pairs)
            out.append((pairs, (c.i, c.j, blend(q, prior_p, self.decoding.prior_weight))))
        return out

    def probabilities(self, seqs: list[str], priors: list) -> list[tuple[object, np.ndarray, np.ndarray]]:
        """One batch: per sequence ``(candidates, model probabilities, prior probabilities)``
        (``priors[k]``: sequence k's :class:`resm.structure.priors.SparsePairs`, one per prior
        of the model, in its order)."""
        from ..heads.pairs import prior_probability
        from .model import predict_candidates

        got = predict_candidates(self.model, self.scheme, seqs, priors)
        return [(c, q, prior_probability(c, self.model.head.cfg)) for c, q in got]

    def decode(
        self,
        seq: str,
        i: np.ndarray,
        j: np.ndarray,
        q: np.ndarray,
        prior_p: np.ndarray | None,
        nested: bool = False,
        decoding=None,
    ) -> np.ndarray:
        """The partner array of one sequence from its candidates ``(i, j)`` and their model
        and prior probabilities (:meth:`probabilities`), by the stored decoding (or
        ``decoding``, a :class:`resm.structure.decode.Decoding` tried instead)."""
        from .decode import decode_sparse

        return decode_sparse(seq, i, j, q, decoding or self.decoding, prior_p, nested)


PREDICTORS: dict[str, type] = {c.kind: c for c in (PairPredictor, MapPredictor)}
"""Structure head kind -> its predictor class; each builds itself from a loaded model and its
stored settings (``for_model``)."""


def _with_non_canonical(folded: Iterator[tuple[Structure, tuple]], scorer) -> Iterator[tuple[object, tuple]]:
    """Each decoded structure with ``scorer``'s non-canonical pairs added (a ``PairRecord``)."""
    from .pairsets import PairRecord

    for rec, P in folded:
        yield PairRecord(rec.name, rec.seq, scorer.add(rec.seq, rec.pairs, P)), P


# ----------------------------------------------------------------------------- building one
@dataclass(frozen=True, kw_only=True)
class PredictorOptions:
    """What :func:`load_predictor` needs: ``model`` (a ``structure_model.pt``; None or
    ``"default"``: the shipped one; with ``zero_shot``, a probe from ``resm probe``: the
    backbone the probe was fitted on), ``scheme`` (zero-shot only; default: the probe's),
    ``trust`` (unpickle a backbone's arbitrary objects), ``device``, ``threads`` (processes
    computing a pair-head model's priors; 0: one per core), ``bpp_cache`` (a folder of
    stored priors, read and filled) and ``turner_scale`` (a pair-head model only: its stored
    decoding with the Turner-corrected step at this scale, :class:`resm.structure.decode.Decoding`;
    None: the decoding as stored)."""

    model: PathLike | None = None
    zero_shot: PathLike | None = None
    scheme: str | None = None
    trust: bool = False
    device: str = "cpu"
    threads: int = 0
    bpp_cache: PathLike | None = None
    turner_scale: float | None = None

    def decoding_overrides(self) -> dict[str, object]:
        """The fields of the model's stored decoding these options replace (:func:`override_decoding`).
        ``turner_penalty`` has no option: S=0.3 was chosen with the default 5 kcal/mol, and a
        model file may store another, which ``turner_scale`` keeps."""
        return {"turner_scale": self.turner_scale}

    def check(self, name: Namer = flag) -> None:
        """The options' own consistency, before anything is read: a one-line FoldError naming
        each option as ``name`` does (the command line's flag; the API's keyword)."""
        from ..utils.device import THREADS_RULE, threads_ok

        if not threads_ok(self.threads):
            raise FoldError(f"threads {THREADS_RULE}, got {self.threads!r}")
        cache, zero_shot, turner = name("bpp_cache"), name("zero_shot"), name("turner_scale")
        if self.bpp_cache is not None:
            if self.zero_shot is not None:
                raise FoldError(f"{cache} stores a structure model's pair priors; a {zero_shot} probe reads none")
            from .priors import check_cache_folder

            check_cache_folder(self.bpp_cache, cache)
        if self.zero_shot is not None and self.model is None:
            raise FoldError(f"{zero_shot} needs {name('model')}, the backbone the probe was fitted on")
        if self.turner_scale is not None:
            if self.zero_shot is not None:
                raise FoldError(f"{turner} sets a pair-head model's decoding; a {zero_shot} probe has none")
            check_decoding_overrides(self.decoding_overrides(), name)

    def model_file(self) -> Path:
        """The structure model's file (``default`` resolved); a FoldError when it is missing."""
        from .model import resolve_model

        path = Path(resolve_model(self.model))
        if not path.exists():
            raise FoldError(f"{path}: no such structure model (train one with `resm finetune`)")
        return path


def load_predictor(
    opts: PredictorOptions,
    probe: ProbeFile | None = None,
    *,
    open_bundle: BundleOpener | None = None,
    name: Namer = flag,
) -> Predictor:
    """The predictor ``opts`` name (checked by :meth:`PredictorOptions.check`): the structure
    model's (:func:`supervised_predictor`; a bundle's structure head, opened by ``open_bundle``),
    or the backbone's with its zero-shot probe (``probe``: the probe file already read, if it is).
    Errors name the options as ``name`` does (:func:`resm.config.flag`; the API: its keywords)."""
    opts.check(name)
    if opts.zero_shot is None:
        pred = supervised_predictor(
            opts.model_file(), opts.device, workers=opts.threads, cache=opts.bpp_cache, open_bundle=open_bundle
        )
        return override_decoding(pred, opts.decoding_overrides(), name)
    from .model import load_with_scheme

    probe = probe or ProbeFile.read(opts.zero_shot)
    loaded, the_scheme = load_with_scheme(opts.model, opts.scheme or probe.scheme, trust=opts.trust)
    return zero_shot_predictor(loaded.model.to(opts.device), the_scheme, loaded.meta["source"], opts.zero_shot, probe)


def check_decoding_overrides(overrides: dict | None, name: Namer = flag) -> dict[str, object]:
    """The overrides of a stored decoding that are set (None values dropped), each checked
    against :class:`resm.structure.decode.Decoding`'s rules: a one-line FoldError naming the
    option as ``name`` does (``turner_scale`` -> ``--turner-scale``; the API: ``turner_scale``)
    and the rule it breaks, or that it is no setting of a decoding."""
    from dataclasses import fields

    from .decode import Decoding, DecodingError

    known = [f.name for f in fields(Decoding)]
    got = {k: v for k, v in (overrides or {}).items() if v is not None}
    for k, v in got.items():
        option = name(k)
        if k not in known:
            raise FoldError(f"{option}: not a setting of a model's decoding (those are {', '.join(known)})")
        try:
            Decoding(**{k: v})
        except DecodingError as e:
            raise FoldError(f"{option} {v}: {e.rule}") from None
    return got


def override_decoding(pred: Predictor, overrides: dict | None, name: Namer = flag) -> Predictor:
    """``pred`` with the set ``overrides`` (fields of :class:`resm.structure.decode.Decoding`, e.g.
    ``{"turner_scale": 0.3}``; None values: as stored) replacing those of its stored decoding; a
    one-line FoldError when a value is bad or when the predictor decodes a dense map (a 2-D head or
    probe), which has no such decoding (the option named as ``name`` does: :func:`check_decoding_overrides`)."""
    from dataclasses import replace

    got = check_decoding_overrides(overrides, name)
    if not got:
        return pred
    if not isinstance(pred, PairPredictor):
        raise FoldError(
            f"{name(next(iter(got)))}: {pred.source or 'this model'} decodes a dense pair map at a "
            "threshold; the option sets a pair-head model's decoding"
        )
    pred.decoding = replace(pred.decoding, **got)
    return pred


def zero_shot_predictor(
    model, scheme: Scheme, backbone: PathLike, probe_path, probe: ProbeFile | None = None
) -> MapPredictor:
    """Load the probe at ``probe_path`` into ``model`` after checking it belongs to this scheme
    and to the backbone at ``backbone``; threshold and method come from its sidecar."""
    probe = probe or ProbeFile.read(probe_path)
    probe.load_into(model, probe_path, scheme, backbone)
    return MapPredictor(model, scheme, float(probe.threshold), probe.method, None, f"zero-shot probe {probe_path}")


def supervised_predictor(
    path: PathLike,
    device: str = "cpu",
    tile: int = 512,
    workers: int = 0,
    cache: PathLike | None = None,
    *,
    open_bundle: BundleOpener | None = None,
) -> Predictor:
    """A structure model written by ``resm finetune``, loaded once; its file names the mapping
    scheme (name and table hash, checked here). A pair-head model folds in batches with
    ``workers`` processes for its priors (0: one per CPU core); a 2-D head model decodes its
    map at the stored threshold. ``cache``: a folder where the thermodynamic priors are stored
    and found again (:func:`resm.structure.priors.cached_prior`; the same folder serves
    ``resm evaluate --bpp-cache`` and training's ``data.bpp_cache``). A bundle folder
    (``out_dir/model`` of ``resm finetune``) gives its structure head, opened by
    ``open_bundle`` (:data:`BundleOpener`); without one a bundle is a one-line BundleError."""
    from ..backbone.adapters import BundleError, head_for, is_bundle
    from .model import load_structure_model

    if is_bundle(path):  # a trained bundle (out_dir/model of `resm finetune`): its structure head
        if open_bundle is None:
            raise BundleError(f"{path}: a model bundle, and no bundle reader was handed to the structure predictor")
        tm, entries, scheme = open_bundle(path)
        name = head_for(path, entries, "structure")
        return bundle_predictor(path, tm.to(device).eval(), entries, scheme, name, tile, workers, cache)
    model, meta = load_structure_model(path)
    return model_predictor(
        model.to(device).eval(),
        meta,
        workers=workers,
        cache=cache,
        tile=tile,
        source=f"structure model {path}",
        where=str(path),
    )


def model_predictor(
    model,
    meta: dict,
    *,
    workers: int = 0,
    cache: PathLike | None = None,
    tile: int = 512,
    source: str = "",
    where: str = "structure model",
) -> Predictor:
    """The predictor of a loaded structure model and its file's ``meta`` (the scheme checked
    against it, errors naming ``where``), decoding as the file says."""
    scheme = get_scheme(meta["scheme"])
    scheme.check(meta, where=where)
    return PREDICTORS[model.kind].for_model(model, meta, scheme, workers=workers, cache=cache, tile=tile, source=source)


def bundle_predictor(
    folder, model, entries: dict, scheme: Scheme, head: str, tile: int = 512, workers: int = 0, cache=None
) -> Predictor:
    """The structure head ``head`` of a loaded bundle (:func:`resm.tasks.base.load_bundle`: one
    encoder with its adapter, several heads) as a predictor: the encoder's embeddings go
    through the head (:class:`resm.structure.model.HeadOfBundle`), decoded as the settings
    stored with the head say (the predictor of its kind, :data:`PREDICTORS`)."""
    from ..backbone.adapters import BundleError
    from .model import HeadOfBundle

    net = HeadOfBundle(model, head)
    if getattr(net.head.cfg, "use_attention", False):
        raise BundleError(
            f"{folder}: structure head {head!r} reads attention maps, which a bundle's encoder "
            "does not pass on; fold with a structure_model.pt instead"
        )
    settings = entries[head].get("extra", {})
    return PREDICTORS[net.kind].for_model(
        net, settings, scheme, workers=workers, cache=cache, tile=tile, source=f"bundle {folder} (head {head})"
    )
