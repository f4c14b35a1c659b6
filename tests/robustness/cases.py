"""The table-driven bad-input cases' parts, shared by the robustness suites: :class:`Case`, the
builders that spoil copies of workspace files in a case's own folder before its run
(:func:`copy`, :func:`write`, ...), and :func:`check_one_line`, the rule every case is
held to (see :mod:`tests.robustness.test_cli_cases`)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from resm.cli import main as cli_main
from tests.robustness.conftest import listing


@dataclass
class Case:
    id: str
    argv: list[str]  # "{key}": a workspace file, "{t}": the case's own folder
    code: int
    names: list[str] = field(default_factory=list)  # substrings the one line must hold
    setup: Callable[[dict], None] | None = None  # spoils copies in {t} before the run
    env: dict = field(default_factory=dict)  # environment variables of the run ("{key}" filled in)


def copy(src: str, dst: str):
    def setup(p: dict) -> None:
        s, d = Path(p[src]), Path(p["t"]) / dst
        shutil.copytree(s, d) if s.is_dir() else shutil.copy2(s, d)

    return setup


def then(*steps):
    def setup(p: dict) -> None:
        for s in steps:
            s(p)

    return setup


def write(rel: str, data, key: str | None = None):
    """Write ``data`` (text or bytes) at ``rel`` in the case's folder; with ``key``, after
    copying workspace ``key`` to ``rel``'s top folder (then spoiling one of its files)."""

    def setup(p: dict) -> None:
        if key is not None:
            copy(key, rel.split("/")[0])(p)
        path = Path(p["t"]) / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data if isinstance(data, bytes) else data.encode())

    return setup


def truncate(rel: str, keep: int = 300):
    def setup(p: dict) -> None:
        path = Path(p["t"]) / rel
        path.write_bytes(path.read_bytes()[:keep])

    return setup


def mkdir(rel: str, with_file: bool = False):
    def setup(p: dict) -> None:
        (Path(p["t"]) / rel).mkdir(parents=True)
        if with_file:
            (Path(p["t"]) / rel / "notes.txt").write_text("mine\n")

    return setup


def edit_json(rel: str, **changes):
    def setup(p: dict) -> None:
        path = Path(p["t"]) / rel
        d = json.loads(path.read_text())
        d.update(changes)
        path.write_text(json.dumps(d))

    return setup


CKPT = "run/checkpoints/step_00000002"
RUN = copy("run", "run")
PRE = [copy("pretrain_cfg", "cfg.yaml"), copy("run", "run")]


def retarget(p: dict) -> None:
    """The copied pretraining config writes to the copied run folder."""
    import yaml

    cfg_path = Path(p["t"]) / "cfg.yaml"
    cfg = yaml.safe_load(cfg_path.read_text())
    cfg["train"]["out_dir"] = str(Path(p["t"]) / "run")
    cfg_path.write_text(yaml.safe_dump(cfg))


PRETRAIN_COPY = then(*PRE, retarget)

# resm fold with the probe copied into the case's folder ({t}/p.pt, spoilt by the case's setup)
PROBE_FOLD = ["fold", "{fa}", "--model", "{tiny}", "--probe", "{t}/p.pt", "-o", "{t}/o.dbn", "--threads", "1"]


def fill(text: str, places: dict) -> str:
    for k, v in places.items():
        text = text.replace("{" + k + "}", str(v))
    return text.replace("{{", "{").replace("}}", "}")


def run_case(case: Case, ws, tmp_path, capfd, monkeypatch) -> tuple:
    """Spoil, run ``resm`` in process, and return ``(code, stdout, stderr, places, before)``,
    ``before`` the listing of the workspace and the case's folder before the run."""
    places = {**{k: str(v) for k, v in ws.files.items()}, "t": str(tmp_path)}
    if case.setup:
        case.setup(places)
    for k, v in case.env.items():
        monkeypatch.setenv(k, fill(v, places))
    before = listing(ws.root, tmp_path)
    capfd.readouterr()
    argv = [fill(a, places) for a in case.argv]
    try:
        code = cli_main(argv)
    except SystemExit as e:  # argparse
        code = e.code
    out, err = capfd.readouterr()
    return code, out, err, places, before


def check_one_line(case: Case, ws, tmp_path, capfd, monkeypatch) -> None:
    """The rule of every bad input: one line naming the thing, the exit code, nothing written."""
    code, out, err, places, before = run_case(case, ws, tmp_path, capfd, monkeypatch)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert code == case.code, err
    line = lines[0]
    assert ": error: " in line and "Traceback" not in err, err
    for name in case.names:
        assert fill(name, places) in line, (name, line)
    assert listing(ws.root, tmp_path) == before, "something was written or left behind"
