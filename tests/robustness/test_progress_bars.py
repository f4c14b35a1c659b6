"""Every command draws its progress bars on stderr, with a total, whatever standard output holds:
`resm interact` and `resm predict` drew none when their table went to stdout (the default), as if
a bar there could spoil it (resm.commands.common.PROGRESS_BARS is the one rule)."""

from __future__ import annotations

import pytest

from resm.cli import build_parser, main


def test_every_command_asks_for_progress_bars():
    parser = build_parser()
    for name, sp in parser.commands.items():
        assert sp.get_default("progress") is True, name


@pytest.mark.parametrize(
    "argv, bar",
    [
        (["interact", "{pairs}", "--model", "{rri_model}", "--backbone", "{tiny}"], "interact: 100%"),
        (["interact", "{pairs}", "--zero-shot", "--backbone", "{tiny}"], "interact (zero-shot): 100%"),
        (["predict", "--task", "rri", "{pairs}", "--model", "{rri_model}", "--backbone", "{tiny}"], "interact: 100%"),
        (["predict", "--task", "mrl", "{utrs}", "--model", "{mrl_model}", "--backbone", "{tiny}"], "predict mrl: 100%"),
    ],
    ids=["interact", "interact-zero-shot", "predict-rri", "predict-mrl"],
)
@pytest.mark.parametrize("out", ["stdout", "file"])
def test_a_table_on_stdout_keeps_its_progress_bar_on_stderr(argv, bar, out, ws, tmp_path, capfd):
    argv = [a.format(**ws.files) if a.startswith("{") else a for a in argv]
    to_file = ["-o", str(tmp_path / "t.tsv")] if out == "file" else []
    capfd.readouterr()
    assert main([*argv, "--threads", "1", *to_file]) == 0
    got, err = capfd.readouterr()
    assert bar in err and "6/6" in err, err
    table = (tmp_path / "t.tsv").read_text() if out == "file" else got
    assert table.splitlines()[0].split("\t")[0] in ("index", "name") and "%" not in table
    assert len(table.splitlines()) == 7  # a header and the 6 rows, nothing else
