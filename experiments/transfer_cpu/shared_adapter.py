"""One adapter for every head, or one per head? Frozen backbone or adapters? Protein, random or
native-token initialisation? The equal-budget experiment of issue 27 item 4, at CPU scale.

    OMP_NUM_THREADS=1 python experiments/transfer_cpu/shared_adapter.py \
        --protein runs/protein_small/model.pt --steps 80 --out experiments/results/shared_adapter_cpu.md

Nine arms: three backbone initialisations x three ways to train the heads.

* init ``protein``: our protein checkpoint (configs/pretrain/protein_small_cpu.yaml) read under the
  ``kdny`` mapping; ``random``: the same ``small`` architecture, random weights (init_seed 0), under
  ``kdny``; ``nt``: random weights (init_seed 0) under native nucleotide tokens (scheme ``nt``).
* ``shared``: one LoRA adapter (r 8) trained jointly for the interaction (rri) and expression
  (mrl) heads, ``task: joint`` of configs/finetune/rri_mrl_joint.yaml, ``steps`` steps with the
  two sub-tasks' batches interleaved; ``own``: each head with its own adapter, the same joint
  config with one sub-task per run, ``steps / 2`` steps each; ``frozen``: the joint config with
  the backbone frozen (heads only), ``steps`` steps.

Equal budget: in every arm each head sees exactly ``steps / 2`` of its own batches (64 pairs, 128
UTRs), the same batches in the same order (the sub-task streams depend on the data seed only),
under the same learning-rate schedule per head batch (cosine, warm-up a tenth of the run), the same
head architectures and initialisation seed. Every arm is trained through ``resm finetune``; no
model selection (the last step is scored).

Measured: RNA-RNA interaction AUROC / AUPRC on the DeepMirTar test (828 pairs, never used in
training), expression R^2 / Spearman on the MRL test part (the seeded 10% of the 20k library,
2,000 UTRs), with `resm interact` / `resm predict --task mrl`'s library functions on each bundle.
Structure is not measured here: when these arms ran, ``structure`` was not yet a sub-task of
``task: joint`` on this branch (main's 79279a3 added it as this session ended), so the structure
head could not share the adapter (the structure effect of the initialisation is in
experiments/results/transfer_cpu.md).

``--arms`` runs a subset (for two processes at a time); ``--report`` only writes the table and
figure from the arms' result files.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
INITS = {
    "protein": ("kdny", "protein", "protein checkpoint, kdny"),
    "random": ("kdny", None, "random init, kdny"),
    "nt": ("nt", None, "random init, native nt tokens"),
}
SETUPS = {
    "shared": "one shared adapter (joint)",
    "own": "own adapter per head",
    "frozen": "frozen backbone (heads only)",
}
ARMS = [f"{i}_{s}" for i in INITS for s in SETUPS]


def sh(args, log: Path) -> float:
    t = time.time()
    p = subprocess.run([sys.executable, "-m", "resm", *map(str, args)], cwd=REPO, capture_output=True, text=True)
    with open(log, "a") as fh:
        fh.write(f"$ resm {' '.join(map(str, args))}\n{p.stdout[-2000:]}{p.stderr[-3000:] if p.returncode else ''}\n")
    if p.returncode:
        raise SystemExit(f"failed: resm {' '.join(map(str, args))}\n{p.stderr[-3000:]}")
    return time.time() - t


def arm_config(init: str, setup: str, subs: list[str], steps: int, out: Path, a) -> dict:
    """The finetune config of one run of an arm: configs/finetune/rri_mrl_joint.yaml with the
    arm's backbone, mode, sub-tasks and budget."""
    cfg = yaml.safe_load((REPO / "configs/finetune/rri_mrl_joint.yaml").read_text())
    scheme, source, _ = INITS[init]
    model = cfg["model"]
    model["scheme"] = scheme
    model["init"] = a.protein if source == "protein" else str(random_backbone(scheme, out.parent.parent))
    if setup == "frozen":
        model["mode"] = "frozen"
        model.pop("adapter", None)
    cfg["tasks"] = {k: v for k, v in cfg["tasks"].items() if k in subs}
    for sub in cfg["tasks"].values():
        sub["data"]["max_val"] = 200  # the final validation only (no selection); tests are apart
    cfg["tasks"].get("rri", {}).get("data", {})["batch_size"] = a.rri_batch
    cfg["tasks"].get("mrl", {}).get("data", {})["batch_size"] = a.mrl_batch
    cfg["optim"]["warmup_steps"] = max(1, steps // 10)
    cfg["train"].update(
        out_dir=str(out),
        max_steps=steps,
        max_minutes=None,
        val_every=0,
        ckpt_every=0,
        log_every=10,
        progress=False,
    )
    return cfg


def random_backbone(scheme: str, runs: Path) -> Path:
    """The ``small`` architecture with random weights (init_seed 0) written as a checkpoint under
    ``scheme``, so the arm's bundle records a backbone that `resm interact` / `predict` can load
    (the same weights as ``model.arch=small model.init_seed=0``)."""
    path = runs / f"esm2_small_random_{scheme}.pt"
    if not path.exists():
        sys.path.insert(0, str(REPO))
        from resm.backbone.load import init_model, resm_meta, save_fair_esm
        from resm.mapping import get_scheme

        save_fair_esm(init_model("small", seed=0), path, resm_meta(get_scheme(scheme), "small"))
    return path


def run_arm(name: str, a) -> None:
    init, setup = name.split("_")
    out = REPO / a.runs / name
    out.mkdir(parents=True, exist_ok=True)
    log = out / "commands.log"
    res_file = out / "result.json"
    res = json.loads(res_file.read_text()) if res_file.exists() else {}
    runs = {"rri": ["rri"], "mrl": ["mrl"]} if setup == "own" else {"joint": ["rri", "mrl"]}
    steps = a.steps // 2 if setup == "own" else a.steps
    bundles = {}
    for run, subs in runs.items():
        rdir = out / run
        bundles.update({s: rdir / "model" for s in subs})
        if f"train_s_{run}" in res:
            continue
        cfg_file = out / f"{run}.yaml"
        cfg_file.write_text(yaml.safe_dump(arm_config(init, setup, subs, steps, rdir, a), sort_keys=False))
        res[f"train_s_{run}"] = sh(["finetune", "--config", cfg_file], log)
        res_file.write_text(json.dumps(res, indent=1))
    if "rri" not in res or "mrl" not in res:
        res.update(evaluate(bundles, Path(a.data_dir), REPO / a.runs, a.mrl_test))
        res_file.write_text(json.dumps(res, indent=1, default=float))
    print(name, json.dumps({k: res[k] for k in ("rri", "mrl")}, default=float), flush=True)


def evaluate(bundles: dict[str, Path], data: Path, runs: Path, mrl_test: int | None) -> dict:
    """DeepMirTar test AUROC / AUPRC and MRL test R^2 / Spearman of an arm's bundles (the MRL
    test part, or its seeded subset of ``mrl_test`` UTRs: the same for every arm)."""
    sys.path.insert(0, str(REPO))
    from resm.data.mrl import read_mrl, split_utrs
    from resm.predict import interact, predict_expression
    from resm.tasks.base import subset

    t = time.time()
    r = interact(data / "rri/DeepMirTar_IndTest.tsv", bundles["rri"])["metrics"]
    out = {"rri": {k: r[k] for k in ("auroc", "auprc", "n")}, "rri_eval_s": time.time() - t}
    te_csv = runs / f"mrl_test20k_{mrl_test or 'all'}.csv"
    if not te_csv.exists():
        _, _, te = split_utrs(read_mrl(data / "mrl/Smart5UTR_egfp_m1pseudo_2_test20k.csv"), (0.8, 0.1, 0.1), 0)
        te = subset(te, mrl_test, 0)
        tmp = te_csv.with_suffix(f".{os.getpid()}.tmp")  # two arms may evaluate at once
        tmp.write_text("id,utr,rl\n" + "".join(f"{u.name},{u.seq},{u.mrl}\n" for u in te))
        os.replace(tmp, te_csv)
    t = time.time()
    m = predict_expression(te_csv, bundles["mrl"])["metrics"]
    out.update(mrl={k: m[k] for k in ("r2", "spearman", "n")}, mrl_eval_s=time.time() - t)
    return out


def report(a) -> None:
    res = {}
    for name in ARMS:
        f = REPO / a.runs / name / "result.json"
        if f.exists() and "mrl" in json.loads(f.read_text()):
            res[name] = json.loads(f.read_text())
    cmd = (
        f"OMP_NUM_THREADS=1 python experiments/transfer_cpu/shared_adapter.py --protein {a.protein} "
        f"--steps {a.steps} --rri-batch {a.rri_batch} --mrl-batch {a.mrl_batch} --mrl-test {a.mrl_test or 0} "
        f"--arms {' '.join(res)} --out {_shown(a.out)}"
    )
    sub = f", a seeded subset of {a.mrl_test} of them, the same for every arm" if a.mrl_test else ""
    lines = [
        "# One adapter for every head? Frozen or adapters? Which initialisation? (equal budget, CPU scale)",
        "",
        f"Command: `{cmd}`{a.note}",
        "",
        f"Every arm: each head trained on exactly {a.steps // 2} batches of its own (RNA-RNA interaction: "
        f"{a.rri_batch} MirTarRAW pairs; expression: {a.mrl_batch} UTRs of the 20k library's training part), the "
        "same batches in the "
        "same order, the same heads (configs/finetune/rri_mrl_joint.yaml), LoRA r 8 where adapters train, cosine "
        "learning rate with a tenth of the run as warm-up, the last step scored. `shared`: one run of "
        f"`task: joint`, {a.steps} interleaved steps; `own`: one run per head, {a.steps // 2} steps each; "
        f"`frozen`: `task: joint` with the backbone frozen, {a.steps} steps. Backbone: the `small` ESM-2 "
        "architecture (4 layers, 128 dims, 0.8M parameters).",
        "",
        "Test sets: DeepMirTar_IndTest (828 pairs) for interaction; for expression the seeded 10% test part of "
        f"the 20k MRL library (2,000 UTRs){sub}. Structure is not in this table: when these arms ran, `structure` was "
        "not yet a sub-task of `task: joint` on this branch (main's 79279a3 added it as the session ended; see "
        "experiments/results/transfer_cpu.md for the initialisations on TS0 / bpRNA-new).",
        "",
        "| init | heads | DeepMirTar AUROC | AUPRC | MRL test R² | MRL test Spearman | train s |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in res.items():
        init, setup = name.split("_")
        secs = sum(v for k, v in r.items() if k.startswith("train_s_"))
        lines.append(
            f"| {INITS[init][2]} | {SETUPS[setup]} | {r['rri']['auroc']:.3f} | {r['rri']['auprc']:.3f} "
            f"| {r['mrl']['r2']:.3f} | {r['mrl']['spearman']:.3f} | {secs:.0f} |"
        )
    missing = [n for n in ARMS if n not in res]
    if missing:
        lines += ["", "Not run: " + ", ".join(missing) + "."]
    text = "\n".join(lines) + "\n"
    a.out.write_text(text)
    _figure(res, a.out.with_suffix(".png"), a.steps)
    print(text)


def _shown(path: Path) -> str:
    path = Path(path).resolve()
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def _figure(res: dict, path: Path, steps: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    width = 0.26
    colours = {"shared": "#1b9e77", "own": "#d95f02", "frozen": "#7570b3"}
    inits = list(INITS)
    for ax, (key, metric, label) in zip(
        axes, (("rri", "auroc", "DeepMirTar test AUROC"), ("mrl", "r2", "MRL test R²")), strict=True
    ):
        for k, setup in enumerate(SETUPS):
            vals = [res.get(f"{i}_{setup}", {}).get(key, {}).get(metric, np.nan) for i in inits]
            x = np.arange(len(inits)) + (k - 1) * width
            ax.bar(x, vals, width, label=SETUPS[setup], color=colours[setup])
            for xi, v in zip(x, vals, strict=True):
                if np.isfinite(v):
                    ax.text(xi, v, f"{v:.3f}", ha="center", va="bottom", fontsize=6)
        ax.set_xticks(np.arange(len(inits)), [INITS[i][2].replace(", ", "\n") for i in inits], fontsize=7)
        if key == "rri":
            ax.axhline(0.5, color="grey", ls="--", lw=0.8, label="chance (AUROC 0.5)")
        ax.set_ylabel(label)
        finite = [res[n][key][metric] for n in res if np.isfinite(res[n][key][metric])] or [0.0]
        ax.set_ylim(min(0.0, min(finite) - 0.05), max(finite) + 0.08)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=7, loc="lower center", ncol=4, frameon=False)
    fig.suptitle(f"Equal budget: {steps // 2} batches per head (CPU, small backbone)", fontsize=9)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    fig.savefig(path, dpi=150)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--protein", default="runs/protein_small/model.pt")
    ap.add_argument("--steps", type=int, default=80, help="steps of a joint arm (each head gets half)")
    ap.add_argument("--rri-batch", type=int, default=16, help="pairs per interaction batch")
    ap.add_argument("--mrl-batch", type=int, default=32, help="UTRs per expression batch")
    ap.add_argument("--mrl-test", type=int, default=1000, help="seeded subset of the MRL test part (0: all)")
    ap.add_argument("--runs", default="runs/shared_adapter_cpu")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--arms", nargs="*", default=ARMS, choices=ARMS)
    ap.add_argument("--report", action="store_true")
    ap.add_argument("--note", default="", help="text appended after the command line in the table")
    ap.add_argument("--out", type=Path, default=REPO / "experiments/results/shared_adapter_cpu.md")
    a = ap.parse_args()
    a.mrl_test = a.mrl_test or None
    if a.steps < 2 or a.steps % 2:
        raise SystemExit("--steps must be an even number >= 2 (each head gets half)")
    if a.data_dir is None:
        sys.path.insert(0, str(REPO))
        from resm.config import default_data_dir

        a.data_dir = default_data_dir()
    if not a.report:
        for name in a.arms:
            run_arm(name, a)
    report(a)


if __name__ == "__main__":
    main()
