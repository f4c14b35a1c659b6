"""Usability leftovers of the audits: what a user meets when an argument, a stream or a resumed
run is not quite what the happy path expects."""

from __future__ import annotations

import pytest

from tests.conftest import resm_main


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The smallest ESM-2 resm writes (init-checkpoint --arch tiny), fair-esm format."""
    path = tmp_path_factory.mktemp("tiny") / "esm2_tiny.pt"
    resm_main("init-checkpoint", "--arch", "tiny", "-o", path)
    return path


def test_a_layer_that_is_no_integer_is_named_as_the_other_arguments_are(tiny):
    """`embed_sequences(..., layers=["x"])` said 'layers must be integers', without the
    'layers: ' prefix every other argument error of the API starts with."""
    import resm

    with pytest.raises(TypeError) as e:
        resm.embed_sequences(tiny, {"a": "ACGU"}, layers=["x"], device="cpu")
    assert str(e.value) == "layers: each layer must be an integer, got 'x'"


@pytest.mark.parametrize("outputs", [[], ["-o", "-"], ["--reference", "REF"], ["-o", "OUT", "--bpp", "-"]])
def test_fold_to_a_closed_standard_output_is_refused_before_any_work(tmp_path, monkeypatch, capsys, outputs):
    """`resm fold x.fa >&-` loaded the model and folded every record, and failed only when it
    wrote ('standard output: closed'); the same error now comes before the model is read."""
    import sys

    import resm.structure.pipeline as pipeline
    from resm.cli import main

    def loaded(*a, **k):
        raise AssertionError("the model was read with no standard output to write to")

    monkeypatch.setattr(pipeline, "load_predictor", loaded)
    monkeypatch.setattr(pipeline.ProbeFile, "read", loaded)
    ref, out = tmp_path / "ref.dbn", tmp_path / "out.dbn"
    ref.write_text(">x\nGGGAAACCC\n(((...)))\n")
    names = {"REF": str(ref), "OUT": str(out)}
    fasta = tmp_path / "x.fa"
    fasta.write_text(">x\nGGGAAACCC\n")
    monkeypatch.setattr(sys, "stdout", None)
    code = main(["fold", str(fasta), "--threads", "1", *[names.get(a, a) for a in outputs]])
    assert code == 1 and capsys.readouterr().err == "resm fold: error: standard output: closed\n"
    assert not out.exists()


def test_fold_to_a_file_runs_with_standard_output_closed(tmp_path, monkeypatch):
    """With -o, standard output holds nothing the user asked for: a closed one is no error."""
    import sys

    from resm.cli import main

    fasta, out = tmp_path / "x.fa", tmp_path / "out.dbn"
    fasta.write_text(">x\nGGGAAACCC\n")
    monkeypatch.setattr(sys, "stdout", None)
    assert main(["fold", str(fasta), "--threads", "1", "-o", str(out)]) == 0
    assert out.read_text().startswith(">x\nGGGAAACCC\n")
