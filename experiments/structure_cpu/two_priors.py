"""Two pair priors as learnt features: an equal-budget A/B of the sparse pair head (issue 26, item 5).

Control: the shipped recipe ``configs/finetune/structure.yaml`` (EternaFold via LinearPartition
alone), ``train.max_steps`` as given, ``model.init=default`` (the shipped backbone). Variant: the
same, with ``data.priors=[{kind: eternafold, beam: 100}, {kind: vienna-lp, beam: 100}]``: the head
sees the union of both priors' candidates and each prior's features (``resm.heads.pairs``). Both
runs add SPOT-RNA's VL1 as ``data.val_sets`` (scored, never selected on: ``select_on`` stays
``both``, the recipe's rule), so that each run's final choice of decoding is scored on VL0 (400
seeded records), the held-out families (400) and VL1 (30, canonical pairs) in its
``structure_model.pt`` (``val_metrics``).

CRITERION (fixed before the runs ended): the variant passes if
    mean(VL0, families, VL1) F1 of variant - control >= +0.005
    and VL0 F1 of variant >= control - 0.003
    and families F1 of variant >= control - 0.003
(F1: mean per-sequence strict F1, each arm with its own chosen decoding). No test set is read.

    python experiments/structure_cpu/two_priors.py priors --kind eternafold -- OVERRIDES...
    python experiments/structure_cpu/two_priors.py coverage -- OVERRIDES... "data.priors=[...both...]"
    python experiments/structure_cpu/two_priors.py folders --out runs/folders.json -- OVERRIDES...
    python experiments/structure_cpu/two_priors.py table --control runs/X/structure_model.pt \
        --variant runs/Y/structure_model.pt [--baselines runs/folders.json]

``priors`` fills ``data.bpp_cache`` with one prior kind for every record the run reads (training
records, VL0 subset, held-out families, ``val_sets``), in one process, so that two processes can
build the two kinds at once without writing the same entries. ``--reverse`` takes the records
from the last one back: a second process of the same kind, started beside the first, fills the
cache from the other end (each entry is written atomically and read when present, so the two
meet in the middle and at most recompute the entries in flight).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

CONFIG = "configs/finetune/structure.yaml"
SETS = (("val", "VL0"), ("family", "families"), ("vl1", "VL1"))
KEYS = (("f1_mean", "F1"), ("f1_shift_mean", "F1 ±1"), ("precision_mean", "P"), ("recall_mean", "R"))


def build_priors(kind: str, overrides: list[str], reverse: bool = False) -> None:
    from resm.config import load_config
    from resm.structure.priors import PriorConfig, compute_priors
    from resm.tasks.structure_task import StructureTask

    task = StructureTask(load_config(CONFIG, overrides), train_priors=False)
    cfgs = [c for c in task.prior_cfgs if c.kind == kind]
    if not cfgs:
        sys.exit(f"no prior of kind {kind!r} in data.priors")
    cfg = cfgs[0] if isinstance(cfgs[0], PriorConfig) else PriorConfig(**cfgs[0])
    seqs = []
    for split in ("val", "family", *task.extra_sets, "train"):
        seqs += [r.seq for r in task.records(split)]
    seqs = list(dict.fromkeys(seqs))[:: -1 if reverse else 1]
    print(f"{kind}: {len(seqs)} sequences", flush=True)
    compute_priors(seqs, [cfg], task.data_cfg.bpp_cache, 1, progress=True, desc=kind)


def metrics(path: str) -> dict:
    from resm.backbone.load import safe_load

    payload = safe_load(path)
    return dict(payload["val_metrics"], decoding=payload.get("decoding"))


def folder_metrics(folder: str, overrides: list[str]) -> dict:
    """``folder`` (a classical folder of :mod:`resm.structure.folders`) scored on the same
    records as the runs' final validation (the control's config and seed)."""
    from resm.config import load_config
    from resm.structure.folders import fold_with
    from resm.structure.metrics import evaluate
    from resm.tasks.structure_task import StructureTask

    task = StructureTask(load_config(CONFIG, overrides), train_priors=False)
    out = {}
    for key, _ in SETS:
        recs = task.records(key)
        r = evaluate([fold_with(folder, x.seq) for x in recs], [x.pairs for x in recs])
        out[key] = {**{k: r[k] for k, _ in KEYS}, "pair_ratio": r["pair_ratio"], "n": len(recs)}
    return out


def coverage(overrides: list[str]) -> str:
    """Candidates per nucleotide and the share of reference pairs that are candidates (the
    recall ceiling), with the EternaFold prior alone and with the union of both priors."""
    import numpy as np

    from resm.config import load_config
    from resm.heads.pairs import candidates
    from resm.structure.metrics import evaluate
    from resm.tasks.structure_task import StructureTask

    task = StructureTask(load_config(CONFIG, overrides), train_priors=False)
    one = type(task.head_cfg).from_dict(dict(task.head_cfg.to_dict(), priors=1))
    lines = ["| set | candidates / nt, EternaFold / both | reference pairs among candidates, EternaFold / both |"]
    lines.append("|---|---|---|")
    for key, label in SETS:
        recs = task.records(key)
        task.ensure_priors([(key, k) for k in range(len(recs))])
        nt, n, cover, total = sum(len(r.seq) for r in recs), [0, 0], [0, 0], 0
        for k, r in enumerate(recs):
            pri = task.priors[(key, k)]
            for m, (cfg, ps) in enumerate(((one, pri[:1]), (task.head_cfg, pri))):
                c = candidates(r.seq, ps, cfg, r.pairs)
                n[m] += len(c)
                cover[m] += int(c.target.sum())
            total += int(evaluate([np.full(len(r.seq), -1)], [r.pairs])["n_true"])
        share = f"{cover[0] / total:.3f} / {cover[1] / total:.3f}"
        lines.append(f"| {label} | {n[0] / nt:.2f} / {n[1] / nt:.2f} | {share} |")
    return "\n".join(lines)


def table(control: str, variant: str, baselines: str | None) -> str:
    import json

    arms = {"control": metrics(control), "variant": metrics(variant)}
    baselines = json.loads(Path(baselines).read_text()) if baselines else {}
    lines = [
        "| set | arm | F1 | F1 ±1 | precision | recall | pred/ref pairs | n |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for key, label in SETS:
        for arm, m in {**arms, **baselines}.items():
            r = m[key]
            vals = " | ".join(f"{r[k]:.3f}" for k, _ in KEYS)
            lines.append(f"| {label} | {arm} | {vals} | {r['pair_ratio']:.3f} | {r['n']} |")
    f1 = {arm: {key: m[key]["f1_mean"] for key, _ in SETS} for arm, m in arms.items()}
    mean = {arm: sum(v.values()) / len(v) for arm, v in f1.items()}
    gain = mean["variant"] - mean["control"]
    d_vl0 = f1["variant"]["val"] - f1["control"]["val"]
    d_fam = f1["variant"]["family"] - f1["control"]["family"]
    ok = gain >= 0.005 and d_vl0 >= -0.003 and d_fam >= -0.003
    lines += [
        "",
        f"mean F1 of the three sets: control {mean['control']:.4f}, variant {mean['variant']:.4f} "
        f"(variant - control {gain:+.4f}; needs >= +0.005)",
        f"VL0 variant - control {d_vl0:+.4f} (needs >= -0.003); families {d_fam:+.4f} (needs >= -0.003)",
        f"verdict: {'PASS' if ok else 'FAIL'}",
        f"decoding: control {arms['control'].get('decoding', '')}, variant {arms['variant'].get('decoding', '')}",
    ]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("priors")
    p.add_argument("--kind", required=True)
    p.add_argument("--reverse", action="store_true", help="from the last record back (a second process)")
    p.add_argument("overrides", nargs="*")
    t = sub.add_parser("table")
    t.add_argument("--control", required=True)
    t.add_argument("--variant", required=True)
    t.add_argument("--baselines", help="the JSON file of the folders subcommand")
    c = sub.add_parser("coverage")
    c.add_argument("overrides", nargs="*", help="the variant run's config overrides")
    f = sub.add_parser("folders")
    f.add_argument("--out", required=True, help="JSON file: {folder: {set: metrics}}")
    f.add_argument("--names", nargs="+", default=["eternafold", "linearpartition-v", "rnafold"])
    f.add_argument("overrides", nargs="*", help="the control run's config overrides")
    a = ap.parse_args()
    if a.cmd == "priors":
        build_priors(a.kind, a.overrides, a.reverse)
    elif a.cmd == "coverage":
        print(coverage(a.overrides))
    elif a.cmd == "folders":
        import json

        out = {name: folder_metrics(name, a.overrides) for name in a.names}
        Path(a.out).write_text(json.dumps(out, indent=1))
    else:
        print(table(a.control, a.variant, a.baselines))


if __name__ == "__main__":
    main()
