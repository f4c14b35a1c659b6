"""RNA–RNA interaction and expression on CPU: resm (adapters / frozen) against the one-hot CNN
baselines, ViennaRNA duplex energy and the zero-shot score, all measured in one run.

    python experiments/rri_mrl_cpu/run.py --backbone runs/cpu_demo/model.pt \
        --probe runs/probe/cpu_demo_probe.pt --steps 1000 --out experiments/results/rri_mrl_cpu.md

Every arm trains through ``resm finetune`` (the shared loop) with the committed configs
(configs/finetune/{rri,mrl,rri_mrl_joint}.yaml) and the overrides listed in the table; the
test sets are never used for training or selection:

* RRI: MirTarRAW, fixed seeded 90/10 split (validation = the 10%); test = DeepMirTar_IndTest;
* MRL: the 20k library, fixed seeded 80/10/10 split; test = its 10% and the 3k human
  wild-type / variant fragments (a different library: reported as Spearman, R^2 shown).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]


def run(args, log):
    t = time.time()
    p = subprocess.run([sys.executable, "-m", "resm", *map(str, args)], cwd=REPO, capture_output=True, text=True)
    log.write(f"$ resm {' '.join(map(str, args))}\n{p.stdout}{p.stderr[-3000:] if p.returncode else ''}\n")
    log.flush()
    if p.returncode:
        raise SystemExit(f"failed: resm {' '.join(map(str, args))}\n{p.stderr[-3000:]}")
    return time.time() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--backbone", default="runs/cpu_demo/model.pt")
    ap.add_argument("--probe", default="runs/probe/cpu_demo_probe.pt")
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--runs", default="runs/rri_mrl_cpu")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--only", nargs="*", default=None, help="arms to (re)train")
    ap.add_argument("--out", type=Path, default=REPO / "experiments/results/rri_mrl_cpu.md")
    a = ap.parse_args()

    sys.path.insert(0, str(REPO))
    from resm.backbone.load import load_backbone
    from resm.config import default_data_dir
    from resm.data.mrl import read_mrl, read_variants, split_utrs
    from resm.data.rri import read_pairs, split_pairs
    from resm.mapping import get_scheme
    from resm.predict import interact, predict_expression
    from resm.structure.folders import rnafold_duplex_energy
    from resm.structure.probe import load_probe
    from resm.tasks.rri import rri_metrics, zero_shot_scores

    data = Path(a.data_dir or default_data_dir())
    runs = REPO / a.runs
    runs.mkdir(parents=True, exist_ok=True)
    log = open(runs / "commands.log", "a")  # noqa: SIM115 (appended to by every run below)
    common = [
        f"model.init={a.backbone}",
        f"train.max_steps={a.steps}",
        "train.max_minutes=null",
        "train.progress=false",
        "train.val_every=0",
        "train.ckpt_every=250",
    ]
    if a.data_dir:
        common.append(f"data_dir={a.data_dir}")
    arms = {
        "rri_adapters": ("configs/finetune/rri.yaml", []),
        "rri_frozen": ("configs/finetune/rri.yaml", ["model.mode=frozen", "model.adapter=null"]),
        "rri_onehot": (
            "configs/finetune/rri.yaml",
            ["model.encoder=onehot", "model.init=null", "model.mode=full", "model.adapter=null"],
        ),
        "mrl_adapters": ("configs/finetune/mrl.yaml", []),
        "mrl_frozen": ("configs/finetune/mrl.yaml", ["model.mode=frozen", "model.adapter=null"]),
        "mrl_optimus": ("configs/finetune/mrl.yaml", ["model.init=null", "head={kind: optimus}"]),
        "joint_adapters": ("configs/finetune/rri_mrl_joint.yaml", []),
    }
    times = {}
    for name, (cfg, extra) in arms.items():
        out = runs / name
        if a.only is not None and name not in a.only and (out / "model").exists():
            continue
        over = [
            c for c in common if not (c.startswith("model.init") and any(e.startswith("model.init") for e in extra))
        ]
        over = [
            c
            for c in over
            if not (c.startswith("train.max_steps") and any(e.startswith("train.max_steps") for e in extra))
        ]
        times[name] = run(["finetune", "--config", cfg, *over, *extra, f"train.out_dir={out}"], log)
        print(f"{name}: trained in {times[name]:.0f} s", flush=True)

    # ---------------------------------------------------------------- RRI
    test_rri = data / "rri/DeepMirTar_IndTest.tsv"
    tr, va = split_pairs(read_pairs(data / "rri/MirTarRAW.csv"), 0.1, 0)
    te = read_pairs(test_rri)
    seen = {(p.a, p.b) for p in tr}
    overlap = sum((p.a, p.b) in seen for p in te)
    rows = []
    y_va, y_te = np.array([p.label for p in va]), np.array([p.label for p in te])

    def add(name, how, s_va, s_te, secs, thr=0.5):
        m_va, m_te = rri_metrics(y_va, s_va, thr), rri_metrics(y_te, s_te, thr)
        rows.append((name, how, m_va["auroc"], m_te["accuracy"], m_te["f1"], m_te["auroc"], m_te["auprc"], secs))

    for name in ("rri_adapters", "rri_frozen", "rri_onehot", "joint_adapters"):
        t = time.time()
        s_va = interact(_tsv(va, runs / "va.tsv"), runs / name / "model")["scores"]
        s_te = interact(test_rri, runs / name / "model")["scores"]
        add(name, "trained (resm finetune)", s_va, s_te, time.time() - t)
    t = time.time()
    e_va = -np.array([rnafold_duplex_energy(p.a, p.b) for p in va])
    e_te = -np.array([rnafold_duplex_energy(p.a, p.b) for p in te])
    thr = float(np.median(e_va))  # threshold of a score without training: median on validation
    add(
        "ViennaRNA duplexfold (-dG)",
        "no training; accuracy/F1 at the validation median",
        e_va,
        e_te,
        time.time() - t,
        thr,
    )
    t = time.time()
    scheme = get_scheme("kdny")
    bb = load_backbone(a.backbone, scheme).model.eval()
    if a.probe:
        load_probe(bb, a.probe)
    z_va = zero_shot_scores(bb, scheme, va, linker="")
    z_te = zero_shot_scores(bb, scheme, te, linker="")
    add(
        "resm zero-shot (contact probe)",
        "no RRI training; accuracy/F1 at the validation median",
        z_va,
        z_te,
        time.time() - t,
        float(np.median(z_va)),
    )

    # ---------------------------------------------------------------- MRL
    utrs = read_mrl(data / "mrl/Smart5UTR_egfp_m1pseudo_2_test20k.csv")
    _, _, te20 = split_utrs(utrs, (0.8, 0.1, 0.1), 0)
    human = data / "mrl/pjsample_human_snv_designed_library_mrl.csv"
    hu, vp = read_variants(human)
    te_csv = runs / "mrl_test20k.csv"
    te_csv.write_text("id,utr,rl\n" + "".join(f"{u.name},{u.seq},{u.mrl}\n" for u in te20))
    mrows = []
    for name in ("mrl_adapters", "mrl_frozen", "mrl_optimus", "joint_adapters"):
        t = time.time()
        r1 = predict_expression(te_csv, runs / name / "model")
        r2 = predict_expression(human, runs / name / "model", variants=True)
        mrows.append(
            (
                name,
                r1["metrics"]["r2"],
                r1["metrics"]["spearman"],
                r2["metrics"]["r2"],
                r2["metrics"]["spearman"],
                r2["variants"]["spearman"],
                r2["variants"]["pearson"],
                time.time() - t,
            )
        )

    lines = [
        "# RNA–RNA interaction and expression on CPU (resm vs baselines, one run)",
        "",
        f"Command: `python experiments/rri_mrl_cpu/run.py --backbone {a.backbone} --probe {a.probe} --steps {a.steps}`",
        f"(backbone: the `small` RNA model of configs/pretrain/cpu_demo.yaml; {a.steps} optimiser steps per arm, "
        "the joint arm too (so each of its tasks gets half); one CPU thread).",
        "",
        "## RNA–RNA interaction (miRNA–target)",
        "",
        f"Validation: the seeded 10% of MirTarRAW ({len(va)} pairs). Test: DeepMirTar_IndTest ({len(te)} pairs; "
        f"{overlap} of them also occur, as exact pairs, in the MirTarRAW training part).",
        "",
        "| model | how | val AUROC | test accuracy | test F1 | test AUROC | test AUPRC | eval s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r[0]} | {r[1]} | {r[2]:.3f} | {r[3]:.3f} | {r[4]:.3f} | {r[5]:.3f} | {r[6]:.3f} | {r[7]:.0f} |"
        )
    lines += [
        "",
        "## Expression: mean ribosome load of 50-nt 5'UTRs",
        "",
        f"Test 20k: the seeded 10% of the 20k library ({len(te20)} UTRs). "
        f"Human: {len(hu)} wild-type and variant fragments "
        f"(another library, measured as `hrl`); variant effect over {len(vp)} (wild type, variant) pairs.",
        "",
        "| model | test20k R² | test20k Spearman | human R² | human Spearman "
        "| variant Δ Spearman | variant Δ Pearson | eval s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in mrows:
        lines.append(
            f"| {r[0]} | {r[1]:.3f} | {r[2]:.3f} | {r[3]:.3f} | {r[4]:.3f} | {r[5]:.3f} | {r[6]:.3f} | {r[7]:.0f} |"
        )
    lines += ["", "Training times (s): " + ", ".join(f"{k} {v:.0f}" for k, v in times.items()) if times else ""]
    a.out.write_text("\n".join(lines) + "\n")
    (runs / "results.json").write_text(json.dumps({"rri": rows, "mrl": mrows, "times": times}, indent=1, default=float))
    print("\n".join(lines))


def _tsv(pairs, path: Path) -> Path:
    path.write_text(
        "a_name\ta_seq\tb_name\tb_seq\tlabel\n"
        + "".join(f"{p.a_name}\t{p.a}\t{p.b_name}\t{p.b}\t{p.label}\n" for p in pairs)
    )
    return path


if __name__ == "__main__":
    main()
