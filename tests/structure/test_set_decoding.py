"""experiments/structure_cpu/set_decoding.py: it writes the shipped model with new decoding keys
and nothing else changed, and a bad key or value is one line that writes nothing."""

import subprocess
import sys
from pathlib import Path

import torch

from resm.backbone.load import safe_load
from resm.structure.decode import Decoding

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "experiments" / "structure_cpu" / "set_decoding.py"
SHIPPED = ROOT / "resm" / "models" / "structure_default.pt"


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=120)


def test_sets_only_the_named_keys(tmp_path):
    out = tmp_path / "m.pt"
    p = run(str(SHIPPED), "--set", "length_shift=0.5", "gamma=3", "--out", str(out))
    assert p.returncode == 0, p.stderr
    old, new = safe_load(str(SHIPPED)), safe_load(str(out))
    want = Decoding.from_dict({**old["decoding"], "length_shift": 0.5, "gamma": 3})
    assert Decoding.from_dict(new["decoding"]) == want
    assert set(new) == set(old)
    for key in set(old) - {"decoding", "resm_version"}:
        assert same(new[key], old[key]), key


def same(a, b) -> bool:
    """Equal values, tensors compared element by element, through dicts and lists."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.equal(b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


def test_bad_settings_are_one_line_and_write_nothing(tmp_path):
    out = tmp_path / "m.pt"
    cases = {
        "length_shift=abc": "the value is not a number",
        "length_ref=0": "decoding key length_ref: must be a finite number > 0 (nt), got 0",
        "lenght_shift=1": "--set lenght_shift: not a decoding key",
        "gamma": "expected key=value",
    }
    for setting, message in cases.items():
        p = run(str(SHIPPED), "--set", setting, "--out", str(out))
        assert p.returncode != 0
        assert message in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert list(tmp_path.iterdir()) == []
