"""Streaming data for continued masked-language-model pretraining on RNA.

The corpus is one or more FASTA files (plain or gzip), read record by record and never held in
memory. Each record is mapped through a nucleotide -> protein-letter scheme, filtered (bad
symbols, too short, too long, no letter to mask (all N), duplicates), assigned to the train or
validation split by a deterministic hash, sharded over ranks, randomly cropped and grouped into
token-budget batches.

Determinism is the backbone of the design: an epoch's batches are a pure function of
``(config, epoch, rank, world_size)``. Resuming therefore regenerates the epoch and skips the
batches already consumed, which yields exactly what the uninterrupted stream would have yielded.

A batch is a list of int64 token-id arrays (one per sequence, residues only, no BOS/EOS);
``resm.alphabet.pad_batch`` turns it into the model's (B, T) input.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import math
import os
import stat
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Union

import numpy as np
import torch

from ..alphabet import BOS, EOS, MASK, PAD, VOCAB_SIZE
from ..fasta import id_problem, open_text, read_fasta, token_batches
from ..mapping import MappingError, Scheme, get_scheme
from ..nucleotides import rna_codes
from ..utils.paths import no_such
from ..utils.seeds import SEED_RULE, seed_ok

Batch = list[np.ndarray]
PathLike = Union[str, "os.PathLike[str]"]

SPLITS = ("train", "validation")
SKIP_REASONS = ("bad_symbol", "too_short", "too_long", "no_letter", "duplicate")
# BOS + EOS around every sequence in a padded batch.
_EXTRA = 2


@dataclass
class PretrainDataConfig:
    """Data settings of continued MLM pretraining.

    Attributes:
        train: FASTA or FASTA.gz files of the corpus, read in this order.
        scheme: name of the nucleotide -> protein-letter mapping scheme.
        max_length: longest sequence (residues, without BOS/EOS) fed to the model; longer
            training records are randomly cropped to a window of this size (validation
            records are center-cropped).
        min_length: records shorter than this (after mapping) are skipped.
        max_input_length: if set, records longer than this are skipped instead of cropped.
        dedupe: drop exact duplicate sequences (after normalisation: case, T->U, ambiguity
            codes). Only a 16-byte blake2b digest per distinct sequence is kept in memory.
            Duplicates are dropped before the split, so a sequence never lands in both splits.
        val_fraction: fraction of records (or families) held out for validation.
        val_by: "hash" (hash of the record id), "family" (hash of the id's prefix before
            '|', as in Rfam headers ``RF00001|X01556.1/3-119``), "cluster" (hash of the
            record's cluster representative, read from ``clusters``) or "auto" (family for
            ids that contain '|', the id otherwise).
        clusters: with ``val_by: cluster``, a TSV (plain or gzip) of ``representative <TAB>
            member`` rows, e.g. an mmseqs2 cluster table. Every member of a cluster lands in
            the same split; a record missing from the table is its own cluster.
        bad_records: "skip" (count records that fail mapping in ``stats``) or "error"
            (raise MappingError naming the file and record).
        tokens_per_batch: budget of padded tokens per batch (batch size x (longest + 2)).
        max_batch: optional cap on the number of sequences per batch.
        bucket_size: number of records read ahead, sorted by length and cut into batches;
            batch order is shuffled within a bucket.
        seed: seed of crops and batch shuffling (the split does not depend on it).
    """

    train: str | list[str] = field(default_factory=list)
    scheme: str = "kdny"
    max_length: int = 1024
    min_length: int = 10
    max_input_length: int | None = None
    dedupe: bool = True
    val_fraction: float = 0.02
    val_by: str = "auto"
    clusters: str | None = None
    bad_records: str = "skip"
    tokens_per_batch: int = 16384
    max_batch: int | None = None
    bucket_size: int = 2000
    seed: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.train, (str, os.PathLike)):
            self.train = [self.train]
        self.train = [os.fspath(p) for p in self.train]
        if self.max_length < 1:
            raise ValueError(f"max_length must be >= 1, got {self.max_length}")
        if self.min_length < 1:
            raise ValueError(f"min_length must be >= 1, got {self.min_length}")
        if self.min_length > self.max_length:
            raise ValueError(f"min_length {self.min_length} > max_length {self.max_length}")
        if self.max_input_length is not None and self.max_input_length < self.min_length:
            raise ValueError(f"max_input_length {self.max_input_length} < min_length {self.min_length}")
        if not 0.0 <= self.val_fraction <= 1.0:
            raise ValueError(f"val_fraction must lie in [0, 1], got {self.val_fraction}")
        if self.val_by not in ("auto", "hash", "family", "cluster"):
            raise ValueError(f"val_by must be 'auto', 'hash', 'family' or 'cluster', got {self.val_by!r}")
        if (self.val_by == "cluster") != bool(self.clusters):
            raise ValueError(
                "val_by 'cluster' needs a clusters table (data.clusters), and clusters needs val_by 'cluster'"
            )
        if self.clusters is not None:
            self.clusters = os.fspath(self.clusters)
        if self.bad_records not in ("skip", "error"):
            raise ValueError(f"bad_records must be 'skip' or 'error', got {self.bad_records!r}")
        if self.tokens_per_batch < self.max_length + _EXTRA:
            raise ValueError(
                f"tokens_per_batch {self.tokens_per_batch} cannot hold one sequence of "
                f"max_length {self.max_length} (+{_EXTRA} for BOS/EOS)"
            )
        if self.max_batch is not None and self.max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {self.max_batch}")
        if self.bucket_size < 1:
            raise ValueError(f"bucket_size must be >= 1, got {self.bucket_size}")
        if not seed_ok(self.seed):
            raise ValueError(f"seed {SEED_RULE}, got {self.seed!r}")


# ---- split ------------------------------------------------------------------------------
def _unit_hash(key: str) -> float:
    """A stable number in [0, 1) from a string (blake2b, independent of PYTHONHASHSEED)."""
    h = hashlib.blake2b(key.encode("utf-8"), digest_size=8, person=b"resm-split").digest()
    return int.from_bytes(h, "big") / 2.0**64


@functools.lru_cache(maxsize=4)
def read_clusters(path: str) -> dict[str, str]:
    """member -> representative from a ``representative <TAB> member`` TSV, plain or gzip by its
    magic bytes, as every input (:func:`resm.fasta.open_text`: a device such as ``/dev/zero`` was
    read until memory ran out, and a gzip file cut off was an "unexpected" EOFError).

    A malformed line, or a name that no record id can be (:func:`resm.fasta.id_problem`: bytes
    that are not UTF-8 text, a control character), is a ValueError naming the file and line
    number; a file that cannot be read, one naming the file."""
    out: dict[str, str] = {}
    try:
        with open_text(path) as f:
            for n, line in enumerate(f, 1):
                line = line.rstrip("\r\n")
                if not line:
                    continue
                parts = line.split("\t")
                if len(parts) != 2 or not parts[0] or not parts[1]:
                    raise ValueError(f"{path} line {n}: expected 'representative<TAB>member'")
                for name in parts:
                    if (why := id_problem(name)) is not None:
                        raise ValueError(f"{path} line {n}: name {name!r} {why}")
                out[parts[1]] = parts[0]
    except FileNotFoundError:
        raise ValueError(f"{path}: {no_such(path, 'cluster table')}") from None
    except (OSError, EOFError, zlib.error) as e:  # a folder, a device, a damaged or cut-off gzip
        raise ValueError(f"{path}: cannot read ({getattr(e, 'strerror', None) or e})") from None
    return out


def split_key(record_id: str, val_by: str = "auto", clusters: dict[str, str] | None = None) -> str:
    """The string whose hash decides the split of a record: its cluster, family or id."""
    if val_by == "cluster":
        if clusters is None:
            raise ValueError("val_by 'cluster' needs the cluster table")
        return clusters.get(record_id, record_id)
    if val_by == "hash":
        return record_id
    if val_by == "family" or (val_by == "auto" and "|" in record_id):
        return record_id.split("|", 1)[0]
    return record_id


def is_validation(record_id: str, cfg: PretrainDataConfig) -> bool:
    """Whether a record belongs to the validation split (deterministic across runs/ranks)."""
    if cfg.val_fraction <= 0.0:
        return False
    if cfg.val_fraction >= 1.0:
        return True
    table = read_clusters(cfg.clusters) if cfg.val_by == "cluster" else None
    return _unit_hash(split_key(record_id, cfg.val_by, table)) < cfg.val_fraction


# ---- record pipeline ------------------------------------------------------------------
def new_stats() -> dict[str, Any]:
    """An empty statistics dict as kept by PretrainStream."""
    return {
        "read": 0,
        "skipped": dict.fromkeys(SKIP_REASONS, 0),
        "other_split": 0,
        "kept": 0,
        "rank_records": 0,
        "cropped": 0,
        "tokens": 0,
    }


def _encoded(seq: str, scheme: Scheme, record: str) -> tuple[np.ndarray, bytes]:
    """Token ids of a record and the key its duplicates share: the normalised RNA codes
    (A C G U N), which identify the sequence even for many-to-one schemes, read once and mapped
    from there; the identity (protein) scheme is keyed by its token ids."""
    if scheme.kind == "identity":
        ids = scheme.encode(seq, record)
        return ids, ids.tobytes()
    codes = rna_codes(seq, record)
    return scheme.encode_codes(codes), codes.tobytes()


def iter_split_records(
    cfg: PretrainDataConfig, split: str, stats: dict[str, Any] | None = None
) -> Iterator[tuple[str, np.ndarray]]:
    """Stream ``(record_id, token_ids)`` of one split, filtered and deduplicated, uncropped.

    Every rank runs the same pass, so filtering, dedupe and the split agree everywhere.
    ``stats`` (see ``new_stats``) is updated in place.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if not cfg.train:
        raise ValueError("data.train: no training files given (an empty list)")
    stats = new_stats() if stats is None else stats
    skipped = stats["skipped"]
    scheme = get_scheme(cfg.scheme)
    want_val = split == "validation"
    letters = np.asarray(scheme.letter_ids)
    seen: set | None = set() if cfg.dedupe else None
    for path in cfg.train:
        name = os.fspath(path)
        for rec in read_fasta(path):
            stats["read"] += 1
            try:
                ids, key = _encoded(rec.seq, scheme, rec.id)
            except MappingError as e:
                if cfg.bad_records == "error":
                    raise MappingError(f"{name} line {rec.line}: {e}") from e
                skipped["bad_symbol"] += 1
                continue
            n = len(ids)
            if n < cfg.min_length:
                skipped["too_short"] += 1
                continue
            if cfg.max_input_length is not None and n > cfg.max_input_length:
                skipped["too_long"] += 1
                continue
            if not np.isin(ids, letters).any():  # all N: no residue the masking may select
                skipped["no_letter"] += 1
                continue
            if seen is not None:
                d = hashlib.blake2b(key, digest_size=16).digest()
                if d in seen:
                    skipped["duplicate"] += 1
                    continue
                seen.add(d)
            if is_validation(rec.id, cfg) != want_val:
                stats["other_split"] += 1
                continue
            stats["kept"] += 1
            yield rec.id, ids


def center_crop(ids: np.ndarray, max_length: int) -> np.ndarray:
    """The central window of ``max_length`` tokens (the whole array if it is short enough)."""
    n = len(ids)
    if n <= max_length:
        return ids
    start = (n - max_length) // 2
    return ids[start : start + max_length]


def _bucket_batches(lengths: Sequence[int], cfg: PretrainDataConfig) -> list[list[int]]:
    return token_batches(lengths, cfg.tokens_per_batch, cfg.max_batch, extra=_EXTRA)


# ---- training stream ------------------------------------------------------------------
class PretrainStream:
    """Deterministic, resumable, sharded stream of training batches.

    Record k of the training split (counted over records that pass all filters) goes to rank
    ``k % world_size``, so the ranks partition the split. Iterating the stream itself is
    infinite (epoch after epoch); ``iter_epoch(e)`` gives one epoch. ``state_dict()`` records
    the epoch and the batches already yielded in it; after ``load_state_dict`` iteration
    continues with exactly the batch the uninterrupted stream would have yielded next.

    Ranks may get a different number of batches per epoch; with the infinite iterator each
    rank simply moves on to its next epoch, so step-based training never stalls.

    ``stats`` describes the most recent epoch pass (reset whenever one starts): records read,
    skipped by reason, sent to the other split, kept in this split (all ranks), given to
    this rank, cropped, and residue tokens yielded by this rank.
    """

    def __init__(self, cfg: PretrainDataConfig, rank: int = 0, world_size: int = 1, progress: bool = False) -> None:
        if world_size < 1:
            raise ValueError(f"world_size must be >= 1, got {world_size}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must lie in [0, {world_size}), got {rank}")
        self.cfg = cfg
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0
        self.batches_done = 0  # batches of ``self.epoch`` already yielded by __iter__
        self.stats: dict[str, Any] = new_stats()
        self._digests: list[str] | None = None
        self.say_skipped = False  # print the stats of a first epoch that dropped records (stderr)
        self.progress = progress  # bars while the first batch is made (first bucket; a resume's skipped batches)
        get_scheme(cfg.scheme)  # fail early on an unknown scheme
        for path in cfg.train:  # its text came once, then the next epoch's read waited for ever
            with contextlib.suppress(OSError):
                if stat.S_ISFIFO(os.stat(path).st_mode):
                    raise ValueError(
                        f"data.train: {path} is a named pipe, which gives its text once; pretraining "
                        "reads its corpus once per epoch: give a file"
                    )

    # -- records and batches of one epoch --
    def _rng(self, epoch: int, stream: int) -> np.random.Generator:
        return np.random.default_rng([self.cfg.seed, epoch, self.rank, self.world_size, stream])

    def iter_records(self, epoch: int) -> Iterator[tuple[str, np.ndarray]]:
        """``(record_id, cropped token ids)`` of this rank in file order for one epoch."""
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        self.stats = stats = new_stats()
        crop_rng = self._rng(epoch, 0)
        max_len = self.cfg.max_length
        for k, (rid, ids) in enumerate(iter_split_records(self.cfg, "train", stats)):
            if k % self.world_size != self.rank:
                continue
            n = len(ids)
            if n > max_len:
                start = int(crop_rng.integers(0, n - max_len + 1))
                ids = ids[start : start + max_len]
                stats["cropped"] += 1
            stats["rank_records"] += 1
            stats["tokens"] += len(ids)
            yield rid, ids
        if self.say_skipped and epoch == 0 and stats["rank_records"] and any(stats["skipped"].values()):
            import sys

            print(
                f"resm: data.train ({', '.join(map(os.fspath, self.cfg.train))}): epoch 0 dropped records: "
                f"{self.summary()}",
                file=sys.stderr,
                flush=True,
            )

    def iter_epoch(self, epoch: int, with_ids: bool = False, bar=None) -> Iterator[list]:
        """Batches of one epoch: lists of token-id arrays, or of ``(record_id, ids)`` pairs
        with ``with_ids``. Does not touch the resumption state. ``bar`` (a tqdm bar, total
        ``bucket_size``) counts the records read into the first bucket and is closed when its
        batches are made."""
        shuffle_rng = self._rng(epoch, 1)
        bucket: list[tuple[str, np.ndarray]] = []

        def flush() -> Iterator[list]:
            groups = _bucket_batches([len(ids) for _, ids in bucket], self.cfg)
            for g in shuffle_rng.permutation(len(groups)):
                items = [bucket[i] for i in groups[g]]
                yield items if with_ids else [ids for _, ids in items]

        for item in self.iter_records(epoch):
            bucket.append(item)
            if bar is not None:
                bar.update(1)
            if len(bucket) >= self.cfg.bucket_size:
                if bar is not None:
                    bar.close()
                    bar = None
                yield from flush()
                bucket = []
        if bar is not None:
            bar.close()
        if bucket:
            yield from flush()

    def __iter__(self) -> Iterator[Batch]:
        """Endless batches from the saved position on, advancing ``epoch`` as epochs end."""
        from tqdm.auto import tqdm

        first = True
        while True:
            epoch, skip = self.epoch, self.batches_done
            produced = 0
            bar = skipping = None
            if first and skip:  # a resume regenerates the batches already used, to reach its position
                skipping = tqdm(
                    total=skip,
                    desc="resume: data stream to its saved position",
                    unit="batch",
                    leave=False,
                    disable=not self.progress,
                )
            elif first:
                bar = tqdm(
                    total=self.cfg.bucket_size,
                    desc="reading the first training records",
                    unit="rec",
                    leave=False,
                    disable=not self.progress,
                )
            first = False
            for i, batch in enumerate(self.iter_epoch(epoch, bar=bar)):
                produced += 1
                if i < skip:
                    if skipping is not None:
                        skipping.update(1)
                    continue
                if skipping is not None:
                    skipping.close()
                    skipping = None
                self.batches_done = i + 1
                yield batch
            if skipping is not None:
                skipping.close()
            if produced == 0:
                raise ValueError(
                    f"data.train ({', '.join(map(str, self.cfg.train))}): rank {self.rank}/{self.world_size}: "
                    f"epoch {epoch} has no training records (stats: {self.summary()})"
                )
            if produced < skip:
                raise ValueError(
                    f"cannot resume: epoch {epoch} has {produced} batches but the state "
                    f"says {skip} were already yielded (was the data or config changed?)"
                )
            self.epoch, self.batches_done = epoch + 1, 0

    # -- resumption --
    def file_digests(self) -> list[str]:
        """A blake2b digest of each training file's bytes (read once per stream), so a resume
        on changed data is refused instead of continuing on other records."""
        if self._digests is None:
            digests = []
            for path in self.cfg.train:
                h = hashlib.blake2b(digest_size=16)
                with open(path, "rb") as fh:
                    for chunk in iter(lambda fh=fh: fh.read(1 << 23), b""):
                        h.update(chunk)
                digests.append(h.hexdigest())
            self._digests = digests
        return self._digests

    def state_dict(self) -> dict[str, Any]:
        """Position of the stream: epoch and batches already yielded in it, and the digests
        of the files it reads."""
        return {
            "epoch": self.epoch,
            "batches": self.batches_done,
            "seed": self.cfg.seed,
            "rank": self.rank,
            "world_size": self.world_size,
            "files": self.file_digests(),
        }

    def load_state_dict(self, state: dict[str, Any], strict: bool = True) -> None:
        """Restore a position saved by ``state_dict``. With ``strict``, a different seed,
        world size or training file (which would change the batches) is an error."""
        if strict:
            for key, mine in (("seed", self.cfg.seed), ("world_size", self.world_size)):
                if key in state and int(state[key]) != mine:
                    raise ValueError(
                        f"stream state was saved with {key}={state[key]}, this stream has "
                        f"{key}={mine}; the batches would differ (use strict=False to accept)"
                    )
            saved = state.get("files")  # absent in states written before the digests were kept
            if saved is not None:
                mine = self.file_digests()
                for k, path in enumerate(self.cfg.train):
                    if k >= len(saved) or saved[k] != mine[k]:
                        raise ValueError(
                            f"cannot resume: data.train[{k}] {os.fspath(path)} changed since the checkpoint was "
                            "written (its bytes differ); the batches would differ (use a new train.out_dir)"
                        )
        epoch, batches = int(state["epoch"]), int(state["batches"])
        if epoch < 0 or batches < 0:
            raise ValueError(f"invalid stream state {state!r}")
        self.epoch, self.batches_done = epoch, batches

    def summary(self) -> str:
        """One line describing ``stats`` (for logs)."""
        s = self.stats
        skipped = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in s["skipped"].items())
        return (
            f"read {s['read']}, skipped ({skipped}), other split {s['other_split']}, "
            f"kept {s['kept']}, this rank {s['rank_records']} records / {s['tokens']} tokens "
            f"({s['cropped']} cropped)"
        )


# ---- validation -----------------------------------------------------------------------
def validation_batches(
    cfg: PretrainDataConfig,
    limit: int | None = None,
    rank: int = 0,
    world_size: int = 1,
    stats: dict[str, Any] | None = None,
    progress: bool = False,
) -> list[Batch]:
    """Batches of the validation split, center-cropped to ``max_length``, in a fixed order.

    ``limit`` caps the number of validation records (the first ones in file order). With
    ``world_size > 1`` this rank gets every ``world_size``-th batch. ``stats`` (a dict from
    ``new_stats``) is filled in if given. ``progress``: a bar over the records found, counted
    against ``limit`` while they are read (the split's size is known only once the files are
    read through: a record's split is drawn from its id), its total then the number found, so
    that it ends at 100% when the files end before ``limit`` (or without one).
    """
    from tqdm.auto import tqdm

    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    seqs: list[np.ndarray] = []
    if limit != 0:
        with tqdm(total=limit, desc="validation records", unit="rec", leave=False, disable=not progress) as bar:
            for _, ids in iter_split_records(cfg, "validation", stats):
                seqs.append(center_crop(ids, cfg.max_length))
                bar.update(1)
                if limit is not None and len(seqs) >= limit:
                    break
            bar.total = len(seqs)  # the exact count, now known
            bar.refresh()
    batches = [[seqs[i] for i in g] for g in _bucket_batches([len(s) for s in seqs], cfg)]
    return batches[rank::world_size]


# ---- baseline -------------------------------------------------------------------------
_SPECIALS = (PAD, BOS, EOS, MASK)


def unigram_counts(
    batches: Iterable[Batch | torch.Tensor | np.ndarray], letter_ids: Sequence[int] | None = None
) -> np.ndarray:
    """Token counts (length VOCAB_SIZE) over batches, ignoring PAD/BOS/EOS/MASK; with
    ``letter_ids``, of those tokens only (the ones the masking may select as targets).

    A batch is a list of token-id arrays or a padded (B, T) tensor/array.
    """
    counts = np.zeros(VOCAB_SIZE, dtype=np.int64)
    for batch in batches:
        if isinstance(batch, torch.Tensor):
            arrays = [batch.detach().cpu().numpy().ravel()]
        elif isinstance(batch, np.ndarray):
            arrays = [batch.ravel()]
        else:
            arrays = [np.asarray(x).ravel() for x in batch]
        for a in arrays:
            counts += np.bincount(a.astype(np.int64), minlength=VOCAB_SIZE)[:VOCAB_SIZE]
    counts[list(_SPECIALS)] = 0
    if letter_ids is not None:
        keep = np.zeros(VOCAB_SIZE, dtype=bool)
        keep[np.asarray(letter_ids, dtype=np.int64)] = True
        counts[~keep] = 0
    return counts


def unigram_entropy(
    batches: Iterable[Batch | torch.Tensor | np.ndarray], letter_ids: Sequence[int] | None = None
) -> float:
    """Entropy (nats) of the token distribution in ``batches``: the MLM loss of a model
    that always predicts the corpus letter frequencies. The baseline a trained model must
    beat (ln 4 = 1.386 for uniform nucleotides). With ``letter_ids`` (the scheme's letters),
    over those tokens only: the masking never selects another token (the unknown letter of an
    N, say) as a target, so it is no part of the loss the baseline stands for. NaN when there
    are no tokens."""
    counts = unigram_counts(batches, letter_ids).astype(np.float64)
    total = counts.sum()
    if total == 0:
        return math.nan
    p = counts[counts > 0] / total
    return float(-(p * np.log(p)).sum())
