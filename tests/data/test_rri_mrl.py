"""Readers of RNA-RNA interaction pairs (resm.data.rri) and 5'UTR mean ribosome load
(resm.data.mrl): formats, errors with file and line, fixed splits, and the real data."""

import gzip
from collections import Counter

import pytest

from resm.data.mrl import UTR, MRLError, VariantPair, read_mrl, read_variants, split_utrs
from resm.data.rri import Pair, PairsError, read_pairs, split_pairs


def write(tmp_path, name, text):
    p = tmp_path / name
    if name.endswith(".gz"):
        with gzip.open(p, "wt") as fh:
            fh.write(text)
    else:
        p.write_text(text)
    return p


HEADER_CSV = "a_name,a_seq,b_name,b_seq,label\n"


# ---- pairs: formats ----------------------------------------------------------------------------
def test_csv_with_header(tmp_path):
    p = write(tmp_path, "pairs.csv", HEADER_CSV + "miR-1,uggaat,s1,ACGT,1\n" + "miR-2,AAAC,s2,GGGT,0\n")
    pairs = read_pairs(p)
    assert pairs == [
        Pair("miR-1", "UGGAAU", "s1", "ACGU", 1, 2),
        Pair("miR-2", "AAAC", "s2", "GGGU", 0, 3),
    ]
    assert pairs[0].name == "miR-1|s1"


def test_headerless_tsv_with_labels_blank_lines_and_gzip(tmp_path):
    text = "m1\tACGU\tt1\tTTTT\t1\n\nm2\tAARG\tt2\tCCCC\t0.0\n  \nm3\tGGGG\tt3\tAAAA\t1.0\n"
    for name in ("pairs.tsv", "pairs.tsv.gz"):
        pairs = read_pairs(write(tmp_path, name, text))
        assert [(x.a_name, x.a, x.b, x.label, x.line) for x in pairs] == [
            ("m1", "ACGU", "UUUU", 1, 1),
            ("m2", "AANG", "CCCC", 0, 3),
            ("m3", "GGGG", "AAAA", 1, 5),
        ]


def test_headerless_tsv_without_labels(tmp_path):
    p = write(tmp_path, "pairs.tsv", "m1\tACGU\tt1\tACGT\nm2\tAAAA\tt2\tCCCC\n")
    pairs = read_pairs(p, require_label=False)
    assert [x.label for x in pairs] == [None, None] and pairs[0].b == "ACGU"
    with pytest.raises(PairsError, match="pairs.tsv line 1: labels are required"):
        read_pairs(p)


def test_headered_tsv_without_labels_any_column_order(tmp_path):
    p = write(tmp_path, "query.tsv", "b_seq\ta_name\ta_seq\tb_name\tnote\nACGT\tmiR\tUUUU\tsite\tx\n")
    (pair,) = read_pairs(p, require_label=False)
    assert pair == Pair("miR", "UUUU", "site", "ACGU", None, 2)
    with pytest.raises(PairsError, match="query.tsv line 1: labels are required"):
        read_pairs(p)


def test_headered_file_without_names_and_sniffed_delimiter(tmp_path):
    p = write(tmp_path, "pairs.txt", "a_seq\tb_seq\nACGT\tGGGG\n")
    (pair,) = read_pairs(p, require_label=False)
    assert (pair.a_name, pair.b_name, pair.a, pair.line) == ("a_line2", "b_line2", "ACGU", 2)
    p = write(tmp_path, "pairs2.txt", "a_seq,b_seq,label\nACGT,GGGG,1\n")
    assert read_pairs(p)[0].label == 1


def test_max_length(tmp_path):
    p = write(tmp_path, "pairs.tsv", "m\tACGU\tt\tACGU\t1\nm\tACGU\tt\t" + "A" * 80 + "\t0\n")
    assert len(read_pairs(p, max_length=80)) == 2
    with pytest.raises(PairsError, match="pairs.tsv line 2: b_seq of 't' has 80 nt, longer than the 60 nt supported$"):
        read_pairs(p, max_length=60)


# ---- pairs: errors -----------------------------------------------------------------------------
GOOD = "m\tACGU\tt\tACGU\t1\n"


@pytest.mark.parametrize(
    "bad, message",
    [
        ("m\tACGU\tt\t1\n", "expected 5 columns, found 4"),
        ("m\tACGU\tt\tACGU\t1\textra\n", "expected 5 columns, found 6"),
        ("m\t\tt\tACGU\t1\n", "a_seq is empty"),
        ("m\tACGU\tt\t \t1\n", "b_seq is empty"),
        ("m\tAC-GU\tt\tACGU\t1\n", r"a_seq: record 'm': gap '-' at position 3 is not a nucleotide"),
        ("m\tACGU\tt\tAC7\t1\n", r"b_seq: record 't': digit '7' at position 3"),
        ("m\tACGU\tt\tACGU\t2\n", "label '2' is not 0 or 1"),
        ("m\tACGU\tt\tACGU\tyes\n", "label 'yes' is not 0 or 1"),
        ("m\tACGU\tt\tACGU\t\n", "label is empty"),
    ],
)
def test_pair_errors_name_file_and_line(tmp_path, bad, message):
    p = write(tmp_path, "pairs.tsv", GOOD + "\n" + bad + GOOD)
    with pytest.raises(PairsError, match=f"/pairs.tsv line 3: {message}"):
        read_pairs(p)


def test_pair_errors_in_headered_csv_and_gzip(tmp_path):
    p = write(tmp_path, "pairs.csv.gz", HEADER_CSV + "m,ACGU,t,ACGU,1\nm,ACGU,t,ACGX!,0\n")
    with pytest.raises(PairsError, match=r"/pairs.csv.gz line 3: b_seq: .*symbol '!' at position 5"):
        read_pairs(p)
    p = write(tmp_path, "pairs.csv", HEADER_CSV + "m,ACGU,t,ACGU\n")
    with pytest.raises(PairsError, match="/pairs.csv line 2: expected 5 columns, found 4"):
        read_pairs(p)


def test_pair_file_level_errors(tmp_path):
    with pytest.raises(PairsError, match="/empty.tsv line 1: empty file"):
        read_pairs(write(tmp_path, "empty.tsv", "\n  \n"))
    with pytest.raises(PairsError, match="/head.csv line 2: a header but no pairs"):
        read_pairs(write(tmp_path, "head.csv", "\n" + HEADER_CSV))
    with pytest.raises(PairsError, match="/three.tsv line 1: expected 5 columns .* found 3"):
        read_pairs(write(tmp_path, "three.tsv", "m\tACGU\tt\n"))
    with pytest.raises(PairsError, match=r"/broken.tsv.gz line \d+: cannot read"):
        read_pairs(_broken_gzip(tmp_path / "broken.tsv.gz"))


def _broken_gzip(path):
    data = gzip.compress(b"m\tACGU\tt\tACGU\t1\n" * 100)
    path.write_bytes(data[: len(data) // 2])
    return path


# ---- pairs: split ------------------------------------------------------------------------------
def _pairs(n):
    return [Pair(f"m{i}", "ACGU", f"t{i}", "ACGU", i % 2, i + 1) for i in range(n)]


def test_split_pairs_deterministic_disjoint_covering():
    pairs = _pairs(101)
    train, val = split_pairs(pairs, 0.1, seed=0)
    assert len(val) == 10 and len(train) == 91
    assert split_pairs(pairs, 0.1, seed=0) == (train, val)
    assert {p.line for p in train}.isdisjoint(p.line for p in val)
    assert sorted(p.line for p in train + val) == list(range(1, 102))
    assert [p.line for p in train] == sorted(p.line for p in train)  # file order kept
    assert [p.line for p in val] == sorted(p.line for p in val)
    assert split_pairs(pairs, 0.1, seed=1)[1] != val
    assert len(split_pairs(_pairs(3), 0.1)[1]) == 1  # never an empty validation part
    assert split_pairs(pairs, 0.0) == (pairs, [])
    with pytest.raises(ValueError, match=r"^val_fraction must be in \[0, 1\), got 1.0$"):
        split_pairs(pairs, 1.0)


# ---- MRL ---------------------------------------------------------------------------------------
def test_read_mrl_formats(tmp_path):
    p = write(tmp_path, "lib.csv", ",utr,total,rl\n0,ACGT,1,5.5\n\n1,aaau,2,3\n")
    assert read_mrl(p) == [UTR("0", "ACGU", 5.5, 2), UTR("1", "AAAU", 3.0, 4)]
    p = write(tmp_path, "lib.csv.gz", "id,seq,hrl\nx1,ACGT,1e0\n")
    assert read_mrl(p, seq_column="seq") == [UTR("x1", "ACGU", 1.0, 2)]
    p = write(tmp_path, "noname.csv", "utr,rl,y\nACGT,1,2\n")
    assert read_mrl(p, target_column="y") == [UTR("line2", "ACGU", 2.0, 2)]
    p = write(tmp_path, "both.csv", "utr,hrl,rl\nACGT,1,2\n")
    assert read_mrl(p)[0].mrl == 2.0  # rl preferred over hrl


@pytest.mark.parametrize(
    "bad, message",
    [
        ("2,ACGU,1\n", "expected 4 columns, found 3"),
        ("2,,1,5\n", "utr is empty"),
        ("2,AC GU,1,5\n", r"utr: record '2': whitespace at position 3"),
        ("2,ACGU,1,\n", "rl is empty"),
        ("2,ACGU,1,high\n", "rl 'high' is not a number"),
        ("2,ACGU,1,nan\n", "rl 'nan' is not finite"),
        ("2,ACGU,1,-inf\n", "rl '-inf' is not finite"),
    ],
)
def test_mrl_errors_name_file_and_line(tmp_path, bad, message):
    p = write(tmp_path, "lib.csv", ",utr,total,rl\n0,ACGU,1,5\n" + bad)
    with pytest.raises(MRLError, match=f"/lib.csv line 3: {message}"):
        read_mrl(p)


def test_mrl_column_errors(tmp_path):
    p = write(tmp_path, "lib.csv", "\n,seq,total,y\n0,ACGU,1,5\n")
    with pytest.raises(MRLError, match="/lib.csv line 2: no sequence column 'utr'; columns: '', 'seq'"):
        read_mrl(p)
    with pytest.raises(MRLError, match=r"/lib.csv line 2: no target column \(rl or hrl\).*'total', 'y'"):
        read_mrl(p, seq_column="seq")
    with pytest.raises(MRLError, match="/lib.csv line 2: no target column 'mrl'"):
        read_mrl(p, seq_column="seq", target_column="mrl")
    assert read_mrl(p, seq_column="seq", target_column="y")[0].mrl == 5.0
    with pytest.raises(MRLError, match="/empty.csv line 1: empty file"):
        read_mrl(write(tmp_path, "empty.csv", ""))
    with pytest.raises(MRLError, match="/head.csv line 1: a header but no UTRs"):
        read_mrl(write(tmp_path, "head.csv", "utr,rl\n\n"))


def test_split_utrs_deterministic_disjoint_covering():
    utrs = [UTR(str(i), "ACGU", float(i), i + 2) for i in range(1000)]
    train, val, test = split_utrs(utrs)
    assert (len(train), len(val), len(test)) == (800, 100, 100)
    assert split_utrs(utrs) == (train, val, test)
    lines = [u.line for u in train + val + test]
    assert sorted(lines) == list(range(2, 1002))  # disjoint and covering
    for part in (train, val, test):
        assert [u.line for u in part] == sorted(u.line for u in part)
    assert split_utrs(utrs, seed=1)[2] != test
    assert [len(x) for x in split_utrs(utrs, (0.5, 0.25, 0.25))] == [500, 250, 250]
    with pytest.raises(
        ValueError, match=r"^fractions must be three non-negative numbers summing to 1, got \(0.8, 0.1\)$"
    ):
        split_utrs(utrs, (0.8, 0.1))


VARIANTS = (
    ",utr,hrl,id,info4,mother\n"
    "0,ACGTACGT,5.0,g.10C>T,normal,ACGTACGT\n"
    '1,ACGTACGA,4.0,"g.10C>T,x_v1",variant,ACGTACGT\n'  # linked by mother (and id)
    "2,TTTTACGT,4.5,g.99A>G,normal,TTTTACGT\n"
    "3,ACCTACGT,6.0,g.12A>C_v1,variant,ACGTACGT\n"  # linked by mother only
    "4,GGGGGGGG,3.0,g.77A>C_v1,variant,GGGGGGGC\n"  # mother has no wild-type row
)


def test_read_variants(tmp_path):
    utrs, pairs = read_variants(write(tmp_path, "snv.csv", VARIANTS))
    assert [u.name for u in utrs] == ["g.10C>T", "g.10C>T,x_v1", "g.99A>G", "g.12A>C_v1", "g.77A>C_v1"]
    assert utrs[1] == UTR("g.10C>T,x_v1", "ACGUACGA", 4.0, 3)
    assert pairs == [VariantPair(0, 1), VariantPair(0, 3)]


def test_read_variants_errors(tmp_path):
    bad = VARIANTS.replace("2,TTTTACGT,4.5,g.99A>G,normal", "2,TTTTACGT,4.5,g.99A>G,wild")
    with pytest.raises(MRLError, match="/snv.csv line 4: info4 'wild' is not 'normal' or 'variant'"):
        read_variants(write(tmp_path, "snv.csv", bad))
    with pytest.raises(MRLError, match="/lib.csv line 1: no column 'info4'"):
        read_variants(write(tmp_path, "lib.csv", ",utr,hrl,mother\n0,ACGU,1,ACGU\n"))


# ---- real data ---------------------------------------------------------------------------------
def test_real_mirtarraw(data):
    pairs = read_pairs(data / "rri" / "MirTarRAW.csv")
    assert len(pairs) == 27_719
    pos = sum(p.label for p in pairs)
    assert abs(pos - (len(pairs) - pos)) <= 1
    assert all(set(p.a + p.b) <= set("ACGUN") for p in pairs)
    train, val = split_pairs(pairs)
    assert len(val) == 2772 and len(train) + len(val) == len(pairs)


def test_real_deepmirtar(data):
    pairs = read_pairs(data / "rri" / "DeepMirTar_IndTest.tsv")
    assert len(pairs) == 828 and {p.label for p in pairs} == {0, 1}
    assert pairs[0].line == 1 and "T" not in pairs[0].b


def test_real_mrl_20k(data):
    utrs = read_mrl(data / "mrl" / "Smart5UTR_egfp_m1pseudo_2_test20k.csv")
    assert len(utrs) == 20_000
    assert {len(u.seq) for u in utrs} == {50}
    assert [len(x) for x in split_utrs(utrs)] == [16_000, 2_000, 2_000]


def test_real_variants(data):
    utrs, pairs = read_variants(data / "mrl" / "pjsample_human_snv_designed_library_mrl.csv")
    assert len(utrs) == 3_002
    assert len(pairs) == 1_996
    assert len({p.wt for p in pairs}) == 797
    assert len({p.var for p in pairs}) == 1_996
    for p in pairs:
        assert len(utrs[p.wt].seq) == len(utrs[p.var].seq) and utrs[p.wt].seq != utrs[p.var].seq
    mismatches = Counter(sum(x != y for x, y in zip(utrs[p.wt].seq, utrs[p.var].seq)) == 1 for p in pairs)
    assert mismatches == {True: 1_941, False: 55}
    wild = sum(1 for u in utrs if not u.name.endswith(("_v1", "_v2", "_v3")))
    assert wild == 867  # so 2,135 variants, 139 of them unlinked
