"""The command line as a user runs it: real subprocesses, exit codes, files left behind."""

import numpy as np
import pytest
import torch

from resm.backbone.load import load_backbone
from resm.embed import read_embeddings
from tests.conftest import REPO, resm_cli

resm = resm_cli


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    path = tmp_path_factory.mktemp("ck") / "tiny.pt"
    resm("init-checkpoint", "--arch", "tiny", "--out", path, "--seed", "3")
    return path


def test_readme_demo_runs(tmp_path):
    """The README's main job (`make demo`): fold the example FASTA with the shipped model."""
    readme = (REPO / "README.md").read_text()
    assert "make demo" in readme and "make test" in readme
    recipe = (REPO / "Makefile").read_text().split("\ndemo:")[1].split("\n\n")[0]
    assert "resm fold examples/rna.fasta -o $(DEMO)/structures.dbn --plot $(DEMO)/plots" in recipe
    resm("fold", REPO / "examples" / "rna.fasta", "-o", tmp_path / "structures.dbn", "--plot", tmp_path / "plots")
    from resm.structure.io import read_structures

    recs = list(read_structures(tmp_path / "structures.dbn"))
    assert [r.name for r in recs] == ["tRNA-Phe_yeast", "5S_rRNA_Ecoli", "hairpin_dna_lowercase"]
    assert [len(r.seq) for r in recs] == [76, 120, 21]
    assert all((r.pairs >= 0).any() for r in recs[:2])  # the tRNA and 5S rRNA get paired bases
    # per record: the arc diagram with the probability map, and the 2-D layout drawing
    ids = ["5S_rRNA_Ecoli", "hairpin_dna_lowercase", "tRNA-Phe_yeast"]
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == sorted(
        f"{i}{s}.png" for i in ids for s in ("", "_ss")
    )


def test_embed_example_fasta(tmp_path):
    ck = tmp_path / "esm2_t6_random.pt"
    resm("init-checkpoint", "--arch", "esm2_t6_8M_UR50D", "--out", ck)
    out = tmp_path / "emb.safetensors"
    p = resm("embed", ck, REPO / "examples" / "rna.fasta", out, "--include", "mean", "per_tok")
    assert "3 sequences" in p.stdout
    arrays, index = read_embeddings(out)
    assert index["ids"] == ["tRNA-Phe_yeast", "5S_rRNA_Ecoli", "hairpin_dna_lowercase"]
    assert arrays["tRNA-Phe_yeast/per_tok/6"].shape == (76, 320)


@pytest.mark.parametrize("suffix", [".npz", ".safetensors"])
def test_embed_outputs_match_the_model(tmp_path, ckpt, suffix):
    fa = tmp_path / "x.fa"
    fa.write_text(">b\nGGGAAACCCAUGC\n>a\nACGUACGUAAAAACCCGGGUUUACGU\n")
    out = tmp_path / f"e{suffix}"
    resm(
        "embed",
        ckpt,
        fa,
        out,
        "--repr-layers",
        "0",
        "-1",
        "--include",
        "mean",
        "per_tok",
        "bos",
        "contacts",
        "--toks-per-batch",
        "20",
    )
    arrays, index = read_embeddings(out)
    assert index["ids"] == ["b", "a"] and index["lengths"] == [13, 26] and index["layers"] == [0, 2]
    model = load_backbone(ckpt).model
    from resm.alphabet import pad_batch
    from resm.mapping import get_scheme

    toks = pad_batch([get_scheme().encode("ACGUACGUAAAAACCCGGGUUUACGU")])
    with torch.no_grad():
        res = model(toks, repr_layers=[2], return_contacts=True)
    h = res["representations"][2][0, 1:-1].numpy()
    np.testing.assert_allclose(arrays["a/per_tok/2"], h, atol=1e-5)
    np.testing.assert_allclose(arrays["a/mean/2"], h.mean(0), atol=1e-5)
    np.testing.assert_allclose(arrays["a/bos/2"], res["representations"][2][0, 0].numpy(), atol=1e-5)
    np.testing.assert_allclose(arrays["a/contacts"], res["contacts"][0].numpy(), atol=1e-5)


def test_long_sequence_is_not_truncated(tmp_path, ckpt):
    rng = np.random.default_rng(0)
    seq = "".join(rng.choice(list("ACGU"), 4500))
    fa = tmp_path / "long.fa"
    fa.write_text(f">long\n{seq}\n")
    out = tmp_path / "long.npz"
    resm("embed", ckpt, fa, out, "--include", "per_tok")
    arrays, _ = read_embeddings(out)
    assert arrays["long/per_tok/2"].shape[0] == 4500
    p = resm("embed", ckpt, fa, tmp_path / "no.npz", "--max-length", "4000", check=False)
    assert p.returncode == 1 and "'long'" in p.stderr and "--max-length" in p.stderr
    assert p.stderr.startswith("resm embed: error: ") and len(p.stderr.strip().splitlines()) == 1, p.stderr


BAD_INPUTS = {
    "malformed": ("ACGU\n>x\nACGU\n", "before the first"),
    "duplicate": (">a\nACGU\n>a\nGGCC\n", "duplicate id 'a'"),
    "digit": (">a\nACGU\n>b\nAC9GU\n", "record 'b': digit '9' at position 3"),
    "gap": (">a\nAC-GU\n", "record 'a': gap '-' at position 3"),
    "empty": (">a\n>b\nACGU\n", "record 'a' has no sequence"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_fasta_one_line_error_nothing_written(tmp_path, ckpt, case):
    text, expected = BAD_INPUTS[case]
    fa = tmp_path / "bad.fa"
    fa.write_text(text)
    out = tmp_path / "out.npz"
    p = resm("embed", ckpt, fa, out, check=False)
    assert p.returncode == 1
    assert expected in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1 and "Traceback" not in p.stderr
    assert list(tmp_path.iterdir()) == [fa]  # nothing half-written


def test_bad_checkpoint_and_scheme(tmp_path, ckpt):
    fa = tmp_path / "x.fa"
    fa.write_text(">a\nACGU\n")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x00garbage")

    def one_line(p):  # the real entry point: a traceback also exits 1, its last line the message
        assert p.returncode == 1 and p.stderr.startswith("resm embed: error: "), p.stderr
        assert len(p.stderr.strip().splitlines()) == 1, p.stderr
        return p.stderr

    p = resm("embed", bad, fa, tmp_path / "o.npz", check=False)
    assert f"{bad}: not a readable torch checkpoint" in one_line(p)
    p = resm("embed", ckpt, fa, tmp_path / "o.npz", "--scheme", "nope", check=False)  # the command line: exit 2
    assert (
        p.returncode == 2 and p.stderr.count("\n") == 1 and "argument --scheme: must name a mapping scheme" in p.stderr
    )
    kerd = tmp_path / "kerd.pt"
    resm("init-checkpoint", "--arch", "tiny", "--out", kerd, "--scheme", "kerd")
    p = resm("embed", kerd, fa, tmp_path / "o.npz", "--scheme", "kdny", check=False)
    assert "trained with mapping scheme 'kerd'" in one_line(p)
    p = resm("--debug", "embed", bad, fa, tmp_path / "o.npz", check=False)
    assert "Traceback" in p.stderr  # --debug shows where it failed
    assert sorted(x.name for x in tmp_path.iterdir()) == ["bad.pt", "kerd.pt", "x.fa"]


def test_hf_format_init_and_embed(tmp_path):
    folder = tmp_path / "hfmodel"
    resm("init-checkpoint", "--arch", "tiny", "--out", folder, "--format", "hf")
    assert (folder / "config.json").exists() and (folder / "model.safetensors").exists()
    fa = tmp_path / "x.fa"
    fa.write_text(">a\nACGUUU\n")
    resm("embed", folder, fa, tmp_path / "o.safetensors")
    assert read_embeddings(tmp_path / "o.safetensors")[0]["a/mean/2"].shape == (64,)


def test_threads_help_speaks_of_each_commands_own_work():
    """embed's --threads sets torch's threads only; fold's also the pair-prior processes."""
    import re

    def threads_help(cmd: str) -> str:
        text = resm_cli(cmd, "--help").stdout
        return " ".join(re.search(r"--threads N\s+(.*?)(?:\n  -|\Z)", text, re.S).group(1).split())

    embed, fold = threads_help("embed"), threads_help("fold")
    assert "torch" in embed and "prior" not in embed and "fold" not in embed
    assert "pair priors" in fold


@pytest.mark.parametrize(
    "args, said",
    [
        (["fold", "x.fa", "-T", "37"], "resm fold: error: unrecognized arguments: -T 37 (see resm fold --help)\n"),
        (["schemes", "extra"], "resm schemes: error: unrecognized arguments: extra (see resm schemes --help)\n"),
    ],
)
def test_an_unknown_option_is_said_by_its_command(args, said):
    """An option a command does not take is that command's error, pointing at its own --help
    (it was 'resm: error: ... (see resm --help)', whose help lists no option of fold)."""
    from tests.conftest import resm_main

    p = resm_main(*args, check=False)
    assert (p.returncode, p.stdout, p.stderr) == (2, "", said)


def test_init_checkpoint_writes_what_fair_esm_reads(tmp_path):
    """A fair-esm file named esm2* gets its contact regression beside it, without which fair-esm's
    loader fails ('No such file ... esm2_t-contact-regression.pt'); another name does not."""
    import argparse

    esm = pytest.importorskip("esm")
    from tests.conftest import resm_main

    out = tmp_path / "esm2_t.pt"
    p = resm_main("init-checkpoint", "--arch", "tiny", "--out", out)
    assert p.stdout.startswith(f"wrote {out} and esm2_t-contact-regression.pt: tiny, ")
    assert sorted(f.name for f in tmp_path.iterdir()) == ["esm2_t-contact-regression.pt", "esm2_t.pt"]
    before = torch.serialization.get_safe_globals()
    torch.serialization.add_safe_globals([argparse.Namespace])  # the README's one-line fix
    try:
        ref, _ = esm.pretrained.load_model_and_alphabet_local(str(out))
    finally:
        torch.serialization.clear_safe_globals()
        torch.serialization.add_safe_globals(before)
    ours = load_backbone(out).model.eval()
    toks = torch.tensor([[0, 5, 6, 7, 8, 9, 2]])
    with torch.no_grad():
        a, b = ref.eval()(toks, return_contacts=True), ours(toks, return_contacts=True)
    assert (a["contacts"] - b["contacts"]).abs().max() < 1e-4
    resm_main("init-checkpoint", "--arch", "tiny", "--out", tmp_path / "other" / "tiny.pt")
    assert [f.name for f in (tmp_path / "other").iterdir()] == ["tiny.pt"]


def test_predict_help_names_the_tasks_of_the_registry():
    """``resm predict --help`` shows the tasks it takes (the parser cannot read the registry:
    that imports torch), so the registry's list is checked here; its help spoke of
    'a descriptor in resm.tasks.TASKS'."""
    from resm.cli import build_parser
    from resm.tasks import tasks_with

    predict = next(a for a in build_parser()._actions if a.dest == "command").choices["predict"]
    task = next(a for a in predict._actions if a.dest == "task")
    assert task.metavar == "{" + ",".join(tasks_with("predict")) + "}"
    assert all(f"{name} (" in task.help for name in tasks_with("predict")) and "TASKS" not in task.help


@pytest.mark.parametrize("args", [["fold"], ["fold", "-"], ["embed", "{ckpt}", "-", "{out}"]])
def test_no_input_from_a_terminal_is_said_for_every_command(args, ckpt, tmp_path, monkeypatch):
    """Standard input that is a terminal is no input; the message told 'resm embed MODEL - OUT'
    users to pipe sequences into `resm fold -`."""
    import io

    from tests.conftest import resm_main

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr("sys.stdin", Terminal())
    p = resm_main(*[a.format(ckpt=ckpt, out=tmp_path / "e.npz") for a in args], check=False)
    said = "no input: standard input is a terminal; give an input file, or pipe sequences in (cat x.fa | resm ...)"
    assert (p.returncode, p.stderr) == (1, f"resm {args[0]}: error: {said}\n")
    assert list(tmp_path.iterdir()) == []
