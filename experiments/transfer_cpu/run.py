"""Does a protein model, mapped onto RNA, transfer? The equal-budget experiment on CPU.

    OMP_NUM_THREADS=1 python experiments/transfer_cpu/run.py --protein runs/protein_small/model.pt \
        --steps 1200 --out experiments/results/transfer_cpu.md

Four arms, continued MLM pretraining on the Rfam seed corpus with configs/pretrain/cpu_demo.yaml
(same `small` architecture, same steps, same batches: the stream depends on the corpus and
seed only, and every scheme emits one token per nucleotide, so the arms see the same
nucleotides in the same order):

  (a) kdny mapping, initialised from our protein checkpoint (configs/pretrain/protein_small_cpu.yaml)
  (b) kdny mapping, random initialisation
  (c) native nucleotide tokens (scheme `nt`), random initialisation
  (d) the codon3 context scheme, initialised from the protein checkpoint

Measured per arm: the validation MLM loss on held-out Rfam families along the run; zero-shot
structure F1 with the attention probe (fitted on 100 TR0 structures, threshold chosen on 100
VL0 structures, scored on VL0 and TS0 subsets); and supervised structure F1 with the backbone
frozen, the same head, data and budget for every arm (configs/finetune/structure_conv.yaml without
the RNAfold channel, so that only the backbone differs), scored on TS0 and bpRNA-new subsets.
Arms can be run in parallel processes with ``--arms``; ``--report`` only writes the table.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from repo_paths import REPO, data_dir, run_resm

ARMS = {
    "a_kdny_protein": ("kdny", "protein", "(a) mapped kdny, protein init"),
    "b_kdny_random": ("kdny", None, "(b) mapped kdny, random init"),
    "c_nt_random": ("nt", None, "(c) native nucleotide tokens, random init"),
    "d_codon3_protein": ("codon3", "protein", "(d) codon3 context scheme, protein init"),
}


def run_arm(name: str, a) -> None:
    scheme, init, _ = ARMS[name]
    out = REPO / a.runs / name
    out.mkdir(parents=True, exist_ok=True)
    log = out / "commands.log"
    res_file = out / "result.json"
    res = json.loads(res_file.read_text()) if res_file.exists() else {}
    model_init = [f"model.init={a.protein}", "model.arch=null"] if init else ["model.arch=small", "model.init=null"]
    if "pretrain_s" not in res:
        res["pretrain_s"] = run_resm(
            [
                "pretrain",
                "--config",
                "configs/pretrain/cpu_demo.yaml",
                *model_init,
                f"data.scheme={scheme}",
                f"train.max_steps={a.steps}",
                "train.max_minutes=null",
                "train.val_every=200",
                "train.ckpt_every=200",
                "train.progress=false",
                f"train.out_dir={out / 'pretrain'}",
            ],
            log,
        )
        res_file.write_text(json.dumps(res))
    model = out / "pretrain" / "model.pt"
    data = Path(a.data_dir)
    if "probe" not in res:
        t = time.time()
        run_resm(
            [
                "probe",
                model,
                data / "ss/bprna/TR0.dbn",
                "--val",
                data / "ss/bprna/VL0.dbn",
                "--scheme",
                scheme,
                "--out",
                out / "probe.pt",
                "--max-train",
                100,
                "--max-val",
                100,
            ],
            log,
        )
        res["probe"] = zero_shot_scores(model, out / "probe.pt", scheme, data, a.limit)
        res["probe"]["seconds"] = time.time() - t
        res_file.write_text(json.dumps(res))
    if "f1_mean" not in res.get("supervised", {}).get("ts0", {}):
        t = time.time()
        if not (out / "structure" / "structure_model.pt").exists():
            run_resm(
                [
                    "finetune",
                    "--config",
                    "configs/finetune/structure_conv.yaml",
                    f"model.init={model}",
                    f"model.scheme={scheme}",
                    "data.use_bpp=false",
                    f"train.max_steps={a.head_steps}",
                    "train.max_minutes=null",
                    "train.val_every=0",
                    "train.progress=false",
                    f"train.out_dir={out / 'structure'}",
                ],
                log,
            )
        sys.path.insert(0, str(REPO))
        from resm.structure.benchmark import EvaluateOptions, evaluate_structure

        sup = {}
        for ds in ("ts0", "bprna-new"):
            r = evaluate_structure(
                out / "structure" / "structure_model.pt", ds, data, EvaluateOptions(limit=a.limit, progress=False)
            )
            sup[ds] = {
                "n": r["n"],
                "threshold": r["threshold"],
                "f1_mean": r["model"]["f1_mean"],
                "f1_shift_mean": r["model"]["f1_shift_mean"],
                "rnafold_f1_mean": r["rnafold"]["f1_mean"],
                "rnafold_f1_shift_mean": r["rnafold"]["f1_shift_mean"],
                "seconds_model": r["seconds_model"],
            }
        res["supervised"] = sup
        res["supervised"]["seconds"] = time.time() - t
        res_file.write_text(json.dumps(res, default=float))


def zero_shot_scores(model_path, probe, scheme_name, data: Path, limit: int) -> dict:
    sys.path.insert(0, str(REPO))
    from resm.backbone.load import load_backbone
    from resm.mapping import get_scheme
    from resm.structure.datasets import load_dataset
    from resm.structure.io import read_structures
    from resm.structure.metrics import evaluate
    from resm.structure.predictor import MapPredictor
    from resm.structure.probe import ProbeFile, load_probe

    scheme = get_scheme(scheme_name)
    model = load_backbone(str(model_path), scheme).model.eval()
    load_probe(model, probe)
    pf = ProbeFile.read(probe)
    predictor = MapPredictor(model, scheme, pf.threshold, pf.method)  # the probe's decoding, as resm fold's
    out = {"threshold": pf.threshold}
    vl0 = list(read_structures(data / "ss/bprna/VL0.dbn"))
    rng = np.random.default_rng(0)
    vl0 = [vl0[i] for i in sorted(rng.permutation(len(vl0))[100 : 100 + limit])]  # not the 100 used for the threshold
    for name, recs in (("vl0", vl0), ("ts0", load_dataset("ts0", data, limit, 0))):
        pred = [s.pairs for s, _ in predictor.fold(recs, progress=False)]
        m = evaluate(pred, [r.pairs for r in recs])
        out[name] = {"f1": m["f1_mean"], "f1_shift": m["f1_shift_mean"], "n": len(recs)}
    return out


def report(a) -> None:
    rows, curves = [], {}
    for name, (_scheme, _init, label) in ARMS.items():
        d = REPO / a.runs / name
        if not (d / "result.json").exists():
            continue
        r = json.loads((d / "result.json").read_text())
        log = [json.loads(x) for x in (d / "pretrain" / "log.jsonl").read_text().splitlines()]
        val = [(x["step"], x["val_loss"], x["unigram_baseline"]) for x in log if x["split"] == "validation"]
        tr = [x for x in log if x["split"] == "train"]
        curves[label] = val
        p, s = r.get("probe", {}), r.get("supervised", {})
        rows.append(
            (
                label,
                val[-1][1] if val else float("nan"),
                val[-1][2] if val else float("nan"),
                tr[-1]["tokens_seen"] if tr else 0,
                (tr[-1]["elapsed_s"] if tr else 0) / 60,
                p.get("vl0", {}).get("f1", float("nan")),
                p.get("ts0", {}).get("f1", float("nan")),
                s.get("ts0", {}).get("f1_mean", float("nan")),
                s.get("ts0", {}).get("f1_shift_mean", float("nan")),
                s.get("bprna-new", {}).get("f1_mean", float("nan")),
                s.get("bprna-new", {}).get("f1_shift_mean", float("nan")),
            )
        )
    lines = [
        "# Transfer at equal budget (CPU scale): protein-initialised vs random vs native tokens",
        "",
        f"Command: `python experiments/transfer_cpu/run.py --protein {a.protein} --steps {a.steps} "
        f"--head-steps {a.head_steps} --limit {a.limit}`",
        "",
        "| arm | val MLM loss (held-out families) | unigram | tokens | pretrain min | zero-shot F1 VL0 "
        "| zero-shot F1 TS0 | supervised TS0 F1 | ±1 | supervised bpRNA-new F1 | ±1 |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r[0]} | {r[1]:.4f} | {r[2]:.4f} | {r[3]:,} | {r[4]:.1f} | {r[5]:.3f} | {r[6]:.3f} "
            f"| {r[7]:.3f} | {r[8]:.3f} | {r[9]:.3f} | {r[10]:.3f} |"
        )
    ref = None
    for n in ARMS:
        f = REPO / a.runs / n / "result.json"
        sup = json.loads(f.read_text()).get("supervised", {}) if f.exists() else {}
        if "f1_mean" in sup.get("ts0", {}):
            ref = sup
            break
    if ref:
        ts0, new = ref["ts0"], ref["bprna-new"]
        lines += [
            "",
            f"RNAfold (MFE) on the same subsets: TS0 {ts0['rnafold_f1_mean']:.3f} / "
            f"{ts0['rnafold_f1_shift_mean']:.3f}, bpRNA-new {new['rnafold_f1_mean']:.3f} / "
            f"{new['rnafold_f1_shift_mean']:.3f} (strict / ±1).",
        ]
    lines += ["", "Validation MLM loss along the run (step: loss):", ""]
    for label, val in curves.items():
        lines.append(f"* {label}: " + ", ".join(f"{s}: {v:.4f}" for s, v, _ in val))
    a.out.write_text("\n".join(lines) + "\n")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 4))
        for label, val in curves.items():
            if "codon3" in label:  # another vocabulary, and its MLM loss measures a context leak
                continue
            ax.plot([v[0] for v in val], [v[1] for v in val], label=label, marker="o", ms=3)
        if curves:
            ax.axhline(next(iter(curves.values()))[-1][2], color="grey", ls="--", label="unigram")
        ax.set_xlabel("step")
        ax.set_ylabel("validation MLM loss (nats)")
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(a.out.with_suffix(".png"), dpi=120)
    except ImportError:
        pass
    print("\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--protein", default="runs/protein_small/model.pt")
    ap.add_argument("--steps", type=int, default=1200)
    ap.add_argument("--head-steps", type=int, default=300)
    ap.add_argument("--limit", type=int, default=200, help="structures per evaluation set (seeded subset)")
    ap.add_argument("--runs", default="runs/transfer_cpu")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--arms", nargs="*", default=list(ARMS))
    ap.add_argument("--report", action="store_true")
    ap.add_argument("--out", type=Path, default=REPO / "experiments/results/transfer_cpu.md")
    a = ap.parse_args()
    a.data_dir = data_dir(a.data_dir)
    if not a.report:
        for name in a.arms:
            run_arm(name, a)
    report(a)


if __name__ == "__main__":
    main()
