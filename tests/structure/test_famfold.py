"""ArchiveII family-wise folds: training on a fold's partitions, one model per fold, and
`resm evaluate structure --dataset archiveii-famfold` against RNAfold."""

from __future__ import annotations

import json

import numpy as np
import yaml

from tests.conftest import resm_cli

RC = {"A": "U", "C": "G", "G": "C", "U": "A"}


def hairpin(rng, stem=6):
    s = "".join(rng.choice(list("ACGU"), stem))
    seq = s + "".join(rng.choice(list("ACGU"), 5)) + "".join(RC[c] for c in reversed(s)) + "AAA"
    pairs = [[k + 1, 2 * stem + 5 - k] for k in range(stem)]
    return seq, pairs


def fake_data_dir(tmp_path):
    """A data folder with the layout of ../shared/data/ss/archiveII (CSV + fold table)."""
    d = tmp_path / "data" / "ss" / "archiveII"
    d.mkdir(parents=True)
    rng = np.random.default_rng(0)
    rows, split = [], []
    fams = ["5s", "tRNA"]
    for f in fams:
        for k in range(12):
            seq, pairs = hairpin(rng, 5 + k % 3)
            rows.append(f'{f}_{k},{seq},{len(seq)},.,"{json.dumps(pairs)}"')
    for fold in fams:
        for f in fams:
            for k in range(12):
                part = "test" if f == fold else ("valid" if k < 3 else "train")
                split.append(f"{fold},0,{part},{f}_{k}")
    (d / "ArchiveII.csv").write_text("id,sequence,len,structure,base_pairs\n" + "\n".join(rows) + "\n")
    (d / "split_famfold.csv").write_text("fold_name,fold_number,partition,id\n" + "\n".join(split) + "\n")
    return tmp_path / "data"


def test_famfold_training_and_evaluation(tmp_path):
    data = fake_data_dir(tmp_path)
    ckpt = tmp_path / "tiny.pt"
    resm_cli("init-checkpoint", "--arch", "tiny", "--scheme", "kdny", "--out", ckpt)
    cfg = {
        "task": "structure",
        "model": {"init": str(ckpt)},
        "head": {"kind": "conv", "proj_dim": 8, "channels": 8, "blocks": 1, "dilations": [1]},
        "data": {
            "train": "{data_dir}/ss/archiveII/ArchiveII.csv",
            "split": "{data_dir}/ss/archiveII/split_famfold.csv",
            "max_length": 32,
            "tokens_per_batch": 256,
            "use_bpp": True,
            "bpp_cache": str(tmp_path / "bpp"),
        },
        "optim": {"lr": 3e-3, "warmup_steps": 2},
        "train": {"max_steps": 4, "val_every": 0, "ckpt_every": 0, "progress": False},
    }
    path = tmp_path / "famfold.yaml"
    path.write_text(yaml.safe_dump(cfg))
    for fold in ("5s", "tRNA"):
        resm_cli(
            "finetune",
            "--config",
            path,
            f"data_dir={data}",
            f"data.fold={fold}",
            f"train.out_dir={tmp_path / 'runs' / fold}",
        )
        used = json.loads((tmp_path / "runs" / fold / "config.json").read_text())["data"]
        assert used["fold"] == fold
    cached = sorted((tmp_path / "bpp").glob("*.npz"))  # the folds share one pair-probability cache
    assert cached and not list((tmp_path / "bpp").glob("*.tmp"))
    # the held-out family was never trained on: the fold's training records are the other family's
    from resm.config import load_config
    from resm.tasks.structure_task import StructureTask

    task = StructureTask(load_config(path, [f"data_dir={data}", "data.fold=5s"]))
    assert {r.name.split("_")[0] for r in task.train_records} == {"tRNA"}
    assert len(task.val_records) == 3 and all(r.name.startswith("tRNA") for r in task.val_records)

    def evaluate(model, *options, **kw):  # resm evaluate structure on the family folds of `data`
        famfold = ("--dataset", "archiveii-famfold", "--data-dir", data)
        return resm_cli("evaluate", "structure", "--model", model, *famfold, *options, **kw)

    per_fold = str(tmp_path / "runs" / "{fold}" / "structure_model.pt")
    out = tmp_path / "famfold.md"
    folders = ("--folders", "rnafold", "eternafold")
    evaluate(per_fold, "--out", out, *folders)
    text = out.read_text()
    assert "archiveii-famfold 5s | 12 | **resm**" in text and "archiveii-famfold tRNA | 12 | rnafold" in text

    def rows(text):  # method -> cells of the pooled row
        return {
            c[2].strip(): c
            for c in (
                r.split("|")[1:] for r in text.splitlines() if r.startswith("| archiveii-famfold, all folds | 24 |")
            )
        }

    pooled = rows(text)
    assert set(pooled) == {"**resm**", "rnafold", "eternafold"}
    # the folders fold these perfect hairpins well: their rows are real, not placeholders
    assert float(pooled["rnafold"][3]) > 0.8 and float(pooled["eternafold"][3]) > 0.8
    # the same evaluation reading the training runs' cache (fp16 priors): the same scores
    out2 = tmp_path / "famfold_cached.md"
    evaluate(per_fold, "--bpp-cache", tmp_path / "bpp", "--out", out2, *folders)
    pooled2 = rows(out2.read_text())
    assert abs(float(pooled2["**resm**"][3]) - float(pooled["**resm**"][3])) < 0.02
    assert pooled2["rnafold"][3] == pooled["rnafold"][3]
    assert len(list((tmp_path / "bpp").glob("*.npz"))) >= len(cached)
    p = evaluate(tmp_path / "runs" / "5s" / "structure_model.pt", check=False)
    assert p.returncode == 2 and "{fold}" in p.stderr
    p = resm_cli("finetune", "--config", path, f"data_dir={data}", "data.fold=nosuch", check=False)
    assert p.returncode == 1 and "nosuch" in p.stderr and len(p.stderr.strip().splitlines()) == 1
