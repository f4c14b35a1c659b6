"""resm pretrain end to end: learning, kill-and-resume, DeepSpeed ZeRO against the plain path,
export. Runs real subprocesses (the launcher, the CLI) on a tiny model and a synthetic corpus."""

import json

import numpy as np
import pytest
import torch
import yaml

from resm.backbone.load import load_backbone
from resm.config import DATA_DIR_ORIGIN
from tests.conftest import REPO, killed_at_checkpoint, logged, resm_cli, resm_main


def corpus(path, n=160, seed=0):
    """Learnable RNA: a Markov chain that steps A->C->G->U->A with probability 0.85 (else a
    random base), so letters are near-uniform (unigram loss ~1.386) while a masked base is
    predictable from its neighbours."""
    rng = np.random.default_rng(seed)
    nxt = {"A": "C", "C": "G", "G": "U", "U": "A"}
    with open(path, "w") as fh:
        for i in range(n):
            seq = [str(rng.choice(list("ACGU")))]
            for _ in range(int(rng.integers(30, 60)) - 1):
                seq.append(nxt[seq[-1]] if rng.random() < 0.85 else str(rng.choice(list("ACGU"))))
            fh.write(f">RF{i % 12:05d}|seq{i}\n{''.join(seq)}\n")
    return path


def write_cfg(tmp_path, arch="tiny", tokens=400, lr=3e-3, **train):
    fa = corpus(tmp_path / "corpus.fa")
    cfg = {
        "model": {"arch": arch, "init_seed": 1},
        "data": {
            "train": [str(fa)],
            "max_length": 48,
            "tokens_per_batch": tokens,
            "val_fraction": 0.2,
            "val_by": "family",
            "min_length": 5,
            "bucket_size": 64,
        },
        "validation": {"max_records": 40},
        "optim": {"lr": lr, "warmup_steps": 5, "schedule": "cosine"},
        "train": {
            "out_dir": str(tmp_path / "run"),
            "max_steps": 20,
            "log_every": 1,
            "val_every": 10,
            "ckpt_every": 5,
            "progress": False,
            **train,
        },
    }
    path = tmp_path / f"cfg_{len(list(tmp_path.glob('cfg_*')))}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


run = resm_cli


losses = logged


def test_training_learns_and_beats_unigram(tmp_path):
    # the masked-base loss drops sharply only after ~100 steps on this corpus, so the run is long
    # enough to end well past that point (a 150-step run ended at the edge, 1.18 vs 1.39)
    cfg = write_cfg(tmp_path, arch="small", tokens=2000, lr=2e-3, max_steps=250, val_every=125, ckpt_every=125)
    p = run("pretrain", "--config", cfg)
    assert "finished at step 250" in p.stdout
    val = losses(tmp_path / "run", "validation", "val_loss")
    base = losses(tmp_path / "run", "validation", "unigram_baseline")[250]
    assert val[250] < base - 0.3, (val, base)  # well below the unigram baseline
    log = [json.loads(x) for x in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert {"loss", "ppl", "tokens_per_s", "lr", "grad_norm"} <= set(log[0])
    model = load_backbone(tmp_path / "run" / "model.pt").model  # the final model is a fair-esm .pt
    assert model.num_layers == 4
    assert len(list((tmp_path / "run" / "checkpoints").iterdir())) <= 3


def test_the_last_line_names_the_model_written(tmp_path):
    """``resm pretrain`` ends naming the fair-esm ``.pt`` it wrote (and the Hugging Face folder
    with ``model.save_hf``), as ``resm finetune`` does: it named neither."""
    cfg = write_cfg(tmp_path, max_steps=2, val_every=2, ckpt_every=2)
    p = run("pretrain", "--config", cfg, "model.save_hf=true")
    assert p.stdout.strip().endswith(f"; wrote {tmp_path / 'run' / 'model.pt'} and {tmp_path / 'run' / 'model_hf'}")
    assert (tmp_path / "run" / "model.pt").is_file() and (tmp_path / "run" / "model_hf").is_dir()


def test_a_run_stopped_by_its_time_budget_says_so(tmp_path):
    """A run that train.max_minutes stops short of train.max_steps (cpu_demo's 14 minutes, kept
    when a GPU run starts from it) says where it stopped and that the same command continues;
    it said 'finished at step 1'."""
    cfg = write_cfg(tmp_path, max_steps=20, val_every=0, ckpt_every=0, max_minutes=1e-6)
    for step in (1, 2):  # each run takes one step: the budget is spent after it
        p = run("pretrain", "--config", cfg)
        assert p.stdout.startswith(
            f"stopped at step {step} of 20, train.max_minutes spent (run the same command again to continue)"
        ), p.stdout
    p = run("pretrain", "--config", cfg, "train.max_minutes=null", "train.resume_changed=true")
    assert p.stdout.startswith("finished at step 20;"), p.stdout


def test_sigkill_then_resume_matches_uninterrupted(tmp_path):
    (tmp_path / "ref").mkdir()
    ref_cfg = write_cfg(tmp_path / "ref", max_steps=40, val_every=0, ckpt_every=5)
    run("pretrain", "--config", ref_cfg)
    ref = losses(tmp_path / "ref" / "run")

    (tmp_path / "kill").mkdir()
    cfg = write_cfg(tmp_path / "kill", max_steps=40, val_every=0, ckpt_every=5)
    out = tmp_path / "kill" / "run"
    killed_at_checkpoint(["pretrain", "--config", cfg], out, 10)
    done = max(losses(out))
    assert done < 40, "the run was not interrupted"
    run("pretrain", "--config", cfg)  # same command: resumes from the newest checkpoint
    resumed = losses(out)
    assert sorted(resumed) == list(range(1, 41))  # log lines past the checkpoint were redone, once
    for step in (11, 25, 40):
        assert abs(resumed[step] - ref[step]) < 1e-4 * max(1.0, abs(ref[step])), (step, resumed[step], ref[step])


def test_resume_with_changed_config_is_refused(tmp_path):
    cfg = write_cfg(tmp_path, max_steps=5, val_every=0)
    # the first run and the refusals in this process (resm.cli.main, the same code without an
    # interpreter's start-up); the resumed run through the real entry point
    resm_main("pretrain", "--config", cfg)
    written = json.loads((tmp_path / "run" / "config.json").read_text())
    assert "data" in written and DATA_DIR_ORIGIN not in written  # load_config's own entry is not written
    listing = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    # a change to the task's own sections is always refused, naming the key and both values
    p = resm_main("pretrain", "--config", cfg, "train.max_steps=8", "masking.mask_prob=0.3", check=False)
    assert p.returncode == 1 and len(p.stderr.strip().splitlines()) == 1
    assert "masking.mask_prob 0.15 → 0.3 differs from its checkpoint step_00000005" in p.stderr
    # an optim/train change too, unless accepted explicitly
    p = resm_main("pretrain", "--config", cfg, "train.max_steps=8", "optim.lr=1e-3", check=False)
    assert p.returncode == 1 and len(p.stderr.strip().splitlines()) == 1
    assert "optim.lr 0.003 → 0.001, train.max_steps 5 → 8 differ" in p.stderr
    assert "train.resume_changed=true" in p.stderr
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == listing  # nothing written
    p = run(
        "pretrain",
        "--config",
        cfg,
        "train.max_steps=8",
        "optim.lr=1e-3",
        "train.resume_changed=true",
        "train.progress=true",
    )
    assert "resuming from" in p.stderr and "optim.lr 0.003 → 0.001, train.max_steps 5 → 8" in p.stderr
    assert "resm: resumed from step 5 (" in p.stderr
    assert "resume: data stream to its saved position" in p.stderr  # with train.progress, a bar while it gets there
    log = [json.loads(x) for x in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if r["split"] == "resume"] == [5]
    lr = {r["step"]: r["lr"] for r in log if r["split"] == "train"}
    assert sorted(lr) == list(range(1, 9))
    # the new peak rate applies from the resumed step on (cosine decay to 0.1x at step 8)
    assert lr[6] == pytest.approx(1e-3 * (0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * 1 / 3))), rel=1e-6)
    assert lr[8] == pytest.approx(1e-4, rel=1e-6)
    assert lr[5] > 1e-3  # before the resume: the old rate


def test_bad_config_errors(tmp_path):
    cfg = write_cfg(tmp_path)
    # one line each, from the real entry point (a traceback also exits 1 and ends in the message)
    p = run("pretrain", "--config", cfg, "optim.lrr=1", check=False)
    assert p.returncode == 1 and p.stderr.startswith("resm pretrain: error: optim: unknown key 'lrr'")
    assert len(p.stderr.strip().splitlines()) == 1, p.stderr
    p = run("pretrain", "--config", tmp_path / "nope.yaml", check=False)
    assert p.returncode == 1 and p.stderr.startswith("resm pretrain: error: ") and "nope.yaml" in p.stderr
    assert "no such config file" in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr


def torch_and_zero(tmp_path, stage: int, procs: int = 1, **train) -> None:
    """``resm pretrain`` of one config in ``procs`` processes, with the torch engine (out_dir
    ``tmp_path/torch``) and with DeepSpeed ZeRO ``stage`` (``tmp_path/z<stage>``,
    configs/deepspeed/zero<stage>.json): both log every step, with the same losses."""
    plain = write_cfg(tmp_path, out_dir=str(tmp_path / "torch"), **train)
    zero = write_cfg(
        tmp_path,
        out_dir=str(tmp_path / f"z{stage}"),
        engine="deepspeed",
        deepspeed_config=str(REPO / f"configs/deepspeed/zero{stage}.json"),
        **train,
    )
    run("pretrain", "--config", plain, procs=procs)
    run("pretrain", "--config", zero, procs=procs)
    a, b = losses(tmp_path / "torch"), losses(tmp_path / f"z{stage}")
    assert sorted(a) == sorted(b) == list(range(1, train["max_steps"] + 1))
    np.testing.assert_allclose([b[s] for s in a], [a[s] for s in a], rtol=1e-4)


@pytest.mark.slow
def test_zero3_one_process_matches_plain_and_exports(tmp_path):
    torch_and_zero(tmp_path, 3, max_steps=6, val_every=0, ckpt_every=3)
    # ZeRO-3 shards -> one fair-esm .pt and a HF folder, both loadable, equal to the plain run
    run("export", tmp_path / "z3", "--out", tmp_path / "esm2_z3.pt", "--hf", tmp_path / "z3_hf")
    m_pt = load_backbone(tmp_path / "esm2_z3.pt").model.state_dict()
    m_hf = load_backbone(tmp_path / "z3_hf").model.state_dict()
    m_plain = load_backbone(tmp_path / "torch" / "model.pt").model.state_dict()
    for k in m_pt:
        assert torch.equal(m_pt[k], m_hf[k])
        assert torch.allclose(m_pt[k], m_plain[k], atol=1e-4), k


@pytest.mark.slow
def test_zero2_two_processes_match_ddp(tmp_path):
    torch_and_zero(tmp_path, 2, procs=2, max_steps=5, val_every=5, ckpt_every=5)
    va = losses(tmp_path / "torch", "validation", "val_loss")[5]
    vb = losses(tmp_path / "z2", "validation", "val_loss")[5]
    assert abs(va - vb) < 1e-4
    # both ranks wrote their own trainer state; export consolidates the ZeRO-2 shards
    ck = tmp_path / "z2" / "checkpoints" / "step_00000005"
    assert (ck / "trainer_rank0.json").exists() and (ck / "trainer_rank1.json").exists()
    run("export", tmp_path / "z2", "--out", tmp_path / "esm2_z2.pt")
    assert load_backbone(tmp_path / "esm2_z2.pt").meta["step"] == 5
