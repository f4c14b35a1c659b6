"""Where the transfer_cpu scripts (run.py, shared_adapter.py) find the repository and the data,
and how they run resm there (:func:`run_resm`)."""

from __future__ import annotations

import subprocess
import sys
import time
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


def run_resm(args, log: Path) -> float:
    """Run ``resm ARGS`` in the repository, appending the command and its output (stderr too when
    it fails) to ``log``; the seconds it took, or SystemExit with its stderr when it fails."""
    t = time.time()
    p = subprocess.run([sys.executable, "-m", "resm", *map(str, args)], cwd=REPO, capture_output=True, text=True)
    with open(log, "a") as fh:
        fh.write(f"$ resm {' '.join(map(str, args))}\n{p.stdout[-2000:]}{p.stderr[-3000:] if p.returncode else ''}\n")
    if p.returncode:
        raise SystemExit(f"failed: resm {' '.join(map(str, args))}\n{p.stderr[-3000:]}")
    return time.time() - t
