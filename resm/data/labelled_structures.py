"""Labelled secondary structures for training: the data side of the ``structure`` task.

* :class:`StructureDataConfig`: the ``data`` section (files, crops, batching, priors, family
  hold-out);
* :func:`load_records`: structure files (or ArchiveII's CSV) -> records that map under a scheme;
* :func:`family_split`: whole families held out of training (a second validation set), the
  families read from a FASTA such as the Rfam seed sequences;
* :class:`StructureStream`: deterministic, resumable, sharded batches of (cropped) records;
* :func:`collate`: a padded batch for the dense 2-D head; the pair head builds its candidate
  batches with :func:`resm.heads.pairs.collate_candidates`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..alphabet import pad_batch
from ..config import ConfigError, PathText, from_dict
from ..fasta import FastaError, read_fasta, token_batches
from ..mapping import MappingError, Scheme
from ..nucleotides import UNKNOWN_BASE, normalise_lenient, rna_codes
from ..structure.io import Structure, read_structures
from ..structure.pairsets import PairRecord, PairSet
from ..utils.paths import no_such
from ..utils.seeds import SEED_RULE, seed_ok
from .stream import EpochStream, digest_of

__all__ = [
    "StructureDataConfig",
    "Item",
    "crop",
    "load_records",
    "load_training_records",
    "family_split",
    "split_training_records",
    "StructureStream",
    "collate",
]

_EXTRA = 2  # BOS + EOS


MAX_REPEAT = 1000  # data.train's {file, repeat}: each copy of each record is listed in memory


@dataclass
class StructureDataConfig:
    """Labelled structures for the ``structure`` task.

    Attributes:
        train: structure file of the training set (dbn, bpseq, ct, pairs, ArchiveII's CSV, or a
            PDB pair table ``.tsv`` such as ``{data_dir}/ss/pdb/TR1.tsv``,
            :mod:`resm.structure.pairsets`; ``.gz`` ok), e.g.
            ``{data_dir}/ss/bprna/TR0.dbn``. Held in memory. Several sets train together when
            it is a list whose entries are files or ``{file: F, repeat: N, pos_weight: W}`` (F's
            records N times an epoch, N in [1, :data:`MAX_REPEAT`]: a small set such as PDB TR1
            beside bpRNA TR0; W, optional, a finite number > 0: the weight of the paired term of
            the loss on F's records, in place of
            ``loss.pos_weight``; pair head only), e.g.
            ``[TR0.dbn, {file: TR1.tsv, repeat: 10, pos_weight: 2}]``; ``max_train`` then caps
            each file.
        val: structure file of the validation set (e.g. ``VL0.dbn``); None: no validation
            (the decoding threshold then stays 0.5).
        max_length: training records longer than this are randomly cropped, each epoch anew,
            to a window [s, s + max_length); only pairs with both ends inside it are kept.
            Validation records are never cropped.
        max_train: use only the first N training records after a shuffle seeded by ``seed``
            (None: all).
        max_val: the same cap for validation records.
        tokens_per_batch: token budget of a batch: count x (longest + 2) stays within it
            (records sorted by length, so batches hold similar lengths). Also used for
            validation batches.
        use_bpp: give the 2-D head a ViennaRNA base-pair-probability channel (``rnafold_bpp``
            of each whole record, computed the first time the record is used and then kept in
            memory, fp16; a crop reads the matching window). Above the head's
            ``bpp_local_above`` the channel is the local (RNAplfold-style) one.
        priors: the pair priors of the pair head, a list of
            :class:`resm.structure.priors.PriorConfig` settings (default: one, EternaFold
            through LinearPartition, beam 100). Computed for every record before training
            (``workers`` processes), kept in memory; a crop reads the matching window.
        bpp_cache: optional folder where the priors (dense or sparse) are also stored, one file
            per sequence and prior setting, written atomically, and read back by later runs,
            e.g. the nine family folds of ArchiveII, which share their records.
        workers: processes that compute the priors (0: one per CPU core).
        families / family_holdout: hold out whole families for a second validation set: each
            training record whose sequence is in the FASTA ``families`` (headers
            ``>FAMILY|id``, e.g. the Rfam seed sequences) takes that family; a seeded
            ``family_holdout`` share of the families moves out of training into the
            family validation set. Pair head only.
        pdb_pairs: which pairs of a PDB pair table (``.tsv``) are the targets: ``canonical``
            (AU, GC, GU; the only pairs the pair head's candidates hold) or ``all``
            (non-canonical pairs too). Base multiplets are kept either way: a base may be the
            target of several pairs.
        val_sets: more validation sets by name, e.g. ``{vl1: "{data_dir}/ss/pdb/VL1.tsv"}``
            (any structure file; a pair table is read with ``pdb_pairs``; each capped at
            ``max_val``): scored at every validation and, with ``select_on``, in the decoding
            choice, so that no single annotation source decides it. Pair head only.
        select_on: which validation sets the decoding (pair head: MEA gamma, prior weight,
            pseudoknots) is chosen on, by the mean of their F1: ``val``, ``family``, ``both``
            (val and family), ``all`` (val, family and every ``val_sets`` entry) or a list of
            their names (e.g. ``[val, family, vl1]``).
        density_tolerance: the pair density's part in that choice: of the decodings whose
            mean F1 is within this of the best, the one whose predicted/reference pair ratios
            on those sets are nearest 1 is taken (0: F1 alone).
        seed: seed of the record subsets, crops and batch order.
        split: a fold table (``fold_name, fold_number, partition, id``; e.g. ArchiveII's
            ``split_famfold.csv``) selecting records of ``train`` by id; needs ``fold``.
        fold: the fold to train: its ``train`` partition is the training set and its
            ``valid`` partition the validation set (from ``val`` if given, else from
            ``train``). Its ``test`` partition is never read here (``resm evaluate structure
            --dataset archiveii-famfold``).
    """

    train: Any = ""
    val: PathText | None = None
    max_length: int = 200
    max_train: int | None = None
    max_val: int | None = 200
    tokens_per_batch: int = 2048
    use_bpp: bool = False
    priors: list[dict[str, Any]] | None = None
    bpp_cache: PathText | None = None
    workers: int = 0
    families: PathText | None = None
    family_holdout: float = 0.0
    pdb_pairs: str = "canonical"
    val_sets: dict[str, str] | None = None
    select_on: Any = "both"
    density_tolerance: float = 0.0
    seed: int = 0
    split: PathText | None = None
    fold: str | None = None

    def train_files(self) -> list[tuple[str, int, float | None]]:
        """``[(file, repeat, pos_weight)]`` of ``train`` (pos_weight None: ``loss.pos_weight``)."""
        entries = self.train if isinstance(self.train, list) else [self.train]
        out = []
        for k, e in enumerate(entries):
            if isinstance(e, str) and e:
                out.append((e, 1, None))
            elif (
                isinstance(e, dict)
                and set(e) <= {"file", "repeat", "pos_weight"}
                and isinstance(e.get("file"), str)
                and e["file"]
                and isinstance(e.get("repeat", 1), int)
                and not isinstance(e.get("repeat", 1), bool)  # true was a repeat of 1
                and 1 <= e.get("repeat", 1) <= MAX_REPEAT  # 10**11 ran out of memory listing the copies
            ):
                w = e.get("pos_weight")
                ok = isinstance(w, (int, float)) and not isinstance(w, bool) and 0 < w < math.inf
                if w is not None and not ok:  # .inf was taken: an infinite loss on every pair
                    raise ConfigError(f"data.train[{k}].pos_weight must be a finite number > 0, got {w!r}")
                out.append((e["file"], int(e.get("repeat", 1)), None if w is None else float(w)))
            else:
                raise ConfigError(
                    f"data.train[{k}]: expected a file or "
                    f"{{file: F, repeat: N in [1, {MAX_REPEAT}], pos_weight: W > 0}}, got {e!r}"
                )
        return out

    def selection(self) -> list[str]:
        """The names of the validation sets the decoding is chosen on (``select_on``)."""
        if isinstance(self.select_on, list):
            return list(self.select_on)
        return {
            "val": ["val"],
            "family": ["family"],
            "both": ["val", "family"],
            "all": ["val", "family", *(self.val_sets or {})],
        }[self.select_on]

    def __post_init__(self):
        if not self.train:
            raise ConfigError("data.train: give the training structure file")
        if not seed_ok(self.seed):
            raise ConfigError(f"data.seed {SEED_RULE}, got {self.seed!r}")
        self.train_files()  # checks a list's entries
        if self.split and not isinstance(self.train, str):
            raise ConfigError("data.split selects records of one training file: give data.train as one file")
        if bool(self.split) != bool(self.fold):
            raise ConfigError("data.split (fold table) and data.fold go together")
        if self.max_length < 8:
            raise ConfigError(f"data.max_length must be >= 8, got {self.max_length}")
        if self.tokens_per_batch < self.max_length + _EXTRA:
            raise ConfigError(
                f"data.tokens_per_batch {self.tokens_per_batch} cannot hold one crop of "
                f"max_length {self.max_length} (+2 for BOS/EOS)"
            )
        if not 0.0 <= self.family_holdout < 1.0:
            raise ConfigError(f"data.family_holdout must be in [0, 1), got {self.family_holdout}")
        if self.family_holdout > 0 and not self.families:
            raise ConfigError(
                f"data.family_holdout {self.family_holdout:g} holds out families of data.families, which is not "
                "given: give data.family_holdout=0 too (no family-held-out validation set), or data.families "
                "(a FASTA of >FAMILY|id records)"
            )
        if self.families and not self.family_holdout > 0:
            raise ConfigError(
                f"data.families {self.families} is read to hold out a share of its families, and "
                "data.family_holdout is 0: give data.families=null, or data.family_holdout in (0, 1)"
            )
        if self.pdb_pairs not in ("canonical", "all"):
            raise ConfigError(f"data.pdb_pairs must be canonical or all, not {self.pdb_pairs!r}")
        if self.val_sets is not None:
            if not isinstance(self.val_sets, dict) or not all(
                isinstance(k, str) and isinstance(v, str) and v for k, v in self.val_sets.items()
            ):
                raise ConfigError("data.val_sets must map names to structure files, e.g. {vl1: path/VL1.tsv}")
            clash = sorted(set(self.val_sets) & {"train", "val", "family", "both", "all"})
            if clash:
                raise ConfigError(f"data.val_sets: {clash[0]!r} is a reserved name (train, val, family, both, all)")
        known = ["val", "family", *(self.val_sets or {})]
        if isinstance(self.select_on, list):
            bad = [x for x in self.select_on if x not in known]
            if bad or not self.select_on:
                first = bad[0] if bad else "[]"
                raise ConfigError(f"data.select_on: {first!r} is not a validation set; known: {known}")
        elif self.select_on not in ("val", "family", "both", "all"):
            raise ConfigError(
                f"data.select_on must be val, family, both, all or a list of {known}, not {self.select_on!r}"
            )
        if not 0.0 <= self.density_tolerance < 1.0:
            raise ConfigError(f"data.density_tolerance must be in [0, 1), got {self.density_tolerance}")
        if self.workers < 0:
            raise ConfigError(f"data.workers must be >= 0, got {self.workers}")
        if self.bpp_cache is not None:
            from ..structure.priors import check_cache_folder
            from ..utils.paths import OutputError

            try:
                check_cache_folder(self.bpp_cache, "data.bpp_cache")
            except OutputError as e:
                raise ConfigError(str(e)) from None
        if self.priors is not None:
            from ..structure.priors import PriorConfig

            if not isinstance(self.priors, list) or not self.priors:
                raise ConfigError("data.priors must be a non-empty list of prior settings (e.g. [{kind: eternafold}])")
            for k, p in enumerate(self.priors):
                from_dict(PriorConfig, p, f"data.priors[{k}]")
        for k in ("max_train", "max_val"):
            v = getattr(self, k)
            if v is not None and v < 1:
                raise ConfigError(f"data.{k} must be >= 1 or null, got {v}")


@dataclass
class Item:
    """One (possibly cropped) training or validation example."""

    key: tuple[str, int]  # (split, record index): the prior cache key
    name: str
    seq: str  # the window's sequence
    pairs: np.ndarray | PairSet  # partners inside the window (-1: unpaired or partner outside), or
    # the window's pair set (a PDB record, where a base may sit in several pairs)
    start: int  # window start in the full record
    tokens: np.ndarray  # mapped token ids of the window
    nuc: np.ndarray  # codes 0..4 of the window


def crop(rec: Structure | PairRecord, start: int, stop: int) -> tuple[str, np.ndarray | PairSet]:
    """Sequence and partner array (or pair set) of the window [start, stop); pairs leaving it
    are dropped."""
    if isinstance(rec.pairs, PairSet):
        return rec.seq[start:stop], rec.pairs.window(start, stop)
    p = rec.pairs[start:stop] - start
    p[(p < 0) | (p >= stop - start)] = -1
    return rec.seq[start:stop], p


def load_records(
    path: str, scheme: Scheme, cap: int | None, seed: int, keep: set | None = None, pdb_pairs: str = "canonical"
) -> tuple[list[Structure | PairRecord], list[np.ndarray], int]:
    """Records of ``path`` that map under ``scheme`` (only ids in ``keep`` when given; first
    ``cap`` after a seeded shuffle), their token ids, and the number skipped. A PDB pair table
    (``.tsv``) gives :class:`PairRecord` with its ``pdb_pairs`` view (canonical or all)."""
    if str(path).lower().endswith(".tsv"):
        from ..structure.pairsets import read_pair_table

        recs = read_pair_table(path)
        if pdb_pairs == "canonical":
            recs = [r.canonical() for r in recs]
    elif str(path).lower().endswith(".csv"):  # ArchiveII's id,sequence,len,structure,base_pairs
        from ..structure.io import read_archiveii_csv

        recs = list(read_archiveii_csv(path))
    else:
        recs = list(read_structures(path))
    if keep is not None:
        recs = [r for r in recs if r.name in keep]
        if not recs:
            raise ConfigError(f"{path}: no record is in the selected fold partition")
    if cap is not None and cap < len(recs):
        order = np.random.default_rng([seed, 7]).permutation(len(recs))[:cap]
        recs = [recs[i] for i in sorted(order)]
    kept, ids, skipped = [], [], 0
    for r in recs:
        try:
            if not r.seq:
                raise MappingError(f"record {r.name!r}: no sequence")
            ids.append(scheme.encode(r.seq, r.name))
            kept.append(r)
        except MappingError:
            skipped += 1
    if not kept:
        raise ConfigError(f"{path}: no usable structure records ({skipped} skipped)")
    return kept, ids, skipped


def load_training_records(
    cfg: StructureDataConfig, scheme: Scheme, keep: set | None = None
) -> tuple[list[Structure | PairRecord], list[np.ndarray], int, list[float | None]]:
    """The training records of every ``data.train`` file (:func:`load_records`, each capped at
    ``max_train``), each file's records ``repeat`` times, in the order given; with each
    record's file ``pos_weight`` (None: ``loss.pos_weight``)."""
    recs, ids, skipped, weights = [], [], 0, []
    for path, repeat, pos_weight in cfg.train_files():
        r, i, s = load_records(path, scheme, cfg.max_train, cfg.seed, keep, cfg.pdb_pairs)
        recs += r * repeat
        ids += i * repeat
        weights += [pos_weight] * (len(r) * repeat)
        skipped += s
    return recs, ids, skipped, weights


def split_training_records(
    cfg: StructureDataConfig, scheme: Scheme, keep: set | None = None
) -> tuple[list, list, list, list, dict[str, int], int, list[float | None]]:
    """The training records with ``data.family_holdout`` applied: ``(train, train_ids, held,
    held_ids, counts, skipped, train_pos_weights)``. The held-out families are drawn (:func:`family_split`) from
    the families of every file's whole record list, before ``max_train`` caps what each file
    keeps for training, so that a capped run holds out exactly the families an uncapped run on
    the same files holds out (a model fine-tuned from one trained on the whole file is then
    validated on families neither saw). ``held``: the held-out records in file order, each
    once; the training records are capped and repeated as :func:`load_training_records` does."""
    files = [
        (load_records(path, scheme, None, cfg.seed, keep, cfg.pdb_pairs), rep, w) for path, rep, w in cfg.train_files()
    ]
    every = [r for (recs, _, _), _, _ in files for r in recs]
    _, out, counts = family_split(every, cfg.families, cfg.family_holdout, cfg.seed)
    held_at, k = set(out), 0
    train, train_ids, held, held_ids, skipped, weights = [], [], [], [], 0, []
    for (recs, ids, s), rep, w in files:
        skipped += s
        mine = []
        for r, t in zip(recs, ids):
            if k in held_at:
                held.append(r)
                held_ids.append(t)
            else:
                mine.append((r, t))
            k += 1
        if cfg.max_train is not None and cfg.max_train < len(mine):
            order = np.random.default_rng([cfg.seed, 7]).permutation(len(mine))[: cfg.max_train]
            mine = [mine[i] for i in sorted(order)]
        train += [r for r, _ in mine] * rep
        train_ids += [t for _, t in mine] * rep
        weights += [w] * (len(mine) * rep)
    return train, train_ids, held, held_ids, counts, skipped, weights


# what training on structures of one's own needs, where the config holds out families of bpRNA's
# TR0 (configs/finetune/structure.yaml): said by the error a user meets first
OWN_DATA = "to train on structures of your own, give data.families=null data.family_holdout=0 together"


def family_split(
    records: Sequence[Structure], families_fasta: str, fraction: float, seed: int
) -> tuple[list[int], list[int], dict[str, int]]:
    """Indices of the records kept for training and of those held out, by family.

    A record takes the family of an identical sequence in ``families_fasta`` (FASTA whose
    headers start ``>FAMILY|``; gzip ok); a seeded ``fraction`` of the families found is held
    out (all their records); records of no known family stay in training. Returns ``(train,
    held_out, counts)`` with counts of records matched, families and families held out."""
    seq_family: dict[str, str] = {}
    try:  # the one FASTA reader (a device, a gzip cut off, bytes that are not UTF-8: one line)
        for rec in read_fasta(families_fasta):
            seq_family.setdefault(normalise_lenient(rec.seq), rec.id.split("|", 1)[0])
    except FastaError as e:
        if isinstance(e.__cause__, FileNotFoundError):
            raise ConfigError(f"data.families: {families_fasta}: {no_such(families_fasta, 'file')}") from None
        raise ConfigError(f"data.families: {e}") from None
    fams = [seq_family.get(normalise_lenient(r.seq)) for r in records]
    known = sorted({f for f in fams if f})
    if not known:
        raise ConfigError(f"data.families: no training sequence is in {families_fasta}; {OWN_DATA}")
    n_out = max(1, int(round(fraction * len(known))))
    held = set(np.random.default_rng([seed, 29]).permutation(known)[:n_out].tolist())
    train = [k for k, f in enumerate(fams) if f not in held]
    out = [k for k, f in enumerate(fams) if f in held]
    return train, out, {"matched": sum(1 for f in fams if f), "families": len(known), "held_out_families": len(held)}


def _pairs_bytes(pairs) -> bytes:
    """A structure's pairs as bytes: a partner array, or a :class:`PairSet`'s (i, j) rows."""
    ij = getattr(pairs, "ij", None)
    return np.asarray(pairs if ij is None else ij, np.int64).tobytes()


class StructureStream(EpochStream):
    """Deterministic, resumable, sharded batches of structure crops held in memory.

    Record k goes to rank ``k % world_size``. An epoch's batches are a pure function of
    ``(seed, epoch, rank)``: records are cropped (windows drawn from that seed), shuffled,
    sorted by length (stable, so ties stay shuffled), cut into token-budget batches and the
    batch order is shuffled. ``state_dict()`` holds the epoch and the batches already yielded;
    after ``load_state_dict`` iteration continues exactly where the saved stream was.
    Iteration is endless (epoch after epoch). A batch is a list of :class:`Item`.
    """

    def __init__(
        self,
        records: list[Structure],
        ids: list[np.ndarray],
        cfg: StructureDataConfig,
        rank: int = 0,
        world_size: int = 1,
    ):
        super().__init__(cfg.seed, rank, world_size)
        self.cfg = cfg
        self.index = [k for k in range(len(records)) if k % world_size == rank]
        if not self.index:
            raise ConfigError(f"rank {rank}/{world_size}: no training records")
        self.records, self.ids = records, ids
        self.codes = {k: rna_codes(records[k].seq, records[k].name) for k in self.index}
        self._digest: str | None = None

    def records_digest(self) -> str:
        if self._digest is None:
            recs = (self.records[k] for k in self.index)
            self._digest = digest_of(b"\0".join([r.name.encode(), r.seq.encode(), _pairs_bytes(r.pairs)]) for r in recs)
        return self._digest

    def iter_epoch(self, epoch: int) -> Iterator[list[Item]]:
        rng = np.random.default_rng([self.cfg.seed, epoch, self.rank, 11])
        items: list[Item] = []
        for k in self.index:
            rec, n, m = self.records[k], len(self.records[k]), self.cfg.max_length
            s = int(rng.integers(0, n - m + 1)) if n > m else 0
            e = min(n, s + m)
            seq, pairs = crop(rec, s, e) if (s, e) != (0, n) else (rec.seq, rec.pairs)
            items.append(Item(("train", k), rec.name, seq, pairs, s, self.ids[k][s:e], self.codes[k][s:e]))
        items = [items[i] for i in rng.permutation(len(items))]
        groups = token_batches([len(it.seq) for it in items], self.cfg.tokens_per_batch, extra=_EXTRA)
        for g in rng.permutation(len(groups)):
            yield [items[i] for i in groups[g]]


def collate(items: list[Item], bpp_of=None) -> dict[str, torch.Tensor]:
    """Padded tensors of a batch: tokens (B, T), nuc (B, L), target (B, L, L), mask (B, L),
    and bpp (B, 1, L, L) when ``bpp_of(item)`` is given."""
    B, L = len(items), max(len(it.seq) for it in items)
    tokens = pad_batch([it.tokens for it in items])
    nuc = torch.full((B, L), UNKNOWN_BASE, dtype=torch.long)
    target = torch.zeros(B, L, L)
    mask = torch.zeros(B, L, dtype=torch.bool)
    bpp = torch.zeros(B, 1, L, L) if bpp_of is not None else None
    for b, it in enumerate(items):
        n = len(it.seq)
        nuc[b, :n] = torch.as_tensor(it.nuc.astype(np.int64))
        mask[b, :n] = True
        if isinstance(it.pairs, PairSet):
            a, c = it.pairs.ij[:, 0], it.pairs.ij[:, 1]
            target[b, a, c] = target[b, c, a] = 1.0
        else:
            i = np.flatnonzero(it.pairs >= 0)
            target[b, i, it.pairs[i]] = 1.0
        if bpp is not None:
            bpp[b, 0, :n, :n] = torch.from_numpy(bpp_of(it).astype(np.float32))
    out = {"tokens": tokens, "nuc": nuc, "target": target, "mask": mask}
    if bpp is not None:
        out["bpp"] = bpp
    return out
