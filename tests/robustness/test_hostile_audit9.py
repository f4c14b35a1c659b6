"""The ninth hostile-input audit: each case was an input resm took silently or said without naming
it: a JSON file (a bundle's manifest, a DeepSpeed config, a probe record) naming one key twice,
of which the last was kept; a PEFT adapter whose ``r`` of 4.5 was read as 4, whose
``lora_alpha`` of true was 1.0, or whose NaN weight scored every pair NaN ('Input contains
NaN.'); two pair lists one after the other, read as one record; ``--bpp`` or ``--report`` naming
a file that ``--plot`` or ``--split-dir`` writes, ``resm export --hf`` naming the contact
regression ``--out`` writes beside it, and an output over the record beside a probe
(``p.pt.json``); a pretraining config's validation.max_records of -1 or 0 or a mask_seed past a
seed's range; the Python API's ``Bundle.interact(["ACGU"])``, which scored C against U, a record
id of None or bytes, written out as ``'None'`` or ``"b'r1'"``, a ``threshold`` or ``min_p`` of
NaN, and a read-only mapping of UTRs read as its ids. Command-line cases keep the rule of
:func:`tests.robustness.cases.check_one_line` (one line naming the thing, the exit code, nothing
written).

Checked and already handled (no test added): FASTA, dbn, reference dbn, pairs TSV and UTR CSV
with a byte-order mark, CRLF or CR-only line ends, NUL bytes, tabs, 200,000-character lines,
repeated ids, empty records or files, lowercase, T, N and IUPAC letters, gaps, digits, UTF-16
and Latin-1 bytes; bpseq, ct and pair-list damage (partners out of range or disagreeing,
indices out of order, self-pairs, pairs written twice); ids with '/', '..' or 300 characters in
--split-dir and --plot; a folder, /dev/zero or a named pipe as an input; outputs equal to an
input through a link, a hard link or a relative path, in a missing folder, or a folder; '-' for
binary outputs; two options naming one file; the umask on every output; SIGINT during fold,
embed and interact (exit 130, no temporary left, no worker left); every numeric option's rule
at its bounds; YAML keys given twice; the API's generators, empty lists, wrong container
types, bytes sequences and long sequences."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from tests.robustness.cases import Case, check_one_line


# ---------------------------------------------------------------- a JSON key given twice
# json.loads keeps the last of a key given twice: a manifest's head config saying max_length 40,
# then 4000, was read as 4000 in silence (YAML configs refuse it already).
def _manifest_with_a_key_twice(p: dict) -> None:
    dst = Path(p["t"]) / "m"
    shutil.copytree(p["rri_model"], dst)
    text = (dst / "manifest.json").read_text()
    assert text.count('"max_length": 40') == 1
    (dst / "manifest.json").write_text(text.replace('"max_length": 40', '"max_length": 40, "max_length": 4000'))


INTERACT = ["interact", "{pairs}", "--model", "{t}/m", "--backbone", "{tiny}", "-o", "{t}/s.tsv", "--threads", "1"]
CASES = [
    Case(
        "interact/manifest-key-given-twice",
        INTERACT,
        1,
        ["{t}/m/manifest.json: invalid JSON (line ", ": key 'max_length' given twice in one object)"],
        _manifest_with_a_key_twice,
    ),
]


def test_a_json_key_given_twice_is_named_with_its_line():
    from resm.utils.jsontext import load_json

    assert load_json('{"a": {"b": 1}, "c": [{"b": 2}]}') == {"a": {"b": 1}, "c": [{"b": 2}]}  # one per object
    with pytest.raises(json.JSONDecodeError) as e:
        load_json('{"a": 1,\n "b": {"c": 2,\n  "c": 3}}')
    assert (e.value.msg, e.value.lineno) == ("key 'c' given twice in one object", 2)
    with pytest.raises(json.JSONDecodeError, match="key 'a' given twice"):
        load_json(b'\xef\xbb\xbf{"a": 1, "a": 1}')  # bytes, a byte-order mark too


# ---------------------------------------------------------------- a PEFT adapter folder
def _peft(config: dict, weight: float = 0.0, rank: int = 4):
    """A PEFT LoRA folder ``{t}/peft`` on the tiny backbone's first query projection."""

    def setup(p: dict) -> None:
        from safetensors.torch import save_file

        folder = Path(p["t"]) / "peft"
        folder.mkdir()
        (folder / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", **config}))
        key = "base_model.model.esm.encoder.layer.0.attention.self.query.lora_{}.weight"
        a, b = torch.full((rank, 64), weight), torch.zeros(64, rank)
        save_file({key.format("A"): a, key.format("B"): b}, str(folder / "adapter_model.safetensors"))

    return setup


ADAPTER = [*INTERACT[:3], "{rri_model}", *INTERACT[4:], "--adapter", "{t}/peft"]
CONFIG = "{t}/peft/adapter_config.json: field "
CASES += [
    Case(
        "interact/peft-nan-weight", ADAPTER, 1, ["{t}/peft/adapter_model.safetensors: weight "], _peft({}, float("nan"))
    ),
    Case("interact/peft-rank-half", ADAPTER, 1, [CONFIG + "'r' is 4.5; expected a whole number"], _peft({"r": 4.5})),
    Case("interact/peft-rank-null", ADAPTER, 1, [CONFIG + "'r' is None; expected a whole number"], _peft({"r": None})),
    Case("interact/peft-rank-text", ADAPTER, 1, [CONFIG + "'r' is '4'; expected a whole number"], _peft({"r": "4"})),
    Case(
        "interact/peft-alpha-bool",
        ADAPTER,
        1,
        [CONFIG + "'lora_alpha' is True; expected a number"],
        _peft({"r": 4, "lora_alpha": True}),
    ),
    Case(
        "interact/peft-rank-not-the-weights",
        ADAPTER,
        1,
        [CONFIG + "'r' is 8, but adapter_model.safetensors holds base_model.model.esm.encoder.layer.0.attention."],
        _peft({"r": 8}),
    ),
]


def test_a_peft_adapter_of_whole_numbers_loads(ws, tmp_path):
    """PEFT's own fields as it writes them (an integer rank, a float or integer alpha) still load."""
    from resm.backbone.peft_format import read_peft_adapter

    _peft({"r": 4, "lora_alpha": 16, "lora_dropout": 0.1})({"t": str(tmp_path)})
    cfg, state = read_peft_adapter(tmp_path / "peft")
    assert (cfg.r, cfg.alpha, cfg.dropout, cfg.targets, cfg.layers) == (4, 16.0, 0.1, ["q_proj"], [0])
    assert sorted(state) == ["layers.0.self_attn.q_proj.lora_A.weight", "layers.0.self_attn.q_proj.lora_B.weight"]


# ---------------------------------------------------------------- two records in one pair list
# `cat a.pairs b.pairs > ab.pairs` was read as one record: the second's name and sequence with
# the pairs of both, folded and scored with exit 0.
def _two_pair_lists(p: dict) -> None:
    one = "#Name: a\n#Sequence: GGGGAAAACCCC\n1 12\n2 11\n"
    two = "#Name: b\n#Sequence: ACGUACGUACGU\n5 9\n"
    (Path(p["t"]) / "ab.pairs").write_text(one + two)
    (Path(p["t"]) / "a.fa").write_text(">b\nACGUACGUACGU\n")


FOLD = ["fold", "{t}/ab.pairs", "-o", "{t}/o.dbn", "--threads", "1"]
TWO = "{t}/ab.pairs line 5: a second #Name: line, 'b' (the first, on line 1: 'a'); a pair list holds one record"
CASES += [
    Case("fold/pairs-two-records", FOLD, 1, [TWO], _two_pair_lists),
    Case(
        "fold/pairs-two-records-as-reference",
        [
            "fold",
            "{t}/a.fa",
            "--reference",
            "{t}/ab.pairs",
            "--report",
            "{t}/r.tsv",
            "-o",
            "{t}/o.dbn",
            "--threads",
            "1",
        ],
        1,
        [TWO],
        _two_pair_lists,
    ),
]


# ---------------------------------------------------------------- a file output inside a folder output
# `resm fold x.fa --plot d --bpp d/r1.png` wrote record r1's figure over the pair probabilities
# and said it had written both; --split-dir d with --bpp d/r1.dbn kept one of the two.
FOLD_FA = ["fold", "{fa}", "--threads", "1"]
CASES += [
    Case(
        "fold/bpp-is-a-plot-file",
        [*FOLD_FA, "-o", "{t}/o.dbn", "--plot", "{t}/d", "--bpp", "{t}/d/r1.png"],
        1,
        ["--bpp {t}/d/r1.png: is the file r1.png that record 'r1' writes into {t}/d"],
    ),
    Case(
        "fold/bpp-is-a-split-file",
        [*FOLD_FA, "--split-dir", "{t}/d", "--bpp", "{t}/d/r2.dbn"],
        1,
        ["--bpp {t}/d/r2.dbn: is the file r2.dbn that record 'r2' writes into {t}/d"],
    ),
    Case(
        "fold/report-is-a-plot-file",
        [*FOLD_FA, "-o", "{t}/o.dbn", "--plot", "{t}/d", "--reference", "{t}/r.dbn", "--report", "{t}/d/r2_ss.png"],
        1,
        ["--report {t}/d/r2_ss.png: is the file r2_ss.png that record 'r2' writes into {t}/d"],
        lambda p: (Path(p["t"]) / "r.dbn").write_text(
            ">r1\nGGGAAACCCAUGC\n(((...)))....\n>r2\nACGUACGUAAAAACCCGGGUUU\n......................\n"
        ),
    ),
]

# `resm export RUN --out esm2_a.pt --hf esm2_a-contact-regression.pt` wrote the contact regression
# fair-esm reads beside the .pt, then the Hugging Face folder in its place, and said it wrote both.
CASES += [
    Case(
        "export/hf-is-the-contact-regression",
        ["export", "{run}", "--out", "{t}/esm2_a.pt", "--hf", "{t}/esm2_a-contact-regression.pt"],
        1,
        ["--hf {t}/esm2_a-contact-regression.pt: is where the contact regression of --out {t}/esm2_a.pt is written"],
    )
]


# ---------------------------------------------------------------- the record beside a probe
# `resm fold x.fa --probe p.pt -o p.pt.json` (or `resm interact --zero-shot --probe p.pt -o
# p.pt.json`) wrote its output over the probe's record, which it had just read: the probe
# became unusable, exit 0.
def _probe_copy(p: dict) -> None:
    shutil.copy2(p["probe"], Path(p["t"]) / "p.pt")
    shutil.copy2(p["probe"] + ".json", Path(p["t"]) / "p.pt.json")


RECORD = "--out {t}/p.pt.json: is the record of %s; an output may not replace an input"
CASES += [
    Case(
        "fold/out-is-the-probe-record",
        ["fold", "{fa}", "--model", "{tiny}", "--probe", "{t}/p.pt", "-o", "{t}/p.pt.json", "--threads", "1"],
        1,
        [RECORD % "--probe"],
        _probe_copy,
    ),
    Case(
        "interact/out-is-the-probe-record",
        ["interact", "{pairs}", "--zero-shot", "--backbone", "{tiny}", "--probe", "{t}/p.pt", "-o", "{t}/p.pt.json"],
        1,
        [RECORD % "--probe"],
        _probe_copy,
    ),
]

# a folder given as the probe, or a file as the PEFT adapter folder, was said not to exist
CASES += [
    Case(
        "fold/probe-is-a-folder",
        ["fold", "{fa}", "--model", "{tiny}", "--probe", "{dir}", "-o", "{t}/o.dbn", "--threads", "1"],
        1,
        ["{dir}: is a folder, not a probe file"],
    ),
    Case(
        "interact/adapter-is-a-file",
        [*ADAPTER[:-1], "{fa}"],
        1,
        ["{fa}: is a file, not a PEFT adapter folder (adapter_config.json and adapter_model.safetensors)"],
    ),
]


# ---------------------------------------------------------------- a link to nothing
# A link that loops, or points at nothing, was 'no such file' (or a config 'nor a shipped config
# of that name'), of a path that is there.
def _links(p: dict) -> None:
    t = Path(p["t"])
    (t / "loop_a").symlink_to("loop_b")
    (t / "loop_b").symlink_to("loop_a")
    (t / "dangling.pt").symlink_to("gone.pt")


LOOP = "{t}/loop_a: is a link that loops ("
DANGLING = "{t}/dangling.pt: is a link to gone.pt, which is not there"
CASES += [
    Case(f"{cmd}/link-{kind}", argv, 1, [said], _links)
    for cmd, kind, argv, said in (
        ("fold", "loop-input", ["fold", "{t}/loop_a", "-o", "{t}/o.dbn"], LOOP),
        ("fold", "dangling-model", ["fold", "{fa}", "--model", "{t}/dangling.pt", "-o", "{t}/o.dbn"], DANGLING),
        ("embed", "loop-model", ["embed", "{t}/loop_a", "{fa}", "{t}/e.npz"], LOOP),
        ("pretrain", "loop-config", ["pretrain", "--config", "{t}/loop_a"], LOOP),
    )
]


# ---------------------------------------------------------------- the validation section
# validation.max_records -1 failed at the first validation with 'limit must be >= 0, got -1'
# (naming no key); 0 trained without a validation loss, warning that data.val_fraction had left
# the split empty; a mask_seed past 2**64 overflowed torch's generator there.
PRETRAIN = ["pretrain", "--config", "{pretrain_cfg}", "train.out_dir={t}/run", "train.val_every=1"]
CASES += [
    Case(
        f"pretrain/validation-{key}-{value}",
        [*PRETRAIN, f"validation.{key}={value}"],
        1,
        [f"validation: {key} must be >= {low}", f"got {value}"],
    )
    for key, value, low in (
        ("max_records", -1, 1),
        ("max_records", 0, 1),
        ("mask_seed", -1, 0),
        ("mask_seed", 2**70, 0),
    )
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_input_is_one_line_and_writes_nothing(case: Case, ws, tmp_path, capfd, monkeypatch):
    check_one_line(case, ws, tmp_path, capfd, monkeypatch)


# ---------------------------------------------------------------- the Python API's pairs and ids
@pytest.fixture(scope="module")
def rri(ws):
    import resm

    return resm.load_bundle(ws["rri_model"], device="cpu")


@pytest.mark.parametrize(
    "pairs, error, said",
    [
        # tuple("ACGU") was the pair (a_name 'A', a 'C', b_name 'G', b 'U'); tuple("AC") was A against C
        (["ACGU"], "BundleError", "pair 1: expected (a, b) or (a_name, a, b_name, b), got one str"),
        ([b"AC"], "BundleError", "pair 1: expected (a, b) or (a_name, a, b_name, b), got one bytes"),
        # a mapping of a to b was iterated as its keys, each a str taken as a pair
        (
            {"ACGUACGUAA": "GGGGAAAACC"},
            "TypeError",
            "pairs: expected (a, b) or (a_name, a, b_name, b) pairs in a list, got one dict",
        ),
        ("ACGUACGUAA", "TypeError", "pairs: expected (a, b) or (a_name, a, b_name, b) pairs in a list, got one str"),
        # a partner named None was named 'None' in the scan
        ([(None, "ACGUACGUAA", "b", "GGGGAAAACC")], "TypeError", "record None: the id must be a str, got NoneType"),
    ],
    ids=["four-letters", "two-bytes", "mapping", "one-str", "name-none"],
)
def test_api_interact_refuses_what_is_no_pair(rri, pairs, error, said):
    with pytest.raises(Exception) as e:
        rri.interact(pairs)
    assert (type(e.value).__name__, str(e.value)) == (error, said)


@pytest.mark.parametrize(
    "records, said",
    [
        ({None: "ACGU"}, "record None: the id must be a str, got NoneType"),
        ([(("a", 1), "ACGU")], "record ('a', 1): the id must be a str, got tuple"),
        ([(1.5, "ACGU")], "record 1.5: the id must be a str, got float"),
    ],
    ids=["none", "tuple", "float"],
)
def test_api_record_ids_that_are_no_text_are_refused(ws, records, said):
    """str() of the id named the record 'None', "('a', 1)" or '1.5' in every result."""
    import resm

    with pytest.raises(TypeError) as e:
        resm.embed_sequences(ws["tiny"], records, device="cpu")
    assert str(e.value) == said


def test_api_record_ids_of_bytes_or_integers_are_their_text(ws):
    """bytes ids are read as ASCII (as bytes sequences are), not written as "b'r1'"; integers
    (a table's row numbers) as themselves."""
    import numpy as np

    import resm

    arrays, index = resm.embed_sequences(ws["tiny"], [(b"r1", "ACGU"), (np.int64(7), "GGCA")], device="cpu")
    assert index["ids"] == ["r1", "7"] and sorted(arrays) == ["7/mean/2", "r1/mean/2"]


# ---------------------------------------------------------------- the Python API's decoding values
# resm fold --threshold and --bpp-min are held to [0, 1]; Predictor.fold(threshold=nan) or 2
# predicted no pair, True was 1, "0.5" a NumPy UFuncTypeError; Folded.sparse(min_p=nan) listed
# every pair.
@pytest.fixture(scope="module")
def probe_predictor(ws):
    import resm

    return resm.load_predictor(ws["tiny"], zero_shot=ws["probe"], device="cpu", threads=1)


@pytest.mark.parametrize("value", [float("nan"), 2, -0.5, True, "0.5"], ids=["nan", "two", "negative", "bool", "text"])
def test_api_decoding_values_are_held_to_the_flags_rules(probe_predictor, value):
    from resm.structure.io import FoldError

    shown = repr(value) if isinstance(value, str) else value
    with pytest.raises(FoldError) as e:
        list(probe_predictor.fold(["GGGGAAAACCCC"], threshold=value))
    assert str(e.value) == f"threshold: must be a number in [0, 1], got {shown}"
    folded = probe_predictor.fold_one("GGGGAAAACCCC")
    with pytest.raises(FoldError) as e:
        folded.sparse(value)
    assert str(e.value) == f"min_p: must be a number in [0, 1], got {shown}"


def test_api_decoding_values_in_range_still_decode(probe_predictor):
    import numpy as np

    (a,) = probe_predictor.fold(["GGGGAAAACCCC"], threshold=np.float32(0.0))
    (b,) = probe_predictor.fold(["GGGGAAAACCCC"], threshold=1)
    assert (a.pairs >= 0).sum() > 0 and (b.pairs >= 0).sum() == 0
    assert len(a.sparse(0)[0]) == len(a.sparse(np.float64(0.0))[0]) > len(a.sparse(1)[0]) == 0


def test_api_predict_mrl_reads_any_mapping_as_ids_to_utrs(ws):
    """A mapping other than a dict (a read-only MappingProxyType) was iterated as its keys: the
    id "a" was predicted as a 1-nt UTR, exit 0."""
    from types import MappingProxyType

    import numpy as np

    import resm

    mrl = resm.load_bundle(ws["mrl_model"], device="cpu")
    utrs = {"a": "ACGUACGUACGGAUG", "b": "GGGAAACCCAUG"}
    want = mrl.predict_mrl(list(utrs.values()))
    np.testing.assert_array_equal(mrl.predict_mrl(MappingProxyType(utrs)), want)
