"""A workspace of small, valid inputs for every command, built once (in process), which the
robustness and security tests copy from and spoil."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import yaml

from resm.cli import main as cli_main
from resm.structure.io import Structure, write_structures


def cli(*args) -> None:
    code = cli_main([str(a) for a in args])
    assert code == 0, f"resm {' '.join(map(str, args))} failed"


def hairpins(n: int, seed: int):
    rc = {"A": "U", "C": "G", "G": "C", "U": "A"}
    rng = np.random.default_rng(seed)
    recs = []
    for i in range(n):
        stem = "".join(rng.choice(list("GGCCGCU"), 6))
        seq = "AC" + stem + "GAAA" + "".join(rc[c] for c in reversed(stem)) + "CA"
        pairs = np.full(len(seq), -1)
        for k in range(6):
            pairs[2 + k], pairs[2 + 15 - k] = 2 + 15 - k, 2 + k
        recs.append(Structure(f"hp{i}", seq, pairs))
    return recs


@dataclass
class Workspace:
    root: Path
    files: dict[str, Path] = field(default_factory=dict)

    def __getitem__(self, key: str) -> Path:
        return self.files[key]


def _structure_config(ws: Workspace, out: Path) -> dict:
    return {
        "task": "structure",
        "model": {"init": str(ws["tiny"]), "mode": "frozen"},
        "head": {"kind": "conv", "proj_dim": 8, "channels": 8, "blocks": 1, "dilations": [1], "dropout": 0.0},
        "data": {
            "train": str(ws["dbn"]),
            "val": str(ws["dbn"]),
            "max_length": 40,
            "tokens_per_batch": 400,
            "use_bpp": False,
            "seed": 0,
        },
        "optim": {"lr": 1e-2, "warmup_steps": 1},
        "train": {
            "out_dir": str(out),
            "max_steps": 2,
            "log_every": 1,
            "val_every": 0,
            "ckpt_every": 0,
            "progress": False,
            "device": "cpu",
        },
    }


@pytest.fixture(scope="session")
def ws(tmp_path_factory) -> Workspace:
    """Valid inputs of every kind: FASTA, structures, pairs and UTR tables, a tiny fair-esm
    checkpoint and its HF folder, a pretraining run folder (two steps), rri and mrl model
    bundles, a probe, a structure model, configs for pretrain, finetune and compare."""
    from tests.tasks.test_mlm import write_cfg
    from tests.tasks.test_rri_mrl import mrl_config, rri_config, rri_pairs, utr_rows, write_pairs, write_utrs

    root = tmp_path_factory.mktemp("workspace")
    ws = Workspace(root)
    f = ws.files
    f["fa"] = root / "x.fa"
    f["fa"].write_text(">r1 first\nGGGAAACCCAUGC\n>r2\nACGUACGUAAAAACCCGGGUUU\n")
    f["dbn"] = root / "hp.dbn"
    write_structures(hairpins(12, 0), f["dbn"])
    f["tiny"] = root / "tiny.pt"
    cli("init-checkpoint", "--arch", "tiny", "--scheme", "kdny", "--seed", "1", "--out", f["tiny"])
    f["hf"] = root / "tiny_hf"
    cli("init-checkpoint", "--arch", "tiny", "--scheme", "kdny", "--seed", "1", "--out", f["hf"], "--format", "hf")
    f["probe"] = root / "probe.pt"
    cli("probe", f["tiny"], f["dbn"], "--out", f["probe"], "--max-train", "6", "--max-val", "4")
    # a pretraining run (plain torch engine): two steps, one checkpoint
    (root / "pre").mkdir()
    f["pretrain_cfg"] = write_cfg(root / "pre", max_steps=2, val_every=0, ckpt_every=2)
    f["run"] = root / "pre" / "run"
    cli("pretrain", "--config", f["pretrain_cfg"])
    f["ckpt"] = f["run"] / "checkpoints" / "step_00000002"
    # task bundles and a structure model
    f["pairs"] = write_pairs(root / "pairs.tsv", rri_pairs(6, 1))
    f["utrs"] = write_utrs(root / "utrs.csv", utr_rows(6, 1))
    for name, make in (("rri", rri_config), ("mrl", mrl_config)):
        (root / f"{name}_data").mkdir()
        cfg = make(root / f"{name}_data", f["tiny"], mode="frozen", steps=2)
        cfg["train"].update(out_dir=str(root / f"{name}_run"), val_every=0)
        f[f"{name}_cfg"] = root / f"{name}.yaml"
        f[f"{name}_cfg"].write_text(yaml.safe_dump(cfg))
        cli("finetune", "--config", f[f"{name}_cfg"])
        f[f"{name}_model"] = root / f"{name}_run" / "model"
    f["structure_cfg"] = root / "structure.yaml"
    f["structure_cfg"].write_text(yaml.safe_dump(_structure_config(ws, root / "structure_run")))
    cli("finetune", "--config", f["structure_cfg"])
    f["structure_model"] = root / "structure_run" / "structure_model.pt"
    f["compare_cfg"] = root / "compare.yaml"
    f["compare_cfg"].write_text(
        yaml.safe_dump(
            {
                "data": {"train": str(f["dbn"]), "val": str(f["dbn"]), "test": str(f["dbn"])},
                "backends": [{"name": "viennarna", "kind": "viennarna"}],
                "probe": {"enabled": False},
                "train": {"enabled": False},
                "out_dir": str(root / "cmp"),
                "progress": False,
            }
        )
    )
    # files that are not what they claim
    f["text"] = root / "text.pt"
    f["text"].write_text("this is a text file, not a checkpoint\n")
    f["empty"] = root / "empty.pt"
    f["empty"].write_bytes(b"")
    f["truncated"] = root / "truncated.pt"
    f["truncated"].write_bytes(f["tiny"].read_bytes()[:4000])
    f["dir"] = root / "a_folder"
    f["dir"].mkdir()
    (f["dir"] / "keep.txt").write_text("not an output\n")
    for p in root.rglob("*"):  # the tests compare listings: nothing here may change
        os.utime(p, ns=(1, 1)) if not p.is_symlink() else None
    return ws


def listing(*roots: Path) -> dict[str, tuple]:
    """Every path under ``roots`` (hidden files too) with, for a file, its size and
    modification time. A folder's own time is left out: checking that an output can be
    written creates and removes a temporary file in it, which is not writing anything."""
    out = {}
    for r in roots:
        for p in sorted(Path(r).rglob("*")):
            st = p.lstat()
            out[str(p)] = ("dir",) if p.is_dir() else (st.st_size, st.st_mtime_ns)
    return out


def said(err: str) -> list[str]:
    """The lines of stderr other than the progress bars' (tqdm's, which share lines with them)."""
    import re

    text = re.sub(r"[^\r\n]*\|[^\r\n|]*\| *\d+/\d+ \[[^\]\r\n]*\]", "", err)
    return [ln for ln in re.split(r"[\r\n]+", text) if ln.strip()]
