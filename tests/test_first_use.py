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
