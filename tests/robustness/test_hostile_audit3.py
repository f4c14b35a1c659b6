"""The third hostile-input audit: each case was accepted (exit 0, or a silent wrong result)
or refused in words naming nothing before its fix. Command-line cases keep the rule of
:mod:`tests.robustness.cases` (one line naming the thing, the exit code, nothing
written)."""

from __future__ import annotations

from pathlib import Path

import pytest

import resm
from resm.fasta import FastaError, check_record_ids, parse_fasta, read_fasta
from resm.structure.io import StructureError, read_structure
from tests.robustness.cases import Case, check_one_line, write
from tests.robustness.test_hostile_audit2 import _hf_config

FOLD = ["fold", "{t}/in.fa", "-o", "{t}/o.dbn", "--threads", "1"]

# ---------------------------------------------------------------- invisible characters in ids
# Unicode format characters (category Cf) were accepted in ids: a bidi override makes an id
# display as another one in every output; a zero-width space makes two ids that look alike.
FORMAT_CHARACTERS = ["\u200b", "\u200d", "\u202e", "\u2066", "\ufeff", "\u00ad"]

CASES = [
    Case(
        "fold/id-with-a-bidi-override",
        FOLD,
        1,
        ["{t}/in.fa line 1: id 'ab\\u202ec' holds the invisible format character U+202E"],
        write("in.fa", ">ab\u202ec\nGGGGAAACCCC\n"),
    ),
    Case(
        "fold/ct-name-with-a-zero-width-space",
        ["fold", "{t}/in.ct", "-o", "{t}/o.dbn", "--threads", "1"],
        1,
        ["{t}/in.ct line 1: name 'a\\u200bb' holds the invisible format character U+200B"],
        write("in.ct", "4 a\u200bb\n1 G 0 2 4 1\n2 G 1 3 0 2\n3 C 2 4 0 3\n4 C 3 0 1 4\n"),
    ),
]


# ---------------------------------------------------------------- a model's layer norm epsilon
# a config.json with layer_norm_eps 1e308 embedded every sequence as the same meaningless vector, exit 0
CASES += [
    Case(
        f"embed/hf-layer-norm-eps-{v}",
        ["embed", "{t}/hf", "{fa}", "{t}/e.npz"],
        1,
        [f"{{t}}/hf/config.json: layer_norm_eps must be a number in (0, 0.1] (ESM-2 uses 1e-05), got {said}"],
        lambda p, v=v: _hf_config(p, layer_norm_eps=v),
    )
    for v, said in [(1e308, "1e+308"), (0.5, "0.5"), (0, "0"), (-1e-5, "-1e-05"), ("1e-5", "'1e-5'")]
]


def test_layer_norm_eps_range_holds_for_every_model_config():
    from resm.backbone.config import ESM2Config

    assert ESM2Config(2, 64, 4, layer_norm_eps=0.1).layer_norm_eps == 0.1  # the bound itself is fine
    with pytest.raises(ValueError) as e:
        ESM2Config(2, 64, 4, layer_norm_eps=float("inf"))  # a structure model's backbone_config
    assert str(e.value) == "layer_norm_eps must be a number in (0, 0.1] (ESM-2 uses 1e-05), got inf"


@pytest.mark.parametrize("c", FORMAT_CHARACTERS, ids=[f"U+{ord(c):04X}" for c in FORMAT_CHARACTERS])
def test_an_id_with_a_format_character_is_refused_everywhere(c, tmp_path):
    said = f"holds the invisible format character U+{ord(c):04X}"
    rid = f"a{c}b"
    with pytest.raises(FastaError) as e:
        list(parse_fasta([f">{rid} desc", "ACGU"], "x.fa"))
    assert str(e.value) == f"x.fa line 1: id {rid!r} {said}"
    for name, text in [
        ("e.dbn", f">{rid}\nGGCC\n(..)\n"),
        ("e.bpseq", f"# Name: {rid}\n1 G 4\n2 G 0\n3 C 0\n4 C 1\n"),
        ("e.pairs", f"# Name: {rid}\n# Sequence: GGCC\n1 4\n"),
    ]:
        (tmp_path / name).write_text(text)
        with pytest.raises(StructureError) as e:
            read_structure(tmp_path / name)
        assert said in str(e.value) and str(e.value).startswith(str(tmp_path / name)), str(e.value)
    with pytest.raises(ValueError) as e:
        check_record_ids(["ok", rid])
    assert str(e.value) == f"record 2: id {rid!r} {said}"


def test_api_embed_refuses_an_id_with_a_format_character(ws):
    with pytest.raises(ValueError) as e:
        resm.embed_sequences(ws["tiny"], {"x\u202egnp.exe": "ACGU"}, device="cpu")
    assert str(e.value) == "record 1: id 'x\\u202egnp.exe' holds the invisible format character U+202E"


def test_a_byte_order_mark_at_the_start_of_a_file_is_still_dropped(tmp_path):
    (tmp_path / "b.fa").write_bytes("\ufeff>a\nACGU\n".encode())
    assert [r.id for r in read_fasta(tmp_path / "b.fa")] == ["a"]
    assert [r.id for r in parse_fasta([">a\u00e9\u4e2d", "ACGU"])] == ["a\u00e9\u4e2d"]  # any script still


def test_a_table_name_with_a_format_character_is_refused(tmp_path):
    from resm.data.rri import PairsError, iter_pairs

    (tmp_path / "p.tsv").write_text("a_name\ta_seq\tb_name\tb_seq\nmiR\u2066-1\tUGGAAUG\tsite\tACAUUCC\n")
    with pytest.raises(PairsError) as e:
        list(iter_pairs(tmp_path / "p.tsv", require_label=False))
    assert (
        str(e.value)
        == f"{tmp_path / 'p.tsv'} line 2: a_name: name 'miR\\u2066-1' holds the invisible format character U+2066"
    )


# ---------------------------------------------------------------- the API's token budget
@pytest.mark.parametrize("v", [0, -1, True, 2.5, "8"])
def test_api_embed_refuses_a_token_budget_the_command_line_refuses(v, tmp_path):
    """`embed_sequences(..., toks_per_batch=0)` embedded (one record a batch) where `resm embed
    --toks-per-batch 0` is refused: both hold to resm.fasta's rule, checked before the model is
    loaded (the model named here does not exist)."""
    with pytest.raises(ValueError) as e:
        resm.embed_sequences(tmp_path / "none.pt", {"a": "ACGU"}, toks_per_batch=v, device="cpu")
    assert str(e.value) == f"toks_per_batch: must be an integer >= 1, got {v!r}"


CASES.append(
    Case(
        "embed/toks-per-batch-0-said-as-the-api",
        ["embed", "{tiny}", "{fa}", "{t}/e.npz", "--toks-per-batch", "0"],
        2,
        ["argument --toks-per-batch: must be an integer >= 1, got 0"],
    )
)


# ---------------------------------------------------------------- interact's windows
# --window 1 scanned one nucleotide against one (no duplex fits), exit 0; --stride past the
# window was already refused (tests/robustness/test_commands_hostile.py)
INTERACT = ["interact", "{pairs}", "--model", "{rri_model}", "-o", "{t}/o.tsv"]
CASES += [
    *[
        Case(
            f"interact/window-{w}",
            [*INTERACT, "--window", w],
            1,
            [
                f"window must lie in [8, 40] (--window; 8 nt: the shortest duplex scored, 40: the head's "
                f"max_length), got {w}"
            ],
        )
        for w in ("1", "7")
    ],
    # the zero-shot score reads each pair whole: --window was ignored in silence
    Case(
        "interact/zero-shot-window",
        ["interact", "{pairs}", "--zero-shot", "--backbone", "{tiny}", "--window", "20", "-o", "{t}/o.tsv"],
        2,
        ["--window and --stride scan a trained rri model (the zero-shot score reads a pair whole)"],
    ),
]


def test_interact_scans_with_the_shortest_window(ws, tmp_path):
    from resm.cli import main

    assert (
        main(
            [
                "interact",
                str(ws["pairs"]),
                "--model",
                str(ws["rri_model"]),
                "--window",
                "8",
                "-o",
                str(tmp_path / "o.tsv"),
            ]
        )
        == 0
    )
    assert (tmp_path / "o.tsv").read_text().startswith("index\ta_name")


# ---------------------------------------------------------------- wording
COMPARE = ["compare", "--config", "{compare_cfg}", "out_dir={t}/cmp"]
CASES += [
    # said 'data.test: <folder> not found'
    Case(
        "compare/test-set-a-folder",
        [*COMPARE, "data.test={t}/d"],
        1,
        ["data.test: {t}/d is a folder, not a file"],
        lambda p: (Path(p["t"]) / "d").mkdir(),
    ),
    Case(
        "compare/test-set-a-device",
        [*COMPARE, "data.test=/dev/null"],
        1,
        ["data.test: /dev/null is not a regular file"],
    ),
    # said '/dev/zero: no such config file, nor a shipped ... config of that name'
    *[
        Case(
            f"{cmd}/config-a-device",
            [cmd, "--config", "/dev/zero"],
            1,
            ["/dev/zero: is not a regular file (a device or a pipe), not a config file"],
        )
        for cmd in ("compare", "finetune", "pretrain")
    ],
]


def test_fold_summary_names_standard_output(ws, tmp_path):
    """`resm fold x.dbn --reference x.dbn --report - -o o.dbn` said 'wrote o.dbn, -'."""
    import subprocess
    import sys

    from tests.conftest import ENV, REPO
    from tests.robustness.conftest import said

    out = tmp_path / "o.dbn"
    argv = ["fold", str(ws["dbn"]), "--reference", str(ws["dbn"]), "--report", "-", "-o", str(out), "--threads", "1"]
    p = subprocess.run(
        [sys.executable, "-m", "resm", *argv], capture_output=True, text=True, cwd=REPO, env=ENV, timeout=300
    )
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("id\tlength")
    n = out.read_text().count(">")
    assert said(p.stderr)[-1] == f"folded {n} sequences: wrote {out}, standard output"


# ---------------------------------------------------------------- every command-line case above
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_input_is_one_line_and_writes_nothing(case: Case, ws, tmp_path, capfd, monkeypatch):
    check_one_line(case, ws, tmp_path, capfd, monkeypatch)
