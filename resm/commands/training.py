"""``resm pretrain`` and ``resm finetune``: the commands that run the shared training loop
(:func:`resm.tasks.run`) on a config."""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import Command, print_rank0


def config_help(kind: str) -> str:
    """``--config``'s help: the names of the shipped configs of ``kind`` (package data: an
    installed resm has no configs/ folder to look in)."""
    from ..config import shipped_configs

    return f"YAML config, or the name of a shipped one: {', '.join(shipped_configs(kind))}; required"


def training_args(sp: argparse.ArgumentParser, kind: str) -> None:
    sp.add_argument("--config", required=True, type=Path, help=config_help(kind))
    sp.add_argument(
        "overrides", nargs="*", metavar="key=value", help="override config entries, e.g. train.max_steps=100"
    )
    # the deepspeed launcher appends --local_rank=N; the rank is read from the environment
    sp.add_argument("--local_rank", "--local-rank", type=int, default=None, help=argparse.SUPPRESS)


def ended(result: dict) -> str:
    """How a training command's last line starts: the step it finished at, or where
    ``train.max_minutes`` stopped it short of ``train.max_steps`` (the same command resumes)."""
    if result.get("out_of_time"):
        return (
            f"stopped at step {result['step']} of {result['max_steps']}, train.max_minutes spent "
            "(run the same command again to continue)"
        )
    return f"finished at step {result['step']}"


def run_pretrain(a: argparse.Namespace) -> None:
    from ..config import find_config, load_config
    from ..tasks import run

    path = find_config(a.config, "pretrain")
    result = run(load_config(path, a.overrides), default="mlm", known=("mlm",), config_file=path)
    v = result.get("validation") or {}
    line = ended(result)
    if "val_loss" in v and v.get("n_masked", 1) == 0:
        line += ": no validation loss (the validation split is empty)"
    elif "val_loss" in v:
        line += f": validation loss {v['val_loss']:.4f} (unigram baseline {v['unigram_baseline']:.4f})"
    line += f"; wrote {result['model_file']}"  # the fair-esm .pt that resm embed/probe/finetune read
    if result.get("hf_folder"):  # model.save_hf
        line += f" and {result['hf_folder']}"
    print_rank0(line)


def run_finetune(a: argparse.Namespace) -> None:
    from ..config import find_config, load_config
    from ..structure.decode import Decoding
    from ..tasks import run, tasks_with

    path = find_config(a.config, "finetune")
    result = run(load_config(path, a.overrides), known=tasks_with("finetune"), config_file=path)
    v = result.get("validation") or {}
    line = ended(result)
    if "val_f1_shift" in v and result.get("decoding"):  # the F1 shown is the one of the decoding chosen below
        line += f": validation loss {v['val_loss']:.4f}"
    elif "val_f1_shift" in v:
        line += f": validation F1 {v['val_f1']:.3f} strict, {v['val_f1_shift']:.3f} shift (at 0.5)"
        line += f", loss {v['val_loss']:.4f}"
    if result.get("decoding"):
        d, f = result["decoding"], result.get("final") or {}
        line += f"; decoding: {Decoding.from_dict(d).describe()}"
        for s, m in f.items():
            if isinstance(m, dict) and "f1_mean" in m:
                line += f"; {s} F1 {m['f1_mean']:.3f} strict, {m['f1_shift_mean']:.3f} shift"
                line += f", pairs {m['pair_ratio']:.2f} of the reference's" if "pair_ratio" in m else ""
        line += f"; wrote {result['model_file']}"
    elif result.get("threshold") is not None:
        line += f"; threshold {result['threshold']:g}; wrote {result['model_file']}"
    elif result.get("final"):
        shown = {k: v for k, v in result["final"].items() if isinstance(v, float) and not k.startswith("n_")}
        # "validation loss", not "validation val_loss"
        shown = {k[4:] if k.startswith("val_") else k: v for k, v in shown.items()}
        line += ": validation " + ", ".join(f"{k} {v:.4f}" for k, v in shown.items())
        line += f"; wrote {result['model_file']}"
    print_rank0(line)


PRETRAIN = Command(
    "pretrain",
    "continue masked-LM pretraining of ESM-2 on mapped RNA (or train from scratch)",
    lambda sp: training_args(sp, "pretrain"),
    run_pretrain,
    training=True,
    examples=(
        (
            "resm pretrain --config cpu_demo model.arch=null model.init=esm2_t6_8M_UR50D.pt",
            "continue an ESM-2 checkpoint on mapped RNA (cpu_demo names an arch)",
        ),
        (
            "resm pretrain --config cpu_demo data.train=[my_rnas.fa] train.out_dir=runs/mine",
            "the same on your own FASTA; re-run it to resume; then resm export",
        ),
    ),
)
FINETUNE = Command(
    "finetune",
    "fine-tune the task a config names (structure, interaction, expression...; see configs/finetune/) "
    "on an ESM-2 backbone",
    lambda sp: training_args(sp, "finetune"),
    run_finetune,
    training=True,
    examples=(
        (
            "resm finetune --config structure model.init=esm2_rna.pt",
            "the structure head on your backbone (a resm export, or runs/X/model.pt)",
        ),
        (
            "resm finetune --config structure data.train=[my.dbn] data.val=my_val.dbn data.families=null "
            "data.family_holdout=0",
            "on structures of your own (no bpRNA families to hold out)",
        ),
    ),
)
