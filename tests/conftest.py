import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


def random_backbone(seed: int = 0):
    """A tiny ESM-2 (2 layers, 32 dims, 4 heads) with large random weights, so that every token
    moves the states; in eval mode."""
    from resm.backbone.config import ESM2Config
    from resm.backbone.esm2 import ESM2

    torch.manual_seed(seed)
    bb = ESM2(ESM2Config(2, 32, 4))
    with torch.no_grad():
        for p in bb.parameters():
            p.normal_(0, 0.3)
    return bb.eval()


def data_dir() -> Path:
    """Real data: $RESM_DATA, else ../shared/data beside the repository."""
    return Path(os.environ.get("RESM_DATA") or REPO.parent / "shared" / "data")


@pytest.fixture
def data():
    d = data_dir()
    if not d.is_dir():
        pytest.skip(f"real data not found at {d} (set RESM_DATA)")
    return d


def _test_threads() -> int:
    """Torch threads for in-process tests: $OMP_NUM_THREADS when it is a positive integer, else 2."""
    value = os.environ.get("OMP_NUM_THREADS", "")
    return int(value) if value.isdigit() and int(value) > 0 else 2


@pytest.fixture(autouse=True)
def _few_threads():
    torch.set_num_threads(_test_threads())
    yield


ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def signal_when(argv, ready, sig, timeout: float = 300.0) -> tuple[int, str]:
    """Run ``python -m resm *argv`` (one thread) as a real process, send ``sig`` as soon as
    ``ready()`` holds (polled; no timing is asserted) and return its exit code and stderr. The
    child starts with SIGHUP at its default, as from a terminal, whatever this run inherited
    (``nohup`` ignores it, and resm keeps an ignored SIGHUP ignored); stderr goes to a file, so
    a chatty child never blocks on a full pipe."""
    import signal
    import subprocess
    import sys
    import tempfile
    import time

    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "resm", *map(str, argv)],
            env=ENV,
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=err,
            text=True,
            preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_DFL),
        )
        deadline = time.time() + timeout
        while not ready():
            if proc.poll() is not None or time.time() > deadline:
                proc.kill()
                proc.wait()
                err.seek(0)
                raise AssertionError(f"not ready before it ended (exit {proc.returncode}): {err.read()[-2000:]}")
            time.sleep(0.005)
        proc.send_signal(sig)
        proc.wait(timeout=120)
        err.seek(0)
        return proc.returncode, err.read()


def killed_at_checkpoint(args, run_dir, step: int, timeout: float = 120.0) -> None:
    """Kill ``python -m resm *args`` (SIGKILL) as soon as the checkpoint of ``step`` exists in
    ``run_dir``, wherever the run then is (mid-step, mid-write)."""
    import signal

    signal_when(args, (Path(run_dir) / "checkpoints" / f"step_{step:08d}").exists, signal.SIGKILL, timeout)


def resm_cli(*args, procs: int = 1, check: bool = True, **kw):
    """Run the real command line (``python -m resm ...``; under torchrun when procs > 1)."""
    import subprocess
    import sys

    launcher = [sys.executable]
    if procs > 1:
        launcher += ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={procs}"]
    env = kw.pop("env", ENV)
    p = subprocess.run(
        [*launcher, "-m", "resm", *map(str, args)], capture_output=True, text=True, env=env, cwd=REPO, **kw
    )
    if check and p.returncode != 0:
        raise AssertionError(p.stdout[-2000:] + p.stderr[-4000:])
    return p


def resm_main(*args, check: bool = True):
    """Run the command line in this process (``resm.cli.main``), with what :func:`resm_cli`
    returns: the exit code and what was printed on stdout and stderr. It saves the start-up of a
    new interpreter (several seconds under load); keep at least one :func:`resm_cli` test per
    command for the real entry point."""
    import contextlib
    import io
    import subprocess

    import torch

    from resm.cli import main

    threads = torch.get_num_threads()  # a command's --threads must not outlive its call
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in args])
        except SystemExit as e:  # argparse; exit codes as the interpreter would give them
            code = 0 if e.code is None else e.code if isinstance(e.code, int) else 1
        finally:
            torch.set_num_threads(threads)
    p = subprocess.CompletedProcess(["resm", *map(str, args)], code, out.getvalue(), err.getvalue())
    if check and p.returncode != 0:
        raise AssertionError(p.stdout[-2000:] + p.stderr[-4000:])
    return p


def refused_before_work(p, run) -> str:
    """The one error line of a training command ``p`` (a :func:`resm_main` result) refused before
    any work: exit 1, one line on stderr, no progress bar drawn, no run folder ``run`` made."""
    assert p.returncode == 1, p.stdout + p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "%|" not in p.stderr, p.stderr  # one line, before the progress bars
    assert not run.exists()  # no run folder
    return lines[0]


def tiny_cached_structure_task(steps: int):
    """The comparison harness's conv head on random embeddings (width 8) of four copies of a
    two-hairpin structure: ``(task, section, embeddings, records)``, ``steps`` training steps."""
    import torch

    from resm.compare.structure import TrainSection
    from resm.compare.training import CachedStructureTask
    from resm.heads.pair_map import StructureHeadConfig
    from resm.structure.io import Structure, parse_dotbracket

    db = "((((....))))....((((....))))"
    seq = "GGGGAAACCCCAAAAGCGCAAAAGCGCA"[: len(db)]
    recs = [Structure(f"r{k}", seq, parse_dotbracket(db)) for k in range(4)]
    torch.manual_seed(0)
    embs = [torch.randn(len(seq), 8) for _ in recs]
    cfg = StructureHeadConfig(embed_dim=8, proj_dim=4, channels=4, blocks=1, dropout=0.0)
    sec = TrainSection(steps=steps, lr=1e-2, batch=2, crop=20, seed=3)
    return CachedStructureTask(embs, recs, cfg, sec.batch, sec.crop, sec.pos_weight, sec.seed), sec, embs, recs


def experiment_script(relpath: str, name: str | None = None):
    """The module of the script ``experiments/<relpath>``, loaded from its file (the scripts are
    no package); ``name`` is its module name (default: the file's stem)."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "experiments" / relpath
    spec = importlib.util.spec_from_file_location(name or path.stem, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def logged(run_dir, split: str = "train", key: str = "loss") -> dict:
    """{step: value} of one metric from a run's log.jsonl."""
    import json

    out = {}
    for line in (Path(run_dir) / "log.jsonl").read_text().splitlines():
        r = json.loads(line)
        if r["split"] == split:
            out[r["step"]] = r[key]
    return out
