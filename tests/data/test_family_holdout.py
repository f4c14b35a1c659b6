"""Whole families held out of the structure training records (resm.data.labelled_structures):
the held-out families are drawn from the whole files, before ``max_train`` caps them, so a
capped run validates on families an uncapped run on the same files never trained on."""

import numpy as np

from resm.data.labelled_structures import StructureDataConfig, family_split, split_training_records
from resm.mapping import get_scheme


def _write(tmp_path, n_fam=12, per_fam=4):
    rng = np.random.default_rng(0)
    dbn, fasta, fam_of = [], [], {}
    for f in range(n_fam):
        for k in range(per_fam):
            seq = "".join(rng.choice(list("ACGU"), 20))
            name = f"r{f}_{k}"
            dbn.append(f">{name}\n{seq}\n((((........))))....\n")
            fasta.append(f">RF{f:05d}|{name}\n{seq}\n")
            fam_of[name] = f"RF{f:05d}"
    dbn.append(">nofam\n" + "GGGGAAAACCCCAAAAAAAA\n((((....))))........\n")  # no family: stays in training
    (tmp_path / "TR.dbn").write_text("".join(dbn))
    (tmp_path / "fam.fa").write_text("".join(fasta))
    (tmp_path / "PDB.tsv").write_text("id\tsequence\tpairs\np1\tGGGAAACCC\t1:9 2:8 3:7\n")
    return fam_of


def _cfg(tmp_path, **kw):
    base = dict(
        train=[str(tmp_path / "TR.dbn"), {"file": str(tmp_path / "PDB.tsv"), "repeat": 3}],
        families=str(tmp_path / "fam.fa"),
        family_holdout=0.25,
        max_length=64,
        tokens_per_batch=256,
    )
    return StructureDataConfig(**{**base, **kw})


def test_capped_run_holds_out_the_uncapped_runs_families(tmp_path):
    fam_of = _write(tmp_path)
    scheme = get_scheme("kdny")
    full = split_training_records(_cfg(tmp_path), scheme)
    capped = split_training_records(_cfg(tmp_path, max_train=10), scheme)
    # the same held-out records (3 of 12 families, 4 records each), in file order
    assert [r.name for r in capped[2]] == [r.name for r in full[2]] and len(full[2]) == 12
    assert full[4] == capped[4] == {"matched": 48, "families": 12, "held_out_families": 3}
    held_fams = {fam_of[r.name] for r in full[2]}
    names = [r.name for r in capped[0]]
    # capped: 10 records of the bpRNA-style file, none of a held-out family; the PDB file 3 times
    assert len(names) == 10 + 3 and names.count("p1") == 3
    assert not {fam_of.get(n) for n in names} & held_fams
    assert set(names) <= {r.name for r in full[0]}
    assert len(capped[1]) == len(names)
    # the uncapped split is family_split's over the file's records
    from resm.structure.io import read_structures

    recs = list(read_structures(str(tmp_path / "TR.dbn")))
    _, out, _ = family_split(recs, str(tmp_path / "fam.fa"), 0.25, 0)
    assert [recs[k].name for k in out] == [r.name for r in full[2]]
    # capping before the split (the old order) would have drawn from fewer families
    few = recs[:10]
    _, out_few, counts = family_split(few, str(tmp_path / "fam.fa"), 0.25, 0)
    assert counts["families"] < 12


def test_density_tolerance_is_checked():
    import pytest

    from resm.config import ConfigError

    with pytest.raises(ConfigError, match=r"^data.density_tolerance must be in \[0, 1\), got -0.1$"):
        StructureDataConfig(train="x.dbn", density_tolerance=-0.1, max_length=64, tokens_per_batch=256)
    assert StructureDataConfig(train="x.dbn", density_tolerance=0.005).density_tolerance == 0.005


def test_each_training_record_carries_its_files_pos_weight(tmp_path):
    """data.train's per-file pos_weight follows each file's records through the family split,
    the cap and the repeat (None: the record takes loss.pos_weight), with and without a family
    hold-out."""
    from resm.data.labelled_structures import load_training_records

    _write(tmp_path)
    scheme = get_scheme("kdny")
    train = [str(tmp_path / "TR.dbn"), {"file": str(tmp_path / "PDB.tsv"), "repeat": 3, "pos_weight": 2.5}]
    recs, _, _, _, _, _, weights = split_training_records(_cfg(tmp_path, train=train, max_train=10), scheme)
    assert len(weights) == len(recs) == 13
    assert [w for r, w in zip(recs, weights) if r.name == "p1"] == [2.5] * 3
    assert all(w is None for r, w in zip(recs, weights) if r.name != "p1")
    cfg = _cfg(tmp_path, train=train, families=None, family_holdout=0.0)
    recs, ids, _, weights = load_training_records(cfg, scheme)
    assert len(weights) == len(ids) == len(recs) == 49 + 3
    assert weights == [None] * 49 + [2.5] * 3 and [r.name for r in recs[-3:]] == ["p1"] * 3
    plain = split_training_records(_cfg(tmp_path), scheme)  # no pos_weight: every record None
    assert plain[6] == [None] * len(plain[0])


def test_train_pos_weight_is_checked():
    import pytest

    from resm.config import ConfigError

    for bad in (0, -1.0, "2", True):
        entry = {"file": "b.tsv", "repeat": 2, "pos_weight": bad}
        said = rf"^data.train\[1\].pos_weight must be a finite number > 0, got {bad!r}$"
        with pytest.raises(ConfigError, match=said):
            StructureDataConfig(train=["a.dbn", entry], max_length=64, tokens_per_batch=256)
    cfg = StructureDataConfig(train=["a.dbn", {"file": "b.tsv", "repeat": 2, "pos_weight": 2}])
    assert cfg.train_files() == [("a.dbn", 1, None), ("b.tsv", 2, 2.0)]
