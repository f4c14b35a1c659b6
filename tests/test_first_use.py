"""What a new user meets on the README's path: the commands' progress bars, help texts and
outputs say what the README says they do."""

from __future__ import annotations

import pytest

from tests.conftest import REPO, resm_main

EXAMPLES = REPO / "examples"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The smallest ESM-2 resm writes (init-checkpoint --arch tiny), fair-esm format."""
    path = tmp_path_factory.mktemp("tiny") / "esm2_tiny.pt"
    resm_main("init-checkpoint", "--arch", "tiny", "-o", path)
    return path


@pytest.mark.parametrize("shard_size", [1000, 2])
def test_embed_progress_bar_counts_records(tiny, tmp_path, shard_size):
    """The README: every command that works through records draws a bar counting them against
    their total. resm embed counted its token-budget batches ('1/1 batch' for the three
    examples), so a FASTA of a million RNAs showed a count of batches no user could relate to
    the file; sharded, each shard's bar is labelled as resm fold's are."""
    p = resm_main("embed", tiny, EXAMPLES / "rna.fasta", tmp_path / "e.safetensors", "--threads", "1",
                  "--shard-size", shard_size)  # fmt: skip
    err = p.stderr.replace("\r", "\n")
    if shard_size == 1000:
        assert "embed: 100%" in err and "3/3" in err and "seq/s" in err, err
    else:
        assert "embed shard 1/2: 100%" in err and "2/2" in err and "embed shard 2/2: 100%" in err, err
    assert "batch" not in err, err


@pytest.mark.parametrize("command, kind", [("pretrain", "pretrain"), ("finetune", "finetune"), ("compare", "compare")])
def test_config_help_names_the_shipped_configs(command, kind):
    """``--config`` takes a shipped config by name; its help said 'see configs/finetune/', a
    folder an installed resm does not have (the configs are package data), so the names a user
    could give were found only by giving a wrong one."""
    from resm.config import shipped_configs

    names = shipped_configs(kind)
    assert names and (kind != "finetune" or {"structure", "shared", "rri", "mrl"} <= set(names))
    text = " ".join(resm_main(command, "--help").stdout.split())
    assert "configs/" not in text.split("--config CONFIG", 2)[-1].split("--strict")[0]
    for name in names:
        assert f" {name}," in text or f" {name};" in text, (name, text)


def test_help_ends_with_examples_that_parse():
    """The commands a new user runs first end their --help with examples (none had one: the
    order of embed's MODEL INPUT OUT, the columns of interact's pairs table, how a probe is
    used, were in the README alone); each example is a command line the parser takes, and its
    explanation fits the terminal width --help is drawn for."""
    import shlex

    from resm.cli import build_parser
    from resm.commands import BY_NAME

    parser = build_parser()
    from tests.test_readme import config_problem

    shown = {"fold", "embed", "probe", "interact", "predict", "init-checkpoint", "export", "pretrain", "finetune"}
    assert shown <= {name for name, cmd in BY_NAME.items() if cmd.examples}
    for name, cmd in BY_NAME.items():
        for line, what in cmd.examples:
            words = shlex.split(line.split("|")[-1].split(">")[0])
            assert words[0] == "resm" and len(what) <= 74, (line, what)
            args = parser.parse_args(words[1:])  # argparse exits on an option the command does not have
            if BY_NAME[name].training:  # and a training example's config reads (model.arch=null beside init)
                assert config_problem(name, str(args.config), args.overrides) is None, line
        if cmd.examples:
            text = resm_main(name, "--help").stdout
            assert "\nexamples:\n" in text and f"  {cmd.examples[0][0]}\n" in text, text


def test_init_checkpoint_help_says_what_tiny_and_small_are():
    """--arch listed 'tiny' and 'small' beside the ESM-2 names and said only 'architecture'."""
    text = " ".join(resm_main("init-checkpoint", "--help").stdout.split())
    assert "tiny (2 layers, 64 dims)" in text and "small (4 layers, 128 dims)" in text, text


@pytest.mark.parametrize("fmt", ["fair-esm", "hf"])
def test_a_backbone_given_as_fold_model_says_how_to_fold_with_it(tmp_path, fmt):
    """An ML researcher's first try, `resm fold rnas.fa --model esm2.pt`, was 'not a resm
    structure model (written by `resm finetune`)', and a Hugging Face folder 'is a folder, not
    a checkpoint file': neither said that a backbone folds through a zero-shot probe."""
    import resm
    from resm.backbone.load import CheckpointError

    model = tmp_path / ("esm2_tiny.pt" if fmt == "fair-esm" else "esm2_tiny_hf")
    resm_main("init-checkpoint", "--arch", "tiny", "--format", fmt, "-o", model)
    out = tmp_path / "x.dbn"
    p = resm_main("fold", EXAMPLES / "rna.fasta", "--model", model, "-o", out, check=False)
    assert p.returncode == 1 and not out.exists() and p.stdout == ""
    line = p.stderr.strip()
    assert "\n" not in line and "an ESM-2 backbone, not a structure model" in line, line
    assert f"resm probe {model} TRAIN.dbn -o PROBE.pt" in line and f"--model {model} --probe PROBE.pt" in line
    p = resm_main("evaluate", "structure", "--model", model, "--dataset", "vl1", "--data-dir", tmp_path, check=False)
    assert p.returncode == 1 and "an ESM-2 backbone, not a structure model" in p.stderr, p.stderr
    with pytest.raises(CheckpointError, match="an ESM-2 backbone, not a structure model"):
        resm.load_predictor(model, device="cpu")


@pytest.mark.parametrize("name", ["esm2_t6_8M_UR50D", "facebook/esm2_t6_8M_UR50D"])
def test_a_backbone_named_as_fold_model_says_how_to_fold_with_it(tmp_path, monkeypatch, name):
    """A backbone given by its ESM-2 name or Hugging Face id, where a structure model goes, was
    'no such structure model' with no word of the zero-shot probe route that a backbone given as a
    file is told of; nothing is downloaded or read to say so (the hub cache here is empty)."""
    import resm
    from resm.backbone.load import CheckpointError

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(CheckpointError, match="an ESM-2 backbone, not a structure model") as e:
        resm.load_predictor(name, device="cpu")
    assert f"resm probe {name} TRAIN.dbn -o PROBE.pt" in str(e.value), e.value
    out = tmp_path / "x.dbn"
    p = resm_main("fold", EXAMPLES / "rna.fasta", "--model", name, "-o", out, check=False)
    assert p.returncode == 1 and not out.exists() and "\n" not in p.stderr.strip(), p.stderr
    assert f"--model {name} --probe PROBE.pt" in p.stderr, p.stderr
    p = resm_main("evaluate", "structure", "--model", name, "--dataset", "vl1", "--data-dir", tmp_path, check=False)
    assert p.returncode == 1 and "an ESM-2 backbone, not a structure model" in p.stderr, p.stderr
    assert not list(tmp_path.glob("torch/**/*.pt")), "a backbone was downloaded"


def test_input_tables_say_their_columns():
    """interact's PAIRS said 'pairs table (TSV or CSV)' and predict's INPUT 'UTR CSV / FASTA
    (mrl)': which columns the readers want was in the README alone."""
    interact = " ".join(resm_main("interact", "--help").stdout.split())
    assert "PAIRS pairs table (TSV or CSV): a_name, a_seq, b_name, b_seq[, label] per line" in interact
    predict = " ".join(resm_main("predict", "--help").stdout.split())
    assert "a CSV/TSV with a utr column (an rl or hrl column" in predict and "FASTA of UTRs" in predict


def test_an_error_mid_run_is_said_after_the_progress_bars(tmp_path):
    """`resm pretrain` failing once reading has started (here a training file cut short, a
    download interrupted) failed with its bars drawn: the error line was glued to the end of a
    half-drawn bar ('...0/20000 [00:00<?, ?rec/s]resm pretrain: error: ...') and the bars were
    drawn again below it at exit, so the last line on the terminal was a bar at 0%. (A missing
    training file is now refused before the bars, tests/test_data_dir_missing.py and
    tests/robustness/test_preflight.py; a file that is there but broken further down is found
    only while reading.)"""
    import gzip

    from tests.conftest import resm_cli

    records = "".join(f">RF{i % 50:05d}|s{i}\n{'ACGU' * (20 + i % 7)}\n" for i in range(3000))
    whole = gzip.compress(records.encode(), mtime=0)
    cut = tmp_path / "cut_short.fasta.gz"
    cut.write_bytes(whole[: len(whole) // 2])
    run = tmp_path / "run"
    p = resm_cli(
        "pretrain", "--config", "cpu_demo", f"data.train=[{cut}]", "model.arch=tiny",
        "train.max_steps=2", "train.val_every=0", "validation.max_records=4", f"train.out_dir={run}", check=False,
    )  # fmt: skip
    assert p.returncode == 1 and "%|" in p.stderr  # it failed with its bars drawn
    last = [line for line in p.stderr.split("\n") if line.strip()][-1]
    assert last.startswith("resm pretrain: error: ") and "\r" not in last and "cut_short" in last, p.stderr
    assert p.stderr.count("error:") == 1 and not run.exists()


def test_contacts_need_the_contact_regression(tiny, tmp_path):
    """fair-esm's ESM-2 files keep the contact regression in <stem>-contact-regression.pt;
    a .pt given without it (the common download of the one file) embedded `--include contacts`
    from the untrained head, written with exit code 0. Now refused before any work, in the
    command and the API; with --regression, or for the other arrays, it embeds as before."""
    import torch

    import resm
    from resm.backbone.load import CheckpointError, safe_load

    data = safe_load(tiny)
    data["model"] = {k: v for k, v in data["model"].items() if "contact_head" not in k}
    bare = tmp_path / "bare.pt"
    torch.save(data, bare)
    out = tmp_path / "c.npz"
    p = resm_main("embed", bare, EXAMPLES / "rna.fasta", out, "--include", "mean", "contacts", check=False)
    assert p.returncode == 1 and not out.exists(), p.stderr
    assert "bare.pt: has no contact regression" in p.stderr and "%|" not in p.stderr  # before any work
    with pytest.raises(CheckpointError, match="has no contact regression"):
        resm.embed_sequences(bare, ["GGGAAACCC"], include="contacts", device="cpu")
    regression = tiny.with_name("esm2_tiny-contact-regression.pt")
    resm_main("embed", bare, EXAMPLES / "rna.fasta", out, "--include", "contacts", "--regression", regression)
    resm_main("embed", bare, EXAMPLES / "rna.fasta", tmp_path / "m.npz", "--include", "mean")
    _, index = resm.embed_sequences("default", ["GGGAAACCC"], include="contacts", device="cpu")  # its own head
    assert index["include"] == ["contacts"]
    # resm interact --zero-shot scores pairs with the same head (a probe brings its own regression)
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("a_name\ta_seq\tb_name\tb_seq\nm\tUGAGGUAGUAGGUUGUAUAGUU\tu\tAACUAUACAACCUACUACCUCA\n")
    p = resm_main("interact", pairs, "--zero-shot", "--backbone", bare, "-o", tmp_path / "s.tsv", check=False)
    assert p.returncode == 1 and "bare.pt: has no contact regression" in p.stderr and "--probe" in p.stderr
    assert not (tmp_path / "s.tsv").exists()
    resm_main("interact", pairs, "--zero-shot", "--backbone", tiny, "-o", tmp_path / "s.tsv")
