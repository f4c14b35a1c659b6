"""Hostile inputs found by an audit of every command and the Python API: each case was a crash,
a hang, a misleading message or a traceback before its fix. Command-line cases keep the rule
of :mod:`tests.robustness.test_cli_cases` (one line naming the thing, the exit code, nothing
written)."""

from __future__ import annotations

import pytest

from tests.robustness.test_cli_cases import Case, check_one_line

CASES = [
    # torch (OpenMP) dies with a segmentation fault when asked for 100,000 threads
    Case("fold/threads-huge", ["fold", "{fa}", "-o", "{t}/s.dbn", "--threads", "100000"], 2, ["--threads", "1024"]),
    Case("embed/threads-huge", ["embed", "{tiny}", "{fa}", "{t}/e.npz", "--threads", "100000"], 2, ["--threads"]),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_input_is_one_line_and_writes_nothing(case: Case, ws, tmp_path, capfd, monkeypatch):
    check_one_line(case, ws, tmp_path, capfd, monkeypatch)


def test_api_thread_count_is_checked_before_loading():
    import resm
    from resm.structure.io import FoldError

    for bad in (-3, 100000, "4"):
        with pytest.raises(FoldError, match=r"^threads must be an integer in \[0, 1024\]"):
            resm.load_predictor("/no/such/model.pt", threads=bad)


def test_compare_thread_count_is_checked():
    from resm.compare.config import parse_config
    from resm.config import ConfigError

    with pytest.raises(ConfigError, match=r"^threads must be an integer in \[0, 1024\] \(0: every core\), got 100000$"):
        parse_config(
            {
                "threads": 100000,
                "data": {"train": "a.dbn", "val": "b.dbn", "test": "c.dbn"},
                "backends": [{"name": "v", "kind": "viennarna"}],
            }
        )
