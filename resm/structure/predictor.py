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

Whatever the predictor, ``fold`` yields and ``fold_one`` returns one :class:`Folded` per record
(the structure and the probabilities as decoded, dense or sparse through ``.dense()`` and
``.sparse()``); records are read by :func:`resm.records.name_records`, as
:func:`resm.embed_sequences` reads its sequences.

A trained structure model's predictor is the one its head kind names (:data:`PREDICTORS`,
``head kind -> class``; each class builds itself with ``for_model`` from the model and its stored
settings). Building one from files and options (a ``structure_model.pt``, a bundle's structure
head, a backbone with a probe; ``resm fold``'s options) is :mod:`resm.structure.predictor_loading`'s.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import ClassVar, NamedTuple

import numpy as np

from ..config import UNIT_RULE, keyword, unit_ok
from ..mapping import Scheme
from ..nucleotides import MappingError, normalise
from ..records import name_records, name_seq
from .decode import METHODS, decode, nested_subset, remove_lone_pairs, stored_threshold
from .io import FoldError, Structure
from .probe import predict_pair_probs

__all__ = [
    "Folded",
    "PREDICTORS",
    "PairProbs",
    "Predictor",
    "MapPredictor",
    "PairPredictor",
]

PairProbs = Callable[[str], np.ndarray]
PathLike = str | os.PathLike
# how an error names an option: resm.config.flag (the command line, the default) or
# resm.config.keyword (the Python API)
Namer = Callable[[str], str]
STAGE_LENGTH = 1000  # from this length on, the progress bar names the stage of each record
BATCH_TOKENS = 8192  # nucleotides per batch of the pair head
CHUNK = 256  # records whose priors are computed together (one process pool)


def _output_seq(seq: str, name: str) -> str:
    """The sequence written with a structure: upper-case ACGU with N for unknown bases (as
    decoding reads it); left as given when it is not a nucleotide sequence."""
    try:
        return normalise(seq, name)
    except MappingError:
        return seq


def checked_records(records: Iterable, scheme: Scheme) -> list[tuple[str, str]]:
    """``(name, seq)`` of every record (:func:`name_records`), each checked against ``scheme``
    before any work, so that a bad sequence is an error naming the caller's id (not the
    sequence's place in a batch). A lone sequence is a TypeError (:meth:`Predictor.fold_one`
    folds one)."""
    if isinstance(records, (str, bytes, bytearray)):
        raise TypeError(
            "records must be (id, sequence) pairs, a mapping of id to sequence or a list of sequences, got one "
            f"{type(records).__name__} (fold_one folds a single sequence)"
        )
    out = name_records(records, FoldError)
    for name, seq in out:
        scheme.encode(seq, name)
    return out


def _check_probability(key: str, v) -> None:
    """Keyword ``key``'s value ``v`` (None: not given) held to the rule of its flag
    (``threshold`` as ``resm fold --threshold``, ``min_p`` as ``--bpp-min``:
    :data:`resm.config.UNIT_RULE`): a one-line FoldError naming the keyword."""
    if v is not None and not unit_ok(v):
        raise FoldError(f"{key}: {UNIT_RULE}, got {v!r}" if isinstance(v, str) else f"{key}: {UNIT_RULE}, got {v}")


class Folded(NamedTuple):
    """One folded record, what :meth:`Predictor.fold` yields and :meth:`Predictor.fold_one`
    returns, whatever the model (a ``structure_model.pt``, a bundle's structure head, a zero-shot
    probe): ``structure`` (a :class:`Structure`; with ``noncanonical``, a
    :class:`resm.structure.pairsets.PairRecord`) and ``probs``, the pair probabilities the model
    decoded, as it holds them: a pair-head model's (the shipped one) sparse, a tuple ``(i, j, p)``
    of 0-based candidate pairs, a 2-D head's or a probe's a dense (L, L) map. :meth:`dense` and
    :meth:`sparse` give either form from any model. A pair ``(structure, probs)``:
    ``for structure, probs in predictor.fold(records)`` unpacks it."""

    structure: Structure
    probs: np.ndarray | tuple

    @property
    def name(self) -> str:
        """The record's id."""
        return self.structure.name

    @property
    def seq(self) -> str:
        """The sequence folded (upper case, U for T)."""
        return self.structure.seq

    @property
    def pairs(self):
        """The structure's pairs: a partner array (``pairs[i]``: the 0-based partner of base i,
        -1 when unpaired), or with ``noncanonical`` a :class:`resm.structure.pairsets.PairSet`."""
        return self.structure.pairs

    @property
    def dotbracket(self) -> str:
        """The structure in dot-bracket (pseudoknots as ``[]``, ``{}``...); a structure with
        non-canonical pairs, where a base may sit in several, has none (an AttributeError)."""
        if not isinstance(self.structure, Structure):
            raise AttributeError("dotbracket: a base may sit in several non-canonical pairs; read .pairs.ij")
        return self.structure.dotbracket

    def dense(self) -> np.ndarray:
        """The pair probabilities as a symmetric (L, L) float32 map."""
        from .pair_probs import dense_probs

        P = self.probs
        return P if isinstance(P, np.ndarray) and P.ndim == 2 else dense_probs(P, len(self.seq))

    def sparse(self, min_p: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The pair probabilities as 0-based arrays ``(i, j, p)``, i < j, those above ``min_p``
        (0: every pair listed; :func:`resm.structure.pair_probs.sparse_probs`)."""
        from .pair_probs import sparse_probs

        _check_probability("min_p", min_p)  # NaN listed every pair, 2 none, as --bpp-min refuses them
        return sparse_probs(self.probs, min_p)

    def __repr__(self) -> str:
        P = self.probs
        probs = f"dense {P.shape}" if isinstance(P, np.ndarray) and P.ndim == 2 else f"sparse, {len(P[0])} pairs"
        return f"Folded(structure={self.structure!r}, probs=<{probs}>)"


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

    def _checked(self, records: Iterable, switches: dict[str, object]) -> list[tuple[str, str]]:
        """:meth:`fold`'s ``switches`` (``nested``, ``no_lp``...) each a bool
        (:func:`resm.config.check_switches`), :func:`checked_records`, then the memory check
        ``resm fold`` makes before any work (:func:`resm.utils.memory.require_fold_memory`): a
        caller of the API handing a 100,000-nt sequence gets a one-line MemoryCheckError, not a
        process killed for its memory."""
        from ..config import check_switches
        from ..utils.memory import OVERRIDE_API, require_fold_memory

        check_switches(switches)

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
        progress: bool = False,
        nested: bool = False,
        no_lp: bool = False,
        desc: str = "fold",
    ) -> Iterator[Folded]:
        """Fold ``records`` (``(id, sequence)`` pairs, a mapping of id to sequence,
        :class:`Structure` or FASTA records, or a list of sequences, named ``seq_1``...), lazily,
        yielding one :class:`Folded` (``.structure``, ``.dotbracket``, ``.pairs``, ``.probs``,
        ``.dense()``) per record in input order; every record is checked before any is folded.
        ``progress``: a progress bar on stderr (``desc``: its label). ``threshold`` and
        ``method``: a dense map's decoding (a pair-head model refuses them); ``nested``: no
        pseudoknots; ``no_lp``: no lone pairs; ``noncanonical``: add the model file's
        non-canonical pairs. How each kind decodes: :meth:`MapPredictor._fold`,
        :meth:`PairPredictor._fold`."""
        self._check_decoding(threshold, method)
        switches = {"noncanonical": noncanonical, "progress": progress, "nested": nested, "no_lp": no_lp}
        records = self._checked(records, switches)
        return self._fold(records, threshold, method, noncanonical, progress, nested, no_lp, desc)

    def _check_decoding(self, threshold, method) -> None:
        """:meth:`fold`'s ``threshold`` and ``method``, checked before the records."""
        raise NotImplementedError

    def _fold(
        self,
        records: list[tuple[str, str]],
        threshold: float | None,
        method: str | None,
        noncanonical: bool,
        progress: bool,
        nested: bool,
        no_lp: bool,
        desc: str,
    ) -> Iterator[Folded]:
        """:meth:`fold` of the checked ``records``."""
        raise NotImplementedError

    def fold_one(self, seq: str, name: str = "seq", **kw) -> Folded:
        """One sequence ``seq``, named ``name``: its :class:`Folded`, as :meth:`fold` yields it
        (``kw``: keyword arguments as :meth:`fold`; ``.dense()``: the (L, L) map). A ``name``
        unfit as an id (empty, a control character) is a FoldError naming the keyword (one that
        is no text, a TypeError), where the records' check said 'record 1 has an empty id' or
        'record None: ...' of a call holding no records."""
        from ..fasta import id_problem
        from ..records import caller_id

        try:
            rid = caller_id(name)
        except TypeError:  # 'record None: ...' of a call holding no records
            raise TypeError(f"name: the id must be a str, got {type(name).__name__}") from None
        if (why := "is empty" if not rid else id_problem(rid)) is not None:
            raise FoldError(f"name: {rid!r} {why}")
        (folded,) = self.fold([(name, seq)], **kw)
        return folded


@dataclass(repr=False)
class MapPredictor(Predictor):
    """A dense pair-probability map decoded at a threshold (:meth:`MapPredictor.fold`): a 2-D head
    structure model (``pair_probs`` its tiled inference) or a zero-shot probe (``pair_probs``
    None: the backbone's contact head with the probe loaded). Pairs with ``j - i <= min_loop``
    are never decoded: a 2-D head's own ``min_loop`` (the pairs it masks and learns), else 3."""

    model: object
    scheme: Scheme
    threshold: float
    method: str = "greedy"
    pair_probs: PairProbs | None = None
    source: str = ""
    min_loop: int = 3
    kind: ClassVar[str] = "conv"  # the structure head kind it folds with (PREDICTORS)

    @classmethod
    def for_model(
        cls, model, settings: dict, scheme: Scheme, *, workers: int = 0, cache=None, tile: int = 512, source: str = ""
    ) -> MapPredictor:
        """The predictor of a 2-D head structure model (a :class:`resm.structure.model.StructureModel`
        or a bundle's head, :class:`resm.structure.model.HeadOfBundle`): its tiled inference
        (:func:`resm.structure.model.predict_pairs`, the thermodynamic channel read from and
        stored in ``cache``), decoded greedily at the ``threshold`` of ``settings`` (the file's
        meta or the bundle head's extra; 0.5 when none), over the pairs the head scores (j - i
        above its ``min_loop``). ``workers`` is unused."""
        from .model import predict_pairs

        def pair_probs(seq: str) -> np.ndarray:
            return predict_pairs(model, scheme, seq, tile=tile, bpp_cache=cache)

        threshold = stored_threshold(settings.get("threshold", 0.5), source or "structure model")
        return cls(model, scheme, threshold, "greedy", pair_probs, source, int(model.head.cfg.min_loop))

    def _settings(self) -> dict[str, object]:
        return {"threshold": self.threshold, "method": self.method}

    def decode(self, P: np.ndarray, seq: str, threshold: float | None = None) -> np.ndarray:
        """The partner array of one dense (L, L) map at this predictor's threshold (or
        ``threshold``) and method, canonical pairs only (as :meth:`fold`)."""
        return decode(P, seq, self.threshold if threshold is None else threshold, self.method, min_loop=self.min_loop)

    def _check_decoding(self, threshold, method) -> None:
        _check_probability("threshold", threshold)  # NaN or 2 predicted no pair, True was 1

    def _fold(
        self,
        records: list[tuple[str, str]],
        threshold: float | None,
        method: str | None,
        noncanonical: bool,
        progress: bool,
        nested: bool,
        no_lp: bool,
        desc: str,
    ) -> Iterator[Folded]:
        """Fold ``records`` one at a time, yielding a :class:`Folded` per record in input order,
        at this predictor's threshold and method unless overridden. Every record is checked first
        (:func:`checked_records`).

        ``records``: as :meth:`Predictor.fold` reads them (:func:`name_records`). The
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
        from tqdm.auto import tqdm

        from .pair_probs import dense_probs

        threshold = self.threshold if threshold is None else threshold
        method = method or self.method
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
            pairs = decode(dense, seq, threshold, method, noncanonical, self.min_loop)
            if nested:
                pairs = nested_subset(pairs)
            if no_lp:
                pairs = remove_lone_pairs(pairs)
            if staged:
                bar.set_postfix_str(f"{name} ({len(seq)} nt): done")
            yield Folded(Structure(name, _output_seq(seq, name), pairs), P)


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
        stored = meta.get("decoding")
        stored = {} if stored is None else stored  # an empty list or string is no decoding: refused below
        if not isinstance(stored, dict):
            raise FoldError(f"{where}: its decoding entry is a {type(stored).__name__}, not a mapping of settings")
        try:
            decoding = Decoding.from_dict(stored)
        except ValueError as e:  # a file's bad decoding value: one line naming the file and the key
            raise FoldError(f"{where}: {e}") from None
        try:
            priors = model_priors(meta)
        except ValueError as e:  # a file's bad prior setting: one line naming the file and the key
            raise FoldError(f"{where}: {e}") from None
        wanted = getattr(getattr(getattr(model, "head", None), "cfg", None), "priors", len(priors))
        if wanted != len(priors):  # found by the first batch, after its priors were computed
            raise FoldError(f"{where}: its head reads {wanted} prior(s), its priors entry holds {len(priors)}")
        kw.setdefault("non_canonical", meta.get(KEY))
        return cls(model, scheme, priors, decoding, **kw)

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

    def _check_decoding(self, threshold, method) -> None:
        refuse_dense_decoding(self, threshold, method)

    def _fold(
        self,
        records: list[tuple[str, str]],
        threshold: float | None,
        method: str | None,
        noncanonical: bool,
        progress: bool,
        nested: bool,
        no_lp: bool,
        desc: str,
    ) -> Iterator[Folded]:
        """Yields a :class:`Folded` per record in input order, its ``probs`` ``(i, j, p)``, ``p`` the decoded (blended)
        probabilities of the candidate pairs (``nested``: without the pseudoknot step;
        ``no_lp``: lone pairs removed). The threshold and method switches belong to the greedy
        decoding of dense maps, and are refused. ``noncanonical``: the model file's
        non-canonical scorer (:meth:`non_canonical_scorer`) adds its pairs to each decoded
        structure, which is then a :class:`resm.structure.pairsets.PairRecord` (a base may sit
        in several pairs)."""
        scorer = self.non_canonical_scorer() if noncanonical else None
        out = self._decoded(records, nested, no_lp, progress, desc)
        return out if scorer is None else _with_non_canonical(out, scorer)

    def _decoded(
        self, records: list[tuple[str, str]], nested: bool, no_lp: bool, progress: bool, desc: str
    ) -> Iterator[Folded]:
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
                done: dict[int, Folded] = {}
                for group in token_batches([len(x) for x in seqs], self.batch_tokens, extra=2):
                    for k, item in zip(
                        group,
                        self._batch(
                            [seqs[k] for k in group], [priors[k] for k in group], nested, no_lp, bar if long else None
                        ),
                    ):
                        done[k] = Folded(Structure(block[k][0], seqs[k], item[0]), item[1])
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


def _with_non_canonical(folded: Iterator[Folded], scorer) -> Iterator[Folded]:
    """Each decoded structure with ``scorer``'s non-canonical pairs added (a ``PairRecord``)."""
    from .pairsets import PairRecord

    for rec, P in folded:
        yield Folded(PairRecord(rec.name, rec.seq, scorer.add(rec.seq, rec.pairs, P)), P)


def refuse_dense_decoding(pred: Predictor, threshold, method, name: Namer = keyword) -> None:
    """A one-line FoldError when ``threshold`` or ``method`` is set for ``pred``, a pair-head
    model, whose stored decoding (maximum expected accuracy) has neither: they set the greedy
    decoding of a dense map (a 2-D head or a probe). The options are named as ``name`` does
    (the Python API's keywords; ``resm fold``: its flags)."""
    if threshold is not None or method is not None:
        raise FoldError(
            f"{name('threshold')} and {name('method')} set the greedy decoding of 2-D heads and probes; "
            f"{pred.source or 'this model'} decodes by maximum expected accuracy, as stored in its file"
        )
