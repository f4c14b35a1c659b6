"""The records a Python caller passes, read as ``(name, sequence)`` pairs: ``(id, sequence)``
pairs, a mapping of id to sequence, structures (:class:`resm.structure.io.Structure`), FASTA
records (:class:`resm.fasta.Record`) or bare sequences, the ids held to a file's rules
(:func:`resm.fasta.check_record_ids`). A predictor's ``fold``
(:meth:`resm.structure.predictor.Predictor.fold`) and :func:`resm.embed_sequences` both read
their records here, so both take the same ones. Records are one another by name and sequence:
:func:`validation_is_training`, the warning of a validation set that is the training set
(``resm finetune``'s ``data.val``, ``resm probe``'s ``--val``), compares them so.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, ItemsView, Iterable, KeysView, Mapping, Sequence, Set
from typing import Any

from .fasta import check_record_ids

__all__ = ["iterable", "name_records", "refuse_unordered", "name_seq", "caller_id", "validation_is_training"]

RECORDS = "sequences, (id, sequence) pairs or a mapping of id to sequence"


def iterable(value, keyword: str, what: str):
    """``value`` as an iterable, or a TypeError naming the API's ``keyword`` and what it takes
    (``records: expected sequences, (id, sequence) pairs or a mapping of id to sequence, got
    NoneType``), where Python's own said "'NoneType' object is not iterable", naming nothing."""
    try:
        iter(value)
    except TypeError:
        raise TypeError(f"{keyword}: expected {what}, got {type(value).__name__}") from None
    return value


def name_seq(rec) -> tuple[str, str]:
    """``(name, seq)`` of an ``(id, sequence)`` pair, a structure
    (:class:`resm.structure.io.Structure`) or a FASTA record. The sequence must be text
    (``bytes`` are read as ASCII): anything else is a TypeError naming the record, where
    ``str()`` of it would fold ``"None"`` or ``"b'ACGU'"`` as a sequence."""
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
    name = caller_id(name)
    if isinstance(seq, (bytes, bytearray)):
        seq = bytes(seq).decode("ascii", errors="replace")  # a non-ASCII byte is named by the scheme's check
    if not isinstance(seq, str):
        raise TypeError(f"record {name!r}: the sequence must be a str, got {type(seq).__name__}")
    return name, seq


def caller_id(name) -> str:
    """A record's id as the caller gave it: a str, ``bytes`` read as ASCII (as a sequence's are)
    or an integer written out (a table's row number); anything else is a TypeError naming it,
    where ``str()`` of it named the record ``"None"``, ``"b'r1'"`` or ``"('a', 1)"`` in every
    result and output."""
    if isinstance(name, str):
        return str(name)  # a NumPy str too
    if isinstance(name, (bytes, bytearray)):
        return bytes(name).decode("ascii", errors="replace")
    if isinstance(name, numbers.Integral) and not isinstance(name, bool):
        return str(int(name))
    raise TypeError(f"record {name!r:.40}: the id must be a str, got {type(name).__name__}")


def refuse_unordered(
    values,
    keyword: str,
    what: str = "sequences",
    lost: str = "they cannot be named seq_1, seq_2... the same way twice",
    instead: str = "give a list, or a mapping of id to sequence",
) -> None:
    """A TypeError naming ``keyword`` when ``values`` is a set (a ``set``, a ``frozenset``, any
    :class:`collections.abc.Set` but a mapping's keys or items, which follow the mapping's
    order): its order changes from run to run (string hashing is salted), so results given by
    place (the names ``seq_1``, ``seq_2``..., an array of predictions) could not be matched to
    its members. Every API entry taking sequences by place checks them here."""
    if isinstance(values, Set) and not isinstance(values, (KeysView, ItemsView)):
        raise TypeError(f"{keyword}: a set of {what} has no order, so {lost}; {instead}")


def name_records(
    records: Iterable, error: type[ValueError] = ValueError, keyword: str = "records", what: str = RECORDS
) -> list[tuple[str, str]]:
    """``(name, seq)`` of every record a caller passes: ``(id, sequence)`` pairs, a mapping of id
    to sequence, structures or FASTA records (:func:`name_seq`), or bare sequences (named
    ``seq_1``, ``seq_2``... by their place); the ids held to a file's rules
    (:func:`resm.fasta.check_record_ids`, a one-line ``error``): the results are keyed by id.
    Anything that is not a collection is a TypeError naming ``keyword`` and ``what`` it takes,
    and so is a tuple of two texts, which reads as one ``(id, sequence)`` pair as well as two
    sequences: iterated, ``("my_id", "ACGU")`` folded the id's letters as a sequence ``seq_1``
    (unknown bases for the letters no nucleotide spells) beside ``seq_2``."""
    if isinstance(records, tuple) and len(records) == 2 and all(isinstance(r, (str, bytes)) for r in records):
        raise TypeError(
            f"{keyword}: one tuple of two texts reads as one (id, sequence) pair or as two sequences; "
            "give a list: [(id, sequence)] for one record, [sequence, sequence] for two"
        )
    items = records.items() if isinstance(records, Mapping) else iterable(records, keyword, what)
    out = [name_seq((f"seq_{k}", r) if isinstance(r, (str, bytes, bytearray)) else r) for k, r in enumerate(items, 1)]
    if isinstance(records, Set) and any(isinstance(r, (str, bytes, bytearray)) for r in records):
        refuse_unordered(records, keyword)  # pairs in a set keep their ids
    check_record_ids((name for name, _ in out), error)
    return out


def validation_is_training(
    val: Any,
    val_items: Sequence[Any],
    train_items: Sequence[Any],
    key: Callable[[Any], Any],
    also: str = "",
    name: str = "data.val",
) -> list[str]:
    """A warning when every validation item of the validation file ``val`` (given as ``name``:
    ``data.val`` of a finetuning config, ``resm probe``'s ``--val``) is also a training item
    (``key`` of each, its names and sequences, the same): the validation metrics (and
    ``also``, what is chosen on them) then measure training fit. A warning, not a refusal: the
    run is legal, its figures are only optimistic, and the line says so."""
    if not val or not val_items:
        return []
    seen = {key(x) for x in train_items}
    if not all(key(x) in seen for x in val_items):
        return []
    return [
        f"resm: warning: {name} ({val}): all {len(val_items)} validation record(s) are training records, "
        f"so the validation metrics{also} measure training fit"
    ]
