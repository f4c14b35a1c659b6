"""Where the transfer_cpu scripts (run.py, shared_adapter.py) find the repository and the data."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def data_dir(given: str | None) -> str:
    """``--data-dir`` when given, else resm's default data folder ($RESM_DATA, else
    ../shared/data), read from this checkout's resm."""
    if given is not None:
        return given
    sys.path.insert(0, str(REPO))
    from resm.config import default_data_dir

    return default_data_dir()
