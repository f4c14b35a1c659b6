import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


def data_dir() -> Path:
    """Real data: $RESM_DATA, else ../shared/data beside the repository."""
    return Path(os.environ.get("RESM_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture
def data():
    d = data_dir()
    if not d.is_dir():
        pytest.skip(f"real data not found at {d} (set RESM_DATA)")
    return d


@pytest.fixture(autouse=True)
def _few_threads():
    torch.set_num_threads(2)
    yield
