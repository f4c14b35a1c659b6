"""The training commands (``resm pretrain``, ``resm export``) against bad input: the cases of
:mod:`tests.robustness.test_cli_cases`'s table for the commands that read a training config, a
run folder or a checkpoint, held to the same rule (:func:`tests.robustness.cases.check_one_line`)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.robustness.cases import (
    CKPT,
    PRETRAIN_COPY,
    RUN,
    Case,
    check_one_line,
    edit_json,
    then,
    truncate,
    write,
)

TRAINING_CASES = [
    # ------------------------------------------------------------------ pretrain
    Case("pretrain/config-is-a-folder", ["pretrain", "--config", "{dir}"], 1, ["a_folder", "is a folder"]),
    Case("pretrain/config-missing", ["pretrain", "--config", "{t}/none.yaml"], 1, ["none.yaml"]),
    Case(
        "pretrain/config-not-yaml",
        ["pretrain", "--config", "{t}/c.yaml"],
        1,
        ["c.yaml", "YAML"],
        write("c.yaml", "train: [1, 2\n"),
    ),
    Case(
        "pretrain/config-not-a-mapping",
        ["pretrain", "--config", "{t}/c.yaml"],
        1,
        ["c.yaml"],
        write("c.yaml", "- 1\n"),
    ),
    Case(
        "pretrain/max-steps-abc",
        ["pretrain", "--config", "{t}/cfg.yaml", "train.max_steps=abc"],
        1,
        ["train.max_steps", "abc"],
        PRETRAIN_COPY,
    ),
    Case(
        "pretrain/max-steps-negative",
        ["pretrain", "--config", "{t}/cfg.yaml", "train.max_steps=-5"],
        1,
        ["train.max_steps", "-5"],
        PRETRAIN_COPY,
    ),
    Case(
        "pretrain/lr-fast",
        ["pretrain", "--config", "{t}/cfg.yaml", "optim.lr=fast"],
        1,
        ["optim.lr", "fast"],
        PRETRAIN_COPY,
    ),
    Case(
        "pretrain/lr-negative",
        ["pretrain", "--config", "{t}/cfg.yaml", "optim.lr=-0.1"],
        1,
        ["optim.lr"],
        PRETRAIN_COPY,
    ),
    Case("pretrain/lr-nan", ["pretrain", "--config", "{t}/cfg.yaml", "optim.lr=.nan"], 1, ["optim.lr"], PRETRAIN_COPY),
    Case(
        "pretrain/override-unparsable",
        ["pretrain", "--config", "{t}/cfg.yaml", "train.max_steps=[1,"],
        1,
        ["train.max_steps=[1,", "YAML"],
        PRETRAIN_COPY,
    ),
    Case(
        "pretrain/override-no-equals",
        ["pretrain", "--config", "{t}/cfg.yaml", "train.max_steps"],
        1,
        ["train.max_steps", "key=value"],
        PRETRAIN_COPY,
    ),
    Case("pretrain/override-no-key", ["pretrain", "--config", "{t}/cfg.yaml", "=5"], 1, ["'=5'"], PRETRAIN_COPY),
    Case(
        "pretrain/override-into-a-value",
        ["pretrain", "--config", "{t}/cfg.yaml", "train.max_steps.x=1"],
        1,
        ["max_steps is not a section"],
        PRETRAIN_COPY,
    ),
    Case(
        "pretrain/unknown-section",
        ["pretrain", "--config", "{t}/cfg.yaml", "trian.max_steps=3"],
        1,
        ["trian"],
        PRETRAIN_COPY,
    ),
    Case(
        "pretrain/unknown-key",
        ["pretrain", "--config", "{t}/cfg.yaml", "optim.lrr=1"],
        1,
        ["optim", "lrr"],
        PRETRAIN_COPY,
    ),
    Case(
        "pretrain/arch-bogus",
        ["pretrain", "--config", "{t}/cfg.yaml", "model.arch=bogus"],
        1,
        ["model.arch", "bogus", "esm2_t6_8M_UR50D"],
        PRETRAIN_COPY,
    ),
    Case(
        "pretrain/out-dir-is-a-file",
        ["pretrain", "--config", "{t}/cfg.yaml", "train.out_dir={fa}"],
        1,
        ["train.out_dir", "x.fa"],
        PRETRAIN_COPY,
    ),
    Case(
        "pretrain/out-dir-readonly",
        ["pretrain", "--config", "{t}/cfg.yaml", "train.out_dir=/sys/run"],
        1,
        ["train.out_dir", "/sys/run"],
        PRETRAIN_COPY,
    ),
    Case(
        "pretrain/device-bogus",
        ["pretrain", "--config", "{t}/cfg.yaml", "train.device=bogus"],
        1,
        ["train.device", "bogus"],
        PRETRAIN_COPY,
    ),
    Case(
        "pretrain/grad-accum-0",
        ["pretrain", "--config", "{t}/cfg.yaml", "train.grad_accum=0"],
        1,
        ["train.grad_accum"],
        PRETRAIN_COPY,
    ),
    Case(
        "pretrain/bool-not-bool",
        ["pretrain", "--config", "{t}/cfg.yaml", "train.progress=maybe"],
        1,
        ["train.progress", "maybe"],
        PRETRAIN_COPY,
    ),
    Case(
        "pretrain/max-minutes-0",
        ["pretrain", "--config", "{t}/cfg.yaml", "train.max_minutes=0"],
        1,
        ["train.max_minutes"],
        PRETRAIN_COPY,
    ),
    Case(
        "pretrain/keep-last-0",
        ["pretrain", "--config", "{t}/cfg.yaml", "train.keep_last=0"],
        1,
        ["train.keep_last"],
        PRETRAIN_COPY,
    ),
    Case(
        "pretrain/betas-out-of-range",
        ["pretrain", "--config", "{t}/cfg.yaml", "optim.betas=[1.5,0.9]"],
        1,
        ["optim.betas"],
        PRETRAIN_COPY,
    ),
    Case(
        "pretrain/schedule-bogus",
        ["pretrain", "--config", "{t}/cfg.yaml", "optim.schedule=bogus"],
        1,
        ["optim.schedule", "bogus"],
        PRETRAIN_COPY,
    ),
    Case(
        "pretrain/data-max-length-0",
        ["pretrain", "--config", "{t}/cfg.yaml", "data.max_length=0"],
        1,
        ["data", "max_length"],
        PRETRAIN_COPY,
    ),
    Case(
        "pretrain/mask-prob-2",
        ["pretrain", "--config", "{t}/cfg.yaml", "masking.mask_prob=2"],
        1,
        ["mask_prob"],
        PRETRAIN_COPY,
    ),
    Case(
        "pretrain/config-not-utf8",
        ["pretrain", "--config", "{t}/c.yaml"],
        1,
        ["c.yaml", "UTF-8"],
        write("c.yaml", b"train:\n  out_dir: \xff\xfe\n"),
    ),
    Case(
        "pretrain/corpus-missing",
        ["pretrain", "--config", "{t}/cfg.yaml", "data.train=[{t}/none.fa]", "train.out_dir={t}/new"],
        1,
        ["none.fa"],
        PRETRAIN_COPY,
    ),
    Case(
        "pretrain/init-is-text",
        ["pretrain", "--config", "{t}/cfg.yaml", "model.arch=null", "model.init={text}", "train.out_dir={t}/new"],
        1,
        ["text.pt"],
        PRETRAIN_COPY,
    ),
    Case(
        "pretrain/deepspeed-config-missing",
        [
            "pretrain",
            "--config",
            "{t}/cfg.yaml",
            "train.engine=deepspeed",
            "train.deepspeed_config={t}/none.json",
            "train.out_dir={t}/new",
        ],
        1,
        ["train.deepspeed_config", "none.json"],
        PRETRAIN_COPY,
    ),
    Case(
        "pretrain/resume-engine-truncated",
        ["pretrain", "--config", "{t}/cfg.yaml", "train.max_steps=2"],
        1,
        ["engine.pt"],
        then(PRETRAIN_COPY, truncate(f"{CKPT}/engine.pt")),
    ),
    Case(
        "pretrain/resume-engine-is-text",
        ["pretrain", "--config", "{t}/cfg.yaml", "train.max_steps=2"],
        1,
        ["engine.pt", "not a readable"],
        then(PRETRAIN_COPY, write(f"{CKPT}/engine.pt", "hello\n")),
    ),
    Case(
        "pretrain/resume-state-garbage",
        ["pretrain", "--config", "{t}/cfg.yaml"],
        1,
        ["trainer_rank0.json"],
        then(PRETRAIN_COPY, write(f"{CKPT}/trainer_rank0.json", "{not json")),
    ),
    Case(
        "pretrain/resume-state-incomplete",
        ["pretrain", "--config", "{t}/cfg.yaml"],
        1,
        ["trainer_rank0.json", "step"],
        then(PRETRAIN_COPY, write(f"{CKPT}/trainer_rank0.json", '{"format": "resm-trainer-state"}')),
    ),
    Case(
        "pretrain/resume-changed-lr",
        ["pretrain", "--config", "{t}/cfg.yaml", "optim.lr=1e-3"],
        1,
        ["optim.lr 0.003 → 0.001", "train.resume_changed=true"],
        PRETRAIN_COPY,
    ),
    Case(
        "pretrain/resume-changed-max-steps",
        ["pretrain", "--config", "{t}/cfg.yaml", "train.max_steps=3"],
        1,
        ["train.max_steps 2 → 3"],
        PRETRAIN_COPY,
    ),
    Case(
        "pretrain/resume-changed-data",
        ["pretrain", "--config", "{t}/cfg.yaml", "data.max_length=32"],
        1,
        ["data.max_length 48 → 32"],
        PRETRAIN_COPY,
    ),
    Case(
        "pretrain/resume-other-engine",
        ["pretrain", "--config", "{t}/cfg.yaml"],
        1,
        ["engine deepspeed"],
        then(PRETRAIN_COPY, edit_json(f"{CKPT}/trainer_rank0.json", engine="deepspeed")),
    ),
    # ------------------------------------------------------------------ export
    Case("export/out-readonly", ["export", "{run}", "--out", "/sys/x.pt"], 1, ["/sys/x.pt"]),
    Case("export/out-is-folder", ["export", "{run}", "--out", "{dir}"], 1, ["a_folder", "is a folder"]),
    Case(
        "export/hf-is-a-file", ["export", "{run}", "--out", "{t}/esm2_m.pt", "--hf", "{fa}"], 1, ["x.fa", "is a file"]
    ),
    Case("export/hf-readonly", ["export", "{run}", "--out", "{t}/esm2_m.pt", "--hf", "/sys/hf"], 1, ["/sys/hf"]),
    Case(
        "export/hf-folder-of-other-files",
        ["export", "{run}", "--out", "{t}/esm2_m.pt", "--hf", "{dir}"],
        1,
        ["a_folder", "holds other files"],
    ),
    Case("export/missing", ["export", "{t}/none", "--out", "{t}/esm2_m.pt"], 1, ["none"]),
    Case("export/a-file", ["export", "{fa}", "--out", "{t}/esm2_m.pt"], 1, ["x.fa", "is a file"]),
    Case("export/not-a-run", ["export", "{dir}", "--out", "{t}/esm2_m.pt"], 1, ["a_folder", "checkpoints"]),
    Case(
        "export/engine-truncated",
        ["export", "{t}/run", "--out", "{t}/esm2_m.pt"],
        1,
        ["engine.pt"],
        then(RUN, truncate(f"{CKPT}/engine.pt")),
    ),
    Case(
        "export/engine-is-text",
        ["export", "{t}/run", "--out", "{t}/esm2_m.pt"],
        1,
        ["engine.pt"],
        then(RUN, write(f"{CKPT}/engine.pt", "hello\n")),
    ),
    Case(
        "export/engine-wrong-content",
        ["export", "{t}/run", "--out", "{t}/esm2_m.pt"],
        1,
        ["engine.pt", "not an engine state"],
        then(RUN, lambda p: torch.save({"x": torch.zeros(1)}, Path(p["t"]) / CKPT / "engine.pt")),
    ),
    Case(
        "export/state-garbage",
        ["export", "{t}/run", "--out", "{t}/esm2_m.pt"],
        1,
        ["trainer_rank0.json"],
        then(RUN, write(f"{CKPT}/trainer_rank0.json", "\x00\x01")),
    ),
    Case(
        "export/no-engine-state",
        ["export", "{t}/run", "--out", "{t}/esm2_m.pt"],
        1,
        ["no engine.pt"],
        then(RUN, lambda p: (Path(p["t"]) / CKPT / "engine.pt").unlink()),
    ),
]


@pytest.mark.parametrize("case", TRAINING_CASES, ids=[c.id for c in TRAINING_CASES])
def test_bad_input_is_one_line_and_writes_nothing(case: Case, ws, tmp_path, capfd, monkeypatch):
    check_one_line(case, ws, tmp_path, capfd, monkeypatch)
