"""One trained model folder for every command: a bundle (``out_dir/model`` of ``resm
finetune``: adapter, one file per head, ``manifest.json``; :func:`resm.tasks.base.save_bundle`)
as ``resm fold --model DIR``, ``resm interact --model DIR``, ``resm predict --task mrl --model
DIR`` and the Python API read it:

>>> bundle = resm.load_bundle("runs/shared/model")     # doctest: +SKIP
>>> bundle.heads                                        # doctest: +SKIP
{'structure': 'structure', 'rri': 'rri', 'mrl': 'mrl'}
>>> (scan,) = bundle.interact([("UGGAAUGUAAAGAAGUAUGUAU", "ACAUUCCAGCUAGC" * 20)])  # doctest: +SKIP
>>> scan                                                # doctest: +SKIP
PairScan(score=0.6214, sites=5, n_windows=(1, 13))
>>> bundle.predict_mrl(["GGGACAUCGAUCGAUGCAUGC"]).shape  # doctest: +SKIP
(1,)
>>> folded = bundle.fold_one("GGGGAAACCCC")             # doctest: +SKIP
>>> len(folded.dotbracket), folded.dense().shape        # doctest: +SKIP
(11, (11, 11))

(``bundle.fold(records)`` and ``bundle.fold_one(seq)`` are those of a
:class:`resm.structure.predictor.Predictor`, giving the same :class:`resm.structure.predictor.Folded`.)

A command whose head the bundle lacks gets one line naming the bundle and the missing head
(:class:`BundleError`); a bundle made for another backbone (checksum) or mapping scheme is
refused at loading, naming the bundle.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .config import check_switches
from .tasks.base import BundleError, head_for, is_bundle, open_bundle

if TYPE_CHECKING:
    from .structure.predictor import Folded

__all__ = ["Bundle", "BundleError", "load_bundle", "is_bundle"]


# the method that reads a task's head, named when the bundle lacks it (the commands' names are
# resm.backbone.adapters.COMMANDS)
METHODS = {"structure": "Bundle.fold", "rri": "Bundle.interact", "mrl": "Bundle.predict_mrl"}


@dataclass(repr=False)
class Bundle:
    """A loaded bundle: one encoder (backbone + adapter) and its heads, on ``device``. Its
    ``repr`` is one line: the folder, the heads (name -> task), the scheme and the device."""

    folder: Path
    model: Any  # resm.tasks.base.TaskModel
    entries: dict[str, dict]
    scheme: Any
    device: str = "cpu"

    @property
    def heads(self) -> dict[str, str]:
        """Head name -> task."""
        return {n: e["task"] for n, e in self.entries.items()}

    def head(self, task: str) -> str:
        """The name of the head serving ``task`` (``"rri"``, ``"mrl"``, ``"structure"``); a
        one-line :class:`BundleError` naming the bundle and the method that needs the head
        when it holds none."""
        return head_for(self.folder, self.entries, task, METHODS)

    def __repr__(self) -> str:
        scheme = getattr(self.scheme, "name", self.scheme)
        return f"Bundle(folder={str(self.folder)!r}, heads={self.heads!r}, scheme={scheme!r}, device={self.device!r})"

    def interact(self, pairs: Iterable, scan=None, progress: bool = False) -> list:
        """Scan ``pairs`` (``(a, b)`` sequences, ``(a_name, a, b_name, b)`` or
        :class:`resm.data.rri.Pair`) with the interaction head: one
        :class:`resm.tasks.rri_sites.PairScan` each (score, sites with their duplexes).
        Partners up to :data:`resm.tasks.rri_sites.MAX_PARTNER` nt; a longer one, or a symbol
        that is no nucleotide, is a one-line error naming the record. ``scan``: a
        :class:`resm.tasks.rri_sites.ScanOptions` (window, stride, sites kept; None: the head's
        trained length, half-window steps; a bad field is a one-line ConfigError naming it,
        ``scan.window: must be >= 0 ...``); ``progress``: a bar on stderr counting pairs
        (``scan``'s own when given)."""
        from dataclasses import fields

        from .commands.common import option_problem
        from .config import ConfigError
        from .data.rri import Pair
        from .mapping import MappingError
        from .nucleotides import normalise
        from .tasks.rri_sites import MAX_PARTNER, ScanOptions, scan_pairs

        check_switches({"progress": progress})
        if scan is not None:  # held to the rules of resm interact's --window, --stride, ..., named as fields of scan
            given = {f.name: getattr(scan, f.name) for f in fields(scan)}
            problem = option_problem(given, lambda key: f"scan.{key}")
            if problem:
                raise ConfigError(problem)
        name = self.head("rri")
        max_length = int(self.entries[name]["config"]["max_length"])
        if scan is not None:  # the window and stride against the head's length, named as fields of scan
            scan.resolved(max_length, lambda key: f"scan.{key}")
        items = []
        from .records import caller_id, iterable, refuse_unordered

        what = "(a, b) or (a_name, a, b_name, b) pairs"
        if isinstance(pairs, (str, bytes, bytearray, Mapping)):  # iterated, a str's letters were taken as pairs
            raise TypeError(f"pairs: expected {what} in a list, got one {type(pairs).__name__}")
        # the scans come back by place, named nowhere: a set's order changes from run to run
        refuse_unordered(pairs, "pairs", "pairs", "the scans could not be matched to them", "give a list")
        for k, p in enumerate(iterable(pairs, "pairs", what), 1):
            if isinstance(p, (str, bytes, bytearray)):  # "ACGU" was the pair ('A', 'C', 'G', 'U'): C against U
                raise BundleError(f"pair {k}: expected (a, b) or (a_name, a, b_name, b), got one {type(p).__name__}")
            if not isinstance(p, Pair):
                t = tuple(p)
                if len(t) not in (2, 4):
                    raise BundleError(f"pair {k}: expected (a, b) or (a_name, a, b_name, b), got {len(t)} items")
                an, a, bn, b = (f"a{k}", t[0], f"b{k}", t[1]) if len(t) == 2 else t
                try:
                    an, bn = caller_id(an), caller_id(bn)  # None was the partner named 'None'
                    a, b = normalise(a, an), normalise(b, bn)
                except MappingError as e:
                    raise BundleError(f"pair {k}: {e}") from None
                p = Pair(an, a, bn, b, None, k)
            for nm, s in ((p.a_name, p.a), (p.b_name, p.b)):
                if len(s) > MAX_PARTNER:
                    raise BundleError(f"pair {k}: {nm!r} has {len(s)} nt, longer than the {MAX_PARTNER} nt supported")
                self.scheme.encode(s, f"pair {k}: {nm}")
            items.append(p)
        opts = scan or ScanOptions(progress=progress)
        return scan_pairs(self.model, name, self.scheme, items, max_length, opts, self.device)

    def predict_mrl(self, seqs: Sequence[str] | dict[str, str], progress: bool = False) -> np.ndarray:
        """Predicted mean ribosome load of each UTR of ``seqs`` (a list, or a mapping of id to
        UTR; one str: one UTR; any length up to :data:`resm.tasks.mrl.MAX_UTR` nt), in the training
        target's units; ``progress``: a bar on stderr counting UTRs."""
        from .mapping import MappingError
        from .nucleotides import normalise
        from .tasks.mrl import MAX_UTR, mrl_scale, predict_mrl

        name = self.head("mrl")
        from .records import iterable, refuse_unordered

        check_switches({"progress": progress})
        if isinstance(seqs, (str, bytes, bytearray)):  # one UTR, as fold_one takes one (not one per letter or byte)
            seqs = [seqs]
        iterable(seqs, "seqs", "UTR sequences, or a mapping of id to UTR")
        # the predictions come back in the set's order, which changes from run to run
        refuse_unordered(
            seqs,
            "seqs",
            "UTRs",
            "the predictions could not be matched to them",
            "give a list, or a mapping of id to UTR",
        )
        # a mapping other than a dict (MappingProxyType, a read-only view) was iterated as its ids: "a" was a UTR
        named = list(seqs.items()) if isinstance(seqs, Mapping) else [(f"utr{k}", s) for k, s in enumerate(seqs, 1)]
        clean = []
        for n, s in named:
            try:
                s = normalise(s, n)
            except MappingError as e:
                raise BundleError(str(e)) from None
            if len(s) > MAX_UTR:
                raise BundleError(f"{n}: {len(s)} nt, longer than the {MAX_UTR} nt supported")
            self.scheme.encode(s, n)
            clean.append(s)
        mean, std = mrl_scale(self.entries[name], self.folder)
        return predict_mrl(self.model, self.scheme, clean, mean, std, 128, self.device, name, progress=progress)

    def predictor(self, turner_scale: float | None = None):
        """The structure head as a :class:`resm.structure.predictor.Predictor` (what ``resm
        fold`` folds with); ``turner_scale``: a pair head's stored decoding with the
        Turner-corrected step at this scale (as ``resm fold --model DIR --turner-scale`` and
        ``resm.load_predictor(turner_scale=)``: a bad value is a one-line FoldError naming the
        keyword, as is a dense-map head (:func:`resm.structure.predictor_loading.override_decoding`); None:
        as stored)."""
        from .commands.common import option_problem
        from .config import keyword
        from .structure.io import FoldError
        from .structure.predictor_loading import bundle_predictor, override_decoding

        problem = option_problem({"turner_scale": turner_scale}, keyword)
        if problem:
            raise FoldError(problem)
        pred = bundle_predictor(self.folder, self.model, self.entries, self.scheme, self.head("structure"))
        return override_decoding(pred, {"turner_scale": turner_scale}, keyword)

    def fold(self, records: Iterable, *, turner_scale: float | None = None, **kw) -> Iterator[Folded]:
        """:meth:`resm.structure.predictor.Predictor.fold` with the bundle's structure head: one
        :class:`resm.structure.predictor.Folded` per record of ``records`` (``(id, sequence)``
        pairs, a mapping of id to sequence, or a list of sequences), lazily, in input order
        (``turner_scale`` as :meth:`predictor`; ``kw``: the other keyword arguments of
        ``Predictor.fold``)."""
        return self.predictor(turner_scale).fold(records, **kw)

    def fold_one(self, seq: str, name: str = "seq", *, turner_scale: float | None = None, **kw) -> Folded:
        """:meth:`resm.structure.predictor.Predictor.fold_one` with the bundle's structure head:
        the :class:`resm.structure.predictor.Folded` of ``seq``, named ``name`` (``turner_scale``
        as :meth:`predictor`; ``kw`` as :meth:`fold`)."""
        return self.predictor(turner_scale).fold_one(seq, name, **kw)


def load_bundle(
    model: str | os.PathLike, backbone: str | None = None, device: str = "cpu", trust: bool = False
) -> Bundle:
    """A :class:`Bundle` from the folder ``model``; ``backbone`` overrides the one its manifest
    records (its checksum must match). Errors (no such folder, another backbone or scheme, a file
    that does not read) are one line naming the bundle (:func:`resm.tasks.base.open_bundle`)."""
    net, entries, scheme = open_bundle(model, backbone=backbone, trust=trust)
    return Bundle(Path(model), net.to(device).eval(), entries, scheme, device)
