"""experiments/bench_fold_speed.py's table: columns and ratios formed from fake timings (nothing timed)."""

import pytest

from tests.conftest import experiment_script


@pytest.fixture(scope="module")
def bench():
    return experiment_script("bench_fold_speed.py")


def parse(text):
    rows = [line for line in text.splitlines() if line.startswith("|")]
    cols = [c.strip() for c in rows[0].strip("|").split("|")]
    assert set(rows[1].strip("|").split("|")) == {"---"} and len(rows[1].strip("|").split("|")) == len(cols)
    return cols, [dict(zip(cols, (c.strip() for c in r.strip("|").split("|")), strict=True)) for r in rows[2:]]


def test_default_columns_unchanged(bench):
    row = {"name": "random 50", "n": 160, "nt": 8000, "resm": 4.0, "peak": 0.5}
    row |= {"rnafold": 2.0, "rnafold-p": 8.0, "eternafold": 1.0}
    cols, rows = parse(bench.table([row], list(bench.FOLDERS), [], ["# t", ""]))
    assert cols == [
        "case",
        "records",
        "nt",
        "resm s",
        "RNAfold s",
        "RNAfold -p (MFE + pf + MEA) s",
        "LinearPartition-E s",
        "RNAfold s / resm s",
        "RNAfold -p s / resm s",
        "LinearPartition-E s / resm s",
        "resm peak GiB",
    ]
    want = ["random 50", "160", "8000", "4.0", "2.0", "8.0", "1.0", "0.50", "2.00", "0.25", "0.50"]
    assert list(rows[0].values()) == want


def test_turner_variant_columns_and_ratios(bench):
    v = bench.variant_name(0.3)
    assert v == "resm --turner-scale 0.3"
    rows = [
        {"name": "random 1000", "n": 8, "nt": 8000, "resm": 10.0, v: 25.0, "rnafold-p": 50.0, "peak": 0.8},
        {"name": "TS0 300", "n": 300, "nt": 40837, "resm": 20.0, v: 30.0, "rnafold-p": 15.0, "peak": 1.1},
    ]
    cols, out = parse(bench.table(rows, ["rnafold-p"], [0.3], []))
    assert cols == [
        "case",
        "records",
        "nt",
        "resm s",
        "resm --turner-scale 0.3 s",
        "RNAfold -p (MFE + pf + MEA) s",
        "RNAfold -p s / resm s",
        "resm --turner-scale 0.3 s / resm s",
        "RNAfold -p s / resm --turner-scale 0.3 s",
        "resm peak GiB",
    ]
    assert out[0]["resm --turner-scale 0.3 s / resm s"] == "2.50"
    assert out[0]["RNAfold -p s / resm --turner-scale 0.3 s"] == "2.00"
    assert out[0]["RNAfold -p s / resm s"] == "5.00"
    assert out[1]["resm --turner-scale 0.3 s / resm s"] == "1.50"
    assert out[1]["RNAfold -p s / resm --turner-scale 0.3 s"] == "0.50"


def test_cases_filter(bench, tmp_path):
    got = bench.cases(tmp_path, [50, 200], 0, ["random"])
    assert [(name, len(recs)) for name, _, recs in got] == [("random 50", 160), ("random 200", 40)]
    assert bench.cases(tmp_path, [50, 200], 0, ["23s"]) == []


def test_header_names_the_folders_that_ran(bench):
    assert bench.classical(list(bench.FOLDERS)).endswith("and LinearPartition")
    assert bench.classical(["rnafold-p"]) == "RNAfold -p (MFE, partition function and MEA)"


def test_baseline_checkout_column_and_ratio(bench):
    rows = [{"name": "TS0 300", "n": 300, "nt": 40837, "resm": 20.0, "baseline": 25.0, "peak": 1.1}]
    cols, out = parse(bench.table(rows, [], [], [], baseline=True))
    assert cols == ["case", "records", "nt", "baseline resm s", "resm s", "baseline s / resm s", "resm peak GiB"]
    assert list(out[0].values()) == ["TS0 300", "300", "40837", "25.0", "20.0", "1.25", "1.10"]


def test_resm_cells_alternate_the_checkouts_and_report_medians(bench, monkeypatch, tmp_path):
    calls = []
    secs = iter([5.0, 4.0, 9.0, 3.0, 6.0, 8.0])

    def fake_timed(cmd, env=None, cwd=bench.REPO):
        calls.append((cwd, env["PYTHONPATH"].split(":")[0]))
        return next(secs), 0.5

    monkeypatch.setattr(bench, "timed", fake_timed)
    got = bench.resm_cells(["resm"], tmp_path, 3)
    assert calls == [(tmp_path, str(tmp_path)), (bench.REPO, str(bench.REPO))] * 3
    assert got["baseline"] == 6.0 and got["resm"] == 4.0 and got["runs"]["resm"] == [4.0, 3.0, 8.0]
