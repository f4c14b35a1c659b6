"""The thirteenth hostile-input audit: three inconsistencies the eleventh left.

* A file named ``.gz`` that is not gzip: the FASTA reader read it as the text it holds (gzip or
  not by its magic bytes), the structure reader refused it ("cannot read (Not a gzipped file
  (b'>r'))"). Every reader now opens its files through :func:`resm.fasta.open_text`: the content
  decides, never the name, which only adds to an error about the content of a file named .gz
  that is not gzip (:func:`resm.fasta.gz_name_note`).
* ``Bundle.predict_mrl`` took a set of UTRs and gave its predictions in the set's order, which
  changes from run to run (string hashing is salted); ``Bundle.interact`` a set of pairs, its
  scans (which name no pair) likewise. Both refuse a set as the other entries refuse a set of
  bare sequences (:func:`resm.records.refuse_unordered`).
* A ``resm compare`` backend whose ``name`` is ``false`` or ``''`` was "missing key 'name'"
  (the key is there); ``name: false`` is now named as not a string, ``''`` as empty, with the
  config file that holds it."""

from __future__ import annotations

import gzip

import pytest
import yaml

from tests.robustness.cases import Case, check_one_line, write

DBN = ">r1\nGGGAAACCCAUGC\n(((...)))....\n"
NOTE = " (named .gz, but not gzip-compressed: read as text)"

# ---------------------------------------------------------------- a .gz name on plain text
CASES = [
    Case(
        "fold/reference-plain-text-named-gz-damaged",  # read as text, so its own fault is named
        ["fold", "{fa}", "-o", "{t}/o.dbn", "--reference", "{t}/r.dbn.gz", "--threads", "1"],
        1,
        ["{t}/r.dbn.gz line 3: structure length 12 != sequence length 13" + NOTE],
        write("r.dbn.gz", ">r1\nGGGAAACCCAUGC\n(((...)))...\n"),
    ),
    Case(
        "fold/input-junk-named-gz",  # the wrong file, or a gunzip -c kept under its old name
        ["fold", "{t}/x.fa.gz", "-o", "{t}/o.dbn", "--threads", "1"],
        1,
        [
            "{t}/x.fa.gz line 1: a bare sequence holds whitespace (one sequence per line, or FASTA with '>' headers)"
            + NOTE
        ],
        write("x.fa.gz", b"<html> 404 Not Found </html>\n"),
    ),
    Case(
        "probe/structures-junk-named-gz",
        ["probe", "{tiny}", "{t}/s.dbn.gz", "--out", "{t}/p.pt"],
        1,
        ["{t}/s.dbn.gz line 1: expected '>name' header, got '<html> 404 Not Found </html>'" + NOTE],
        write("s.dbn.gz", b"<html> 404 Not Found </html>\n"),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_input_is_one_line_and_writes_nothing(case: Case, ws, tmp_path, capfd, monkeypatch):
    check_one_line(case, ws, tmp_path, capfd, monkeypatch)


@pytest.mark.parametrize("packed", [False, True], ids=["plain-text", "gzip"])
def test_every_reader_reads_a_gz_name_by_its_content(tmp_path, capfd, packed):
    """resm fold read a plain FASTA named x.fa.gz as text, where the structure reader (its
    --reference) said "cannot read (Not a gzipped file (b'>r'))" of the same kind of file:
    both now read by content, so both read it, and a real gzip file as before."""
    from resm.cli import main
    from resm.structure.io import read_structures

    def put(name: str, text: str):
        path = tmp_path / name
        path.write_bytes(gzip.compress(text.encode()) if packed else text.encode())
        return path

    fa, ref = put("x.fa.gz", ">r1\nGGGAAACCCAUGC\n"), put("r.dbn.gz", DBN)
    assert [(s.name, s.seq, s.dotbracket) for s in read_structures(ref)] == [("r1", "GGGAAACCCAUGC", "(((...)))....")]
    out = tmp_path / "o.dbn"
    code = main(["fold", str(fa), "-o", str(out), "--threads", "1", "--reference", str(ref)])
    err = capfd.readouterr().err
    assert code == 0, err
    assert out.read_text().startswith(">r1\nGGGAAACCCAUGC\n")
    assert "F1 over 1 sequence" in err


def test_a_structure_file_named_gz_is_read_as_every_input(tmp_path):
    """The structure reader now opens through :func:`resm.fasta.open_text`: a UTF-16 file named
    .gz (a byte-order mark, then text) is read as a plain one is."""
    from resm.structure.io import read_structure

    path = tmp_path / "r.dbn.gz"
    path.write_text(DBN, encoding="utf-16")
    rec = read_structure(path)
    assert (rec.name, rec.seq) == ("r1", "GGGAAACCCAUGC")


def test_the_fasta_reader_says_a_gz_name_is_not_gzip(tmp_path):
    """resm.fasta.read_fasta (data.families, the pretraining corpus) adds the same note to an
    error about a file named .gz that holds text; a real gzip file's error has none."""
    from resm.fasta import FastaError, read_fasta

    path = tmp_path / "f.fa.gz"
    path.write_bytes(b"GGGG\n>a\nACGU\n")
    with pytest.raises(FastaError) as e:
        list(read_fasta(path))
    assert str(e.value).endswith(NOTE) and str(e.value).startswith(f"{path} line 1: ")
    path.write_bytes(gzip.compress(b"GGGG\n>a\nACGU\n"))
    with pytest.raises(FastaError) as e:
        list(read_fasta(path))
    assert str(e.value).startswith(f"{path} line 1: ") and not str(e.value).endswith(NOTE)


# ---------------------------------------------------------------- sets of UTRs and pairs
UNORDERED = [{"GGGACAUCGAUCGAUGC", "ACGUACGUAAGG"}, frozenset({"GGGACAUCGAUCGAUGC"})]


@pytest.mark.parametrize("seqs", UNORDERED, ids=["set", "frozenset"])
def test_predict_mrl_refuses_a_set_of_utrs(ws, seqs):
    """A set's predictions came back in its order, which changes from run to run: the caller
    could not tell which UTR each prediction was of."""
    import resm

    bundle = resm.load_bundle(ws["mrl_model"])
    with pytest.raises(TypeError) as e:
        bundle.predict_mrl(seqs)
    assert str(e.value) == (
        "seqs: a set of UTRs has no order, so the predictions could not be matched to them; "
        "give a list, or a mapping of id to UTR"
    )
    # a list and a mapping (its keys, its values: a mapping's views keep its order) are taken
    utrs = {"u1": "GGGACAUCGAUCGAUGC", "u2": "ACGUACGUAAGG"}
    by_list = bundle.predict_mrl(list(utrs.values()))
    assert by_list.shape == (2,)
    assert bundle.predict_mrl(utrs).tolist() == by_list.tolist()
    assert bundle.predict_mrl(utrs.values()).tolist() == by_list.tolist()


def test_interact_refuses_a_set_of_pairs(ws):
    """The scans name no pair: a set of pairs, even named ones, gave scans no caller could match."""
    import resm

    bundle = resm.load_bundle(ws["rri_model"])
    pairs = {("UGGAAUGUAAAGAAGUAUGUAU", "ACAUUCCAGCUAGC"), ("GGGGAAACCCC", "GGGGUUUCCCC")}
    with pytest.raises(TypeError) as e:
        bundle.interact(pairs)
    assert str(e.value) == "pairs: a set of pairs has no order, so the scans could not be matched to them; give a list"
    assert len(bundle.interact(sorted(pairs))) == 2


def test_a_mapping_s_keys_are_ordered_sequences(ws):
    """A dict's keys are a collections.abc.Set but keep the dict's order: they are taken as a
    list of sequences, named seq_1, seq_2... by place (they were refused as a set)."""
    import resm

    _, index = resm.embed_sequences(ws["tiny"], dict.fromkeys(["GGGGAAACCCC", "ACGUACGUAA"]).keys(), device="cpu")
    assert list(index["ids"]) == ["seq_1", "seq_2"]


# ---------------------------------------------------------------- resm compare: a backend's name
@pytest.mark.parametrize(
    "entry, said",
    [
        ({"name": False, "kind": "viennarna"}, "backends[0].name: expected a string, got False"),
        ({"name": "", "kind": "viennarna"}, "backends[0].name: is empty ('')"),
        ({"name": "  ", "kind": "viennarna"}, "backends[0].name: is empty ('  ')"),
        ({"name": None, "kind": "viennarna"}, "backends[0].name: expected a string, got None"),
        ({"name": "v", "kind": False}, "backends[0].kind: expected a string, got False"),
        ({"name": "v", "kind": ""}, "backends[0].kind: is empty ('')"),
        ({"kind": "viennarna"}, "backends[0]: missing key 'name'"),
    ],
    ids=["name-false", "name-empty", "name-blank", "name-null", "kind-false", "kind-empty", "name-missing"],
)
def test_compare_names_a_backend_name_that_is_empty_or_no_text(ws, tmp_path, capfd, entry, said):
    """``name: false`` and ``name: ''`` were "missing key 'name'" (the key is there), naming no file."""
    from resm.cli import main

    cfg = yaml.safe_load(ws["compare_cfg"].read_text())
    cfg.update(backends=[entry], out_dir=str(tmp_path / "cmp"))
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    capfd.readouterr()
    code = main(["compare", "--config", str(path)])
    err = capfd.readouterr().err
    assert (code, err) == (1, f"resm compare: error: {path}: {said}\n")
    assert [p.name for p in tmp_path.iterdir()] == ["c.yaml"]


def test_a_backend_name_written_as_a_number_is_its_text():
    """As every config key typed str (:func:`resm.config.from_dict`), ``name: 12`` is '12'."""
    from resm.compare.backends import BackendSpec

    assert BackendSpec.from_dict({"name": 12, "kind": "viennarna"}).name == "12"
