"""Streaming pretraining data: split, sharding, resumption, batching, crops, filters."""

from __future__ import annotations

import gzip
import itertools
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from resm.alphabet import pad_batch
from resm.data.pretrain import (
    PretrainDataConfig,
    PretrainStream,
    is_validation,
    iter_split_records,
    new_stats,
    split_key,
    unigram_entropy,
    validation_batches,
)
from resm.mapping import MappingError, get_scheme
from tests.conftest import REPO

SCHEME = get_scheme("kdny")


def rand_rna(rng: np.random.Generator, n: int) -> str:
    return "".join(np.asarray(list("ACGU"))[rng.integers(0, 4, n)])


def write(path: Path, records, gz: bool = False) -> str:
    text = "".join(f">{rid}\n{seq}\n" for rid, seq in records)
    if gz:
        with gzip.open(path, "wt") as fh:
            fh.write(text)
    else:
        path.write_text(text)
    return str(path)


def corpus(n_fam: int = 12, per_fam: int = 8, seed: int = 0, lo: int = 10, hi: int = 120):
    """Rfam-style records with distinct random sequences."""
    rng = np.random.default_rng(seed)
    return [
        (f"RF{f:05d}|seq{f}_{i}/1-{n}", rand_rna(rng, n))
        for f in range(n_fam)
        for i in range(per_fam)
        for n in [int(rng.integers(lo, hi + 1))]
    ]


def cfg_for(paths, **kw) -> PretrainDataConfig:
    base = dict(
        train=paths,
        max_length=64,
        min_length=10,
        tokens_per_batch=300,
        bucket_size=16,
        val_fraction=0.2,
        seed=3,
    )
    base.update(kw)
    return PretrainDataConfig(**base)


def is_substring(part: np.ndarray, whole: np.ndarray) -> bool:
    if len(part) > len(whole):
        return False
    windows = np.lib.stride_tricks.sliding_window_view(whole, len(part))
    return bool((windows == part).all(axis=1).any())


def epoch_items(stream: PretrainStream, epoch: int = 0):
    return [item for batch in stream.iter_epoch(epoch, with_ids=True) for item in batch]


def take(it, n):
    return list(itertools.islice(it, n))


def same_batches(a, b) -> bool:
    return len(a) == len(b) and all(
        len(x) == len(y) and all(np.array_equal(u, v) for u, v in zip(x, y)) for x, y in zip(a, b)
    )


@pytest.fixture
def fasta(tmp_path) -> tuple:
    recs = corpus()
    return write(tmp_path / "c.fa", recs), recs


# ---- split ----------------------------------------------------------------------------
def test_split_is_deterministic_across_processes():
    cfg = PretrainDataConfig(train=["x"], val_fraction=0.3, val_by="hash")
    ids = [f"rec{i}" for i in range(300)]
    here = "".join("1" if is_validation(i, cfg) else "0" for i in ids)
    code = (
        "from resm.data.pretrain import PretrainDataConfig, is_validation\n"
        "cfg = PretrainDataConfig(train=['x'], val_fraction=0.3, val_by='hash')\n"
        "print(''.join('1' if is_validation(f'rec{i}', cfg) else '0' for i in range(300)))\n"
    )
    env = dict(os.environ, PYTHONHASHSEED="12345")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == here
    assert 0.2 < here.count("1") / 300 < 0.4


def test_split_key_rules():
    assert split_key("RF00001|X01556.1/3-119", "auto") == "RF00001"
    assert split_key("plain_id", "auto") == "plain_id"
    assert split_key("RF00001|X01556.1/3-119", "hash") == "RF00001|X01556.1/3-119"
    assert split_key("RF00001|X", "family") == "RF00001"
    assert not is_validation("a", PretrainDataConfig(train=["x"], val_fraction=0.0))
    assert is_validation("a", PretrainDataConfig(train=["x"], val_fraction=1.0))


def test_cluster_split_keeps_clusters_together(tmp_path):
    """val_by cluster: all members of a cluster share a split; unknown ids are own clusters;
    protein records run through the identity scheme."""
    rng = np.random.default_rng(0)
    rows, recs = [], []
    for c in range(40):
        for m in range(3):
            rid = f"P{c:03d}_{m}"
            rows.append(f"P{c:03d}_0\t{rid}\n")
            recs.append((rid, "".join(rng.choice(list("LAGVSERTIDPKQNFYMHWC"), 30))))
    recs.append(("LONER", "MKV" * 10))
    table = tmp_path / "clu.tsv.gz"
    with gzip.open(table, "wt") as f:
        f.writelines(rows)
    cfg = PretrainDataConfig(
        train=[write(tmp_path / "p.fa", recs)],
        scheme="protein",
        val_by="cluster",
        clusters=str(table),
        val_fraction=0.3,
    )
    val = {rid for rid, _ in iter_split_records(cfg, "validation")}
    train = {rid for rid, _ in iter_split_records(cfg, "train")}
    assert val and train and not val & train and len(val | train) == len(recs)
    for c in range(40):
        members = {f"P{c:03d}_{m}" for m in range(3)}
        assert members <= val or members <= train
    assert split_key("LONER", "cluster", {"a": "b"}) == "LONER"
    bad = tmp_path / "bad.tsv"
    bad.write_text("A\tA\nonly_one_column\n")
    with pytest.raises(ValueError, match="bad.tsv line 2"):
        is_validation("A", PretrainDataConfig(train=["x"], val_by="cluster", clusters=str(bad), val_fraction=0.5))
    with pytest.raises(ValueError, match="clusters"):
        PretrainDataConfig(train=["x"], val_by="cluster")


@pytest.mark.parametrize("val_by", ["auto", "family", "hash"])
def test_train_and_validation_are_disjoint_and_cover(tmp_path, val_by):
    recs = corpus(n_fam=30, per_fam=4, seed=1)
    cfg = cfg_for(write(tmp_path / "c.fa", recs), val_fraction=0.3, val_by=val_by)
    train = {rid for rid, _ in epoch_items(PretrainStream(cfg))}
    val = {rid for rid, _ in iter_split_records(cfg, "validation")}
    assert train and val
    assert not train & val
    assert train | val == {rid for rid, _ in recs}
    if val_by != "hash":
        fam = lambda ids: {r.split("|")[0] for r in ids}  # noqa: E731
        assert not fam(train) & fam(val)
    vb = validation_batches(cfg)
    assert sum(len(b) for b in vb) == len(val)


# ---- sharding -------------------------------------------------------------------------
def test_three_ranks_partition_the_train_split(tmp_path):
    recs = corpus(seed=2)
    recs += [("short|a", "ACGU"), (recs[0][0] + "_dup", recs[0][1].lower())]  # filtered
    cfg = cfg_for(write(tmp_path / "c.fa", recs))
    expected = [rid for rid, _ in iter_split_records(cfg, "train")]
    assert "short|a" not in expected and recs[0][0] + "_dup" not in expected
    for epoch in (0, 1):
        got = []
        per_rank = []
        for rank in range(3):
            ids = [rid for rid, _ in epoch_items(PretrainStream(cfg, rank, 3), epoch)]
            per_rank.append(set(ids))
            got += ids
        assert len(got) == len(set(got)), "a record went to two ranks"
        assert sorted(got) == sorted(expected), "a record went to no rank"
        assert all(per_rank)
        # record k of the split goes to rank k % 3
        for k, rid in enumerate(expected):
            assert rid in per_rank[k % 3]


def test_invalid_rank():
    cfg = PretrainDataConfig(train=["x"])
    with pytest.raises(ValueError, match=r"^rank must lie in \[0, 3\), got 3$"):
        PretrainStream(cfg, rank=3, world_size=3)


def test_rank_without_records_raises(tmp_path):
    path = write(tmp_path / "c.fa", [("a", "ACGUACGUACGU")])
    stream = PretrainStream(cfg_for(path, val_fraction=0.0), rank=1, world_size=2)
    with pytest.raises(ValueError, match="no training records"):
        next(iter(stream))


# ---- resumption -----------------------------------------------------------------------
@pytest.mark.parametrize("world_size,rank", [(1, 0), (2, 1)])
def test_resume_yields_identical_batches(fasta, world_size, rank):
    path, _ = fasta
    cfg = cfg_for(path)
    per_epoch = sum(1 for _ in PretrainStream(cfg, rank, world_size).iter_epoch(0))
    total = 2 * per_epoch + 3
    reference = take(iter(PretrainStream(cfg, rank, world_size)), total)
    for n in (0, 1, per_epoch - 1, per_epoch, per_epoch + 2):
        first = PretrainStream(cfg, rank, world_size)
        consumed = take(iter(first), n)
        assert same_batches(consumed, reference[:n])
        state = first.state_dict()
        resumed = PretrainStream(cfg, rank, world_size)
        resumed.load_state_dict(state)
        assert same_batches(take(iter(resumed), total - n), reference[n:])
    # epochs differ from each other (new crops and batch order)
    assert not same_batches(reference[:per_epoch], reference[per_epoch : 2 * per_epoch])


def test_state_dict_tracks_epoch_and_batches(fasta):
    stream = PretrainStream(cfg_for(fasta[0]))
    per_epoch = sum(1 for _ in stream.iter_epoch(0))
    it = iter(stream)
    take(it, per_epoch + 1)
    assert stream.state_dict()["epoch"] == 1 and stream.state_dict()["batches"] == 1
    other = PretrainStream(cfg_for(fasta[0]), 0, 2)
    with pytest.raises(ValueError, match="world_size"):
        other.load_state_dict(stream.state_dict())


# ---- batching and crops ---------------------------------------------------------------
@settings(max_examples=12, deadline=None)
@given(
    budget=st.integers(130, 700),
    max_batch=st.one_of(st.none(), st.integers(1, 6)),
    bucket=st.integers(1, 40),
    seed=st.integers(0, 1000),
)
def test_batches_respect_token_budget(tmp_path_factory, budget, max_batch, bucket, seed):
    recs = corpus(n_fam=4, per_fam=10, seed=seed, hi=200)
    path = write(tmp_path_factory.mktemp("b") / "c.fa", recs)
    cfg = cfg_for(path, tokens_per_batch=budget, max_batch=max_batch, bucket_size=bucket, seed=seed)
    stream = PretrainStream(cfg)
    for batch in itertools.chain(stream.iter_epoch(0), validation_batches(cfg)):
        assert batch
        padded = pad_batch(batch)
        assert padded.numel() <= budget
        assert len(batch) * (max(len(x) for x in batch) + 2) <= budget
        if max_batch is not None:
            assert len(batch) <= max_batch
    assert stream.stats["rank_records"] == stream.stats["kept"]


def test_crops_are_contiguous_substrings_and_random(tmp_path):
    recs = corpus(n_fam=3, per_fam=10, seed=4, lo=20, hi=300)
    cfg = cfg_for(write(tmp_path / "c.fa", recs), max_length=50, val_fraction=0.0)
    full = {rid: SCHEME.encode(seq) for rid, seq in recs}
    stream = PretrainStream(cfg)
    crops = {}
    for epoch in (0, 1):
        items = epoch_items(stream, epoch)
        assert len(items) == len(recs)
        for rid, ids in items:
            assert len(ids) <= 50
            assert len(ids) == min(50, len(full[rid]))
            assert is_substring(ids, full[rid])
            crops.setdefault(rid, []).append(ids.tobytes())
        assert stream.stats["cropped"] == sum(len(s) > 50 for _, s in recs)
        assert stream.stats["tokens"] == sum(len(ids) for _, ids in items)
    long_ids = [rid for rid, s in recs if len(s) > 60]
    assert long_ids
    # a fresh crop each epoch for at least some long records
    assert any(crops[r][0] != crops[r][1] for r in long_ids)
    # validation uses the centre window
    cfg_val = cfg_for(cfg.train, max_length=50, val_fraction=1.0, tokens_per_batch=10_000)
    val = [x for b in validation_batches(cfg_val) for x in b]
    centres = {}
    for ids in full.values():
        s = (len(ids) - 50) // 2 if len(ids) > 50 else 0
        centres[ids[s : s + 50].tobytes()] = True
    assert all(x.tobytes() in centres for x in val) and len(val) == len(recs)


def test_gzip_and_plain_give_the_same_batches(tmp_path, fasta):
    path, recs = fasta
    gz = write(tmp_path / "c.fa.gz", recs, gz=True)
    with open(gz, "rb") as fh:
        assert fh.read(2) == b"\x1f\x8b"
    a = list(PretrainStream(cfg_for(path)).iter_epoch(0))
    b = list(PretrainStream(cfg_for(gz)).iter_epoch(0))
    assert a and same_batches(a, b)


def test_multiple_files_are_concatenated(tmp_path):
    recs = corpus(n_fam=4, per_fam=5, seed=6)
    p1 = write(tmp_path / "a.fa", recs[:10])
    p2 = write(tmp_path / "b.fa.gz", recs[10:], gz=True)
    cfg = cfg_for([p1, p2], val_fraction=0.0)
    assert sorted(r for r, _ in epoch_items(PretrainStream(cfg))) == sorted(r for r, _ in recs)


# ---- filters --------------------------------------------------------------------------
def test_dedupe_drops_normalised_duplicates(tmp_path):
    base = "ACGUACGUAAGGCCUU"
    recs = [("a", base), ("b", base.lower()), ("c", base.replace("U", "T")), ("d", base + "A")]
    path = write(tmp_path / "c.fa", recs)
    stream = PretrainStream(cfg_for(path, val_fraction=0.0))
    assert sorted(r for r, _ in epoch_items(stream)) == ["a", "d"]
    assert stream.stats["skipped"]["duplicate"] == 2
    # a second epoch starts with a fresh set (nothing is a duplicate of the previous epoch)
    assert sorted(r for r, _ in epoch_items(stream, 1)) == ["a", "d"]
    nodedupe = PretrainStream(cfg_for(path, val_fraction=0.0, dedupe=False))
    assert len(epoch_items(nodedupe)) == 4
    assert nodedupe.stats["skipped"]["duplicate"] == 0


def test_bad_records_skip_counts_and_error_names_record(tmp_path):
    recs = [
        ("good1", "ACGUACGUACGUA"),
        ("gapped_one", "ACGU-ACGUACGU"),
        ("good2", "GGGGCCCCAAAAU"),
        ("digits", "ACGU1ACGUACGU"),
        ("tiny", "ACG"),
        ("huge", "A" * 200),
    ]
    path = write(tmp_path / "c.fa", recs)
    stream = PretrainStream(cfg_for(path, val_fraction=0.0, max_input_length=150))
    assert sorted(r for r, _ in epoch_items(stream)) == ["good1", "good2"]
    s = stream.stats
    assert s["read"] == 6 and s["kept"] == 2
    assert s["skipped"] == {"bad_symbol": 2, "too_short": 1, "too_long": 1, "no_letter": 0, "duplicate": 0}
    assert "bad symbol 2" in stream.summary()
    strict = PretrainStream(cfg_for(path, val_fraction=0.0, bad_records="error"))
    with pytest.raises(MappingError, match="gapped_one"):
        epoch_items(strict)


def test_config_validation():
    with pytest.raises(ValueError, match=r"^val_by must be 'auto', 'hash', 'family' or 'cluster', got 'random'$"):
        PretrainDataConfig(train=["x"], val_by="random")
    with pytest.raises(ValueError, match=r"^bad_records must be 'skip' or 'error', got 'ignore'$"):
        PretrainDataConfig(train=["x"], bad_records="ignore")
    with pytest.raises(ValueError, match=r"^tokens_per_batch 1000 cannot hold one sequence of max_length 1024 "):
        PretrainDataConfig(train=["x"], max_length=1024, tokens_per_batch=1000)
    from resm.config import ConfigError, from_dict

    with pytest.raises(ConfigError, match="data: unknown key 'bogus'"):
        from_dict(PretrainDataConfig, {"train": ["x"], "bogus": 1}, "data")
    assert from_dict(PretrainDataConfig, {"train": "x.fa"}, "data").train == ["x.fa"]


# ---- validation and baseline ----------------------------------------------------------
def test_validation_batches_limit_and_ranks(fasta):
    cfg = cfg_for(fasta[0], val_fraction=0.5)
    full = validation_batches(cfg)
    assert same_batches(full, validation_batches(cfg))
    assert sum(len(b) for b in validation_batches(cfg, limit=5)) == 5
    assert validation_batches(cfg, limit=0) == []
    halves = [b for r in (0, 1) for b in validation_batches(cfg, rank=r, world_size=2)]
    assert sum(len(b) for b in halves) == sum(len(b) for b in full)
    stats = new_stats()
    validation_batches(cfg, stats=stats)
    assert stats["kept"] == sum(len(b) for b in full)


def test_unigram_entropy():
    letters = np.asarray(SCHEME.letter_ids)
    rng = np.random.default_rng(0)
    uniform = [[letters[rng.integers(0, 4, 5000)]]]
    assert abs(unigram_entropy(uniform) - np.log(4)) < 1e-3
    assert unigram_entropy([[np.full(10, letters[0])]]) == 0.0
    skewed = [[np.concatenate([np.full(75, letters[0]), np.full(25, letters[1])])]]
    assert np.isclose(unigram_entropy(skewed), -(0.75 * np.log(0.75) + 0.25 * np.log(0.25)))
    # padded tensors give the same value: BOS/EOS/PAD are ignored
    batch = [letters[rng.integers(0, 4, n)] for n in (3, 17, 40)]
    assert np.isclose(unigram_entropy([batch]), unigram_entropy([pad_batch(batch)]))
    assert np.isnan(unigram_entropy([]))


# ---- optional: the real corpus ----------------------------------------------------------
def test_real_rfam_corpus_first_batches():
    data = Path(os.environ.get("RESM_DATA") or REPO.parent / "shared" / "data")
    path = data / "pretrain" / "rfam14.2_seed_sequences.fasta.gz"
    if not path.exists():
        pytest.skip(f"real corpus not found at {path}")
    cfg = PretrainDataConfig(train=[str(path)], bucket_size=400, tokens_per_batch=8192)
    stream = PretrainStream(cfg, rank=0, world_size=2)
    batches = take(stream.iter_epoch(0), 5)
    letters = set(SCHEME.letter_ids) | {SCHEME.unknown_id}
    assert len(batches) == 5
    for b in batches:
        assert len(b) * (max(len(x) for x in b) + 2) <= 8192
        assert all(set(np.unique(x).tolist()) <= letters for x in b)
        assert all(cfg.min_length <= len(x) <= cfg.max_length for x in b)
    assert stream.stats["read"] > 0 and stream.stats["rank_records"] > 0
    assert 0.5 < unigram_entropy(batches) <= np.log(5)
    # Rfam headers are split by family
    assert split_key("RF00001|X01556.1/3-119", cfg.val_by) == "RF00001"
    assert isinstance(pad_batch(batches[0]), torch.Tensor)


# ---- what the run shows before its first step ---------------------------------------------
def test_first_bucket_and_resume_show_bars_with_totals(fasta, capsys):
    """Before the first batch a run reads a whole bucket (20,000 records in cpu_demo): a bar
    counts them against bucket_size; a resume regenerates the batches already used, counted
    against their number; validation counts its records against the limit. The batches are
    those of a stream without bars."""
    path, _ = fasta
    cfg = cfg_for(path)
    plain = take(iter(PretrainStream(cfg)), 5)
    shown = PretrainStream(cfg, progress=True)
    assert same_batches(take(iter(shown), 3), plain[:3])
    err = capsys.readouterr().err
    assert "reading the first training records" in err and f"/{cfg.bucket_size}" in err
    resumed = PretrainStream(cfg, progress=True)
    resumed.load_state_dict(shown.state_dict())
    assert same_batches(take(iter(resumed), 2), plain[3:5])
    err = capsys.readouterr().err
    assert "resume: data stream to its saved position" in err and "/3 " in err  # the total
    assert "reading the first training records" not in err
    validation_batches(cfg, 5, progress=True)
    assert "validation records" in capsys.readouterr().err
    # the validation split's size is known once the files are read through: the bar's total is
    # then the records found, and it ends at 100% (it stopped at n/limit, short of it)
    for limit in (10**6, None):
        n = sum(len(b) for b in validation_batches(cfg, limit))
        assert 5 < n < 10**6
        capsys.readouterr()
        validation_batches(cfg, limit, progress=True)
        last = [d for d in capsys.readouterr().err.split("\r") if "validation records" in d][-1]  # its last drawing
        assert "validation records: 100%" in last and f"{n}/{n} " in last, last
    take(iter(PretrainStream(cfg)), 2)
    validation_batches(cfg, 5)
    assert capsys.readouterr().err == ""  # no bars unless asked (ranks other than 0)


@pytest.mark.parametrize("name", ["kdny", "kerd", "nt", "codon3"])
def test_encode_codes_is_encode(name):
    """The stream reads a record's nucleotide codes once and maps them (encode_codes): the
    same ids as encode, for the letter and the context schemes."""
    from resm.nucleotides import rna_codes

    scheme = get_scheme(name)
    for seq in ("ACGUNacgut", "G", "GGGAAAUCCCRY"):
        np.testing.assert_array_equal(scheme.encode_codes(rna_codes(seq)), scheme.encode(seq))
    with pytest.raises(ValueError, match="protein letters"):
        get_scheme("protein").encode_codes(rna_codes("ACGU"))
