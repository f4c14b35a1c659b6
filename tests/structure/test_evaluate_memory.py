"""`resm evaluate structure` checks memory before any work, as `resm fold` does: the same
estimate (resm.utils.memory.fold_estimate) over every requested set's records, the same
one-line error, the Turner term when the decoding has a scale, and --ignore-memory-check."""

from __future__ import annotations

import pytest

from resm.structure.io import iter_dbn
from resm.utils.memory import GIB, fold_estimate
from tests.conftest import REPO, resm_main
from tests.structure.test_famfold import fake_data_dir
from tests.structure.test_turner import stored_turner_model

KNOWN = {r.name: r for r in iter_dbn((REPO / "examples" / "known.dbn").read_text().splitlines())}
SHORT, LONG = KNOWN["tRNA-Phe_yeast"], KNOWN["5S_rRNA_Ecoli"]  # 76 and 120 nt


def pair_table(path, name, rec):
    path.parent.mkdir(parents=True, exist_ok=True)
    pairs = " ".join(f"{a + 1}:{b + 1}" for a, b in enumerate(rec.pairs) if b > a)
    path.write_text(f"id\tsequence\tpairs\n{name}\t{rec.seq}\t{pairs}\n")


@pytest.fixture
def data(tmp_path):
    """vl1 holds the short record, tr1 the long one."""
    pair_table(tmp_path / "data" / "ss" / "pdb" / "VL1.tsv", "short", SHORT)
    pair_table(tmp_path / "data" / "ss" / "pdb" / "TR1.tsv", "long", LONG)
    return tmp_path / "data"


def evaluate(data, out, *extra, model="default", datasets=("vl1", "tr1")):
    argv = ["evaluate", "structure", "--model", model, "--dataset", *datasets, "--data-dir", data]
    return resm_main(*argv, "--folders", "rnafold", "--threads", "1", "--out", out, *extra, check=False)


def refused(p, out, head: str, need: int) -> None:
    """One line on stderr, naming the records, the longest length and the estimate; exit 1;
    nothing printed or written."""
    err = p.stderr.strip().splitlines()
    assert p.returncode == 1 and len(err) == 1, p.stderr
    assert err[0].startswith(f"resm evaluate: error: {head} needs about {need / GIB:.1f} GiB of memory and "), err[0]
    assert err[0].endswith("--ignore-memory-check to run anyway"), err[0]
    assert p.stdout == "" and not out.exists() and not list(out.parent.glob("*.tmp*"))


def test_evaluate_refuses_sets_whose_longest_record_does_not_fit_and_runs_those_that_do(data, tmp_path, monkeypatch):
    """With the memory of the short set's fold available, vl1 alone runs as before (its table
    written) and vl1 with tr1 is refused before any work: the records of every requested set
    count; --ignore-memory-check runs it anyway."""
    n_short, n_long = len(SHORT.seq), len(LONG.seq)
    assert n_short < n_long
    fits, need = fold_estimate([n_short], 1), fold_estimate([n_short, n_long], 1)
    assert need > fits
    monkeypatch.setenv("RESM_AVAILABLE_MEMORY", str(fits))
    out = tmp_path / "vl1.md"
    p = evaluate(data, out, datasets=("vl1",))
    assert p.returncode == 0, p.stderr
    assert "| vl1, canonical pairs | 1 | **resm** |" in out.read_text()
    out = tmp_path / "both.md"
    p = evaluate(data, out)
    refused(p, out, f"folding 2 records (the longest {n_long} nt, 1 prior worker)", need)
    p = evaluate(data, out, "--ignore-memory-check")
    assert p.returncode == 0, p.stderr
    assert "| tr1, canonical pairs | 1 | **resm** |" in out.read_text()


def test_evaluate_counts_the_turner_term(data, tmp_path, monkeypatch):
    """With just the plain estimate of both sets available, the plain evaluation passes the
    check and the Turner-corrected one is refused, whether the scale comes from --turner-scale
    or is stored in the model file."""
    lengths = [len(SHORT.seq), len(LONG.seq)]
    plain, turner = fold_estimate(lengths, 1), fold_estimate(lengths, 1, turner=True)
    assert turner > plain
    monkeypatch.setenv("RESM_AVAILABLE_MEMORY", str(plain))
    out = tmp_path / "t.md"
    p = evaluate(data, out)
    assert p.returncode == 0, p.stderr
    out.unlink()
    stored = stored_turner_model(tmp_path, 5.0)
    for extra, model in ((["--turner-scale", "0.3"], "default"), ([], str(stored))):
        p = evaluate(data, out, *extra, model=model)
        head = f"folding 2 records (the longest {len(LONG.seq)} nt, 1 prior worker, Turner-corrected decoding)"
        refused(p, out, head, turner)


def test_famfold_records_count_before_any_fold_model_is_read(tmp_path, monkeypatch):
    """archiveii-famfold: every requested fold's test records are checked before the first
    fold's model is read (the model files here are empty: reading one would be another error)."""
    data = fake_data_dir(tmp_path)
    for fold in ("5s", "tRNA"):
        (tmp_path / "runs" / fold).mkdir(parents=True)
        (tmp_path / "runs" / fold / "m.pt").write_bytes(b"")
    monkeypatch.setenv("RESM_AVAILABLE_MEMORY", "1000")
    out = tmp_path / "f.md"
    p = evaluate(data, out, model=str(tmp_path / "runs" / "{fold}" / "m.pt"), datasets=("archiveii-famfold",))
    lengths = [2 * (5 + k % 3) + 8 for k in range(12)] * 2  # fake_data_dir's hairpins, both folds' test records
    refused(p, out, f"folding 24 records (the longest {max(lengths)} nt, 1 prior worker)", fold_estimate(lengths, 1))
