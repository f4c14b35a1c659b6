"""experiments/bench_train.py: its resm side runs resm pretrain's step (the mlm task in the one
training loop), and the script writes its table. Tiny settings on a made-up corpus; nothing
timed is asserted."""

import gzip
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from resm.alphabet import PAD, pad_batch
from resm.data.pretrain import PretrainDataConfig, PretrainStream
from resm.engines import lr_lambda
from resm.train_config import OptimConfig
from tests.conftest import experiment_script

ROOT = Path(__file__).resolve().parents[1]
PATH = ROOT / "experiments" / "bench_train.py"
STEPS, MAX_LEN, BATCH = 2, 16, 2


@pytest.fixture(scope="module")
def bench():
    return experiment_script("bench_train.py")


@pytest.fixture
def corpus(tmp_path) -> Path:
    rng = np.random.default_rng(0)
    path = tmp_path / "corpus.fasta.gz"
    with gzip.open(path, "wt") as f:
        for i in range(60):
            f.write(f">r{i}\n{''.join(rng.choice(list('ACGU'), int(rng.integers(10, 40))))}\n")
    return path


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def test_the_resm_side_runs_the_training_loops_step(bench, corpus):
    args = ["resm", str(corpus), str(STEPS), str(MAX_LEN), str(BATCH), "1", "small"]
    p = subprocess.run(
        [sys.executable, "-c", bench.CHILD, *args], capture_output=True, text=True, env=env(), cwd=corpus.parent
    )
    assert p.returncode == 0, p.stderr[-2000:]
    r = json.loads(p.stdout.strip().splitlines()[-1])
    assert os.listdir(corpus.parent) == [corpus.name]  # in memory: no run folder written
    # the steps after the warm-up step, counted from the loop's log lines
    assert r["steps"] == STEPS
    cfg = PretrainDataConfig(
        train=[str(corpus)], max_length=MAX_LEN, tokens_per_batch=BATCH * (MAX_LEN + 2), bucket_size=4000, seed=0
    )
    timed = [pad_batch(b) for _, b in zip(range(STEPS + 1), PretrainStream(cfg))][1:]
    assert r["real_tokens"] == sum(int((t != PAD).sum()) for t in timed)
    assert r["padding_frac"] == pytest.approx(1 - r["real_tokens"] / sum(t.numel() for t in timed))
    # the loop's schedule (OptimConfig's warm-up) set the last step's rate, and it logged the
    # step's gradient norm
    optim = OptimConfig()
    assert r["lr"] == pytest.approx(optim.lr * lr_lambda(optim, STEPS + 1)(STEPS))
    assert r["grad_norm"] > 0 and math.isfinite(r["grad_norm"])
    assert r["tokens_per_s"] > 0 and r["seconds"] > 0


def test_the_script_writes_its_table(corpus, tmp_path):
    pytest.importorskip("esm")
    out = tmp_path / "table.md"
    cmd = [sys.executable, str(PATH), "--corpus", str(corpus), "--arch", "small", "--steps", str(STEPS)]
    cmd += ["--max-length", str(MAX_LEN), "--batch", str(BATCH), "--rounds", "1", "--threads", "1", "--out", str(out)]
    p = subprocess.run(cmd, capture_output=True, text=True, env=env(), cwd=ROOT)
    assert p.returncode == 0, p.stderr[-2000:]
    text = out.read_text()
    assert f"Command: `python experiments/bench_train.py --corpus {corpus} --arch small" in text
    rows = [line.split("|")[1].strip() for line in text.splitlines() if line.startswith("| ")]
    assert rows == ["loop", "naive fair-esm", "resm"]
    assert "Speed-up: **" in text and "round by round: " in text
    assert "Machine load (`uptime`'s 1, 5, 15 min averages" in text
