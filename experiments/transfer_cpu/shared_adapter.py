"""One adapter for every head, or one per head? Frozen backbone or adapters? Protein, random or
native-token initialisation? The equal-budget experiment of issue 27 item 4, at CPU scale.

    OMP_NUM_THREADS=1 python experiments/transfer_cpu/shared_adapter.py \
        --protein runs/protein_small/model.pt --batches 200 --ss-test 1000 \
        --runs runs/shared_adapter_3h --arms protein_shared          # one arm; two processes at a time
    OMP_NUM_THREADS=1 python experiments/transfer_cpu/shared_adapter.py ... --report \
        --out experiments/results/shared_adapter_cpu_3heads.md        # the table and figure
    OMP_NUM_THREADS=1 python experiments/transfer_cpu/shared_adapter.py --structure-head pairs \
        --bpp-cache DIR --ss-max-length 600 --ss-tokens 2000 --ss-test 300 --prime   # then the arms

Nine arms: three backbone initialisations x three ways to train the heads, each arm training
three heads (``--heads``: structure, rri, mrl).

* init ``protein``: our protein checkpoint (configs/pretrain/protein_small_cpu.yaml) read under the
  ``kdny`` mapping; ``random``: the same ``small`` architecture, random weights (init_seed 0), under
  ``kdny``; ``nt``: random weights (init_seed 0) under native nucleotide tokens (scheme ``nt``).
* ``shared``: one LoRA adapter (r 8) trained jointly for every head, ``task: joint``
  (configs/finetune/rri_mrl_joint.yaml's interaction and expression heads, plus the ``structure``
  sub-task), ``batches x heads`` steps with the sub-tasks' batches interleaved round-robin;
  ``own``: each head with its own adapter, the same config with one sub-task per run, ``batches``
  steps each; ``frozen``: the joint config with the backbone frozen (heads only).
* The structure head is the dense 2-D head of configs/finetune/structure_conv.yaml (kind ``conv``,
  one-hot pair channels) reading the encoder's embeddings, without the ViennaRNA channel: no
  thermodynamic prior, so what it knows beyond the sequence comes from the backbone. (The shipped
  ``pairs`` head reads EternaFold's candidate pairs, which would carry most of the signal for
  every arm; an attention-reading head cannot share an encoder in a joint run.) Its greedy
  threshold is chosen at the end of training on 200 VL0 records.
* ``--structure-head pairs``: the shipped kind instead, configs/finetune/shared.yaml's
  ``tasks.structure`` (the sparse pair head over EternaFold's candidate pairs, beam 100, width
  32; its ``max_train``, ``tokens_per_batch``, ``max_length`` from --ss-max-length / --ss-tokens;
  200 VL0 records for the end-of-training choice), priors read from / stored in ``--bpp-cache``
  by training and by the test folds alike, computed in one process (``data.workers`` 1). Fill
  the cache first with ``--prime`` (one process: the priors of the structure training,
  validation and test records), so that arms running side by side never fold the same
  sequence. ``--reference`` folds the same test records with EternaFold alone (the prior the
  head reads), for the report's arm-minus-EternaFold rows. Its table:
  shared_adapter_cpu_3heads_pairs.md.

Equal budget: in every arm each head sees exactly ``--batches`` of its own batches (structure:
bpRNA TR0 crops of ``--ss-max-length`` nt, ``--ss-tokens`` tokens a batch; interaction:
``--rri-batch`` MirTarRAW pairs; expression: ``--mrl-batch`` UTRs), the same batches in the same
order (the sub-task streams depend on the data seed only), under the same learning-rate schedule
per head batch (cosine, warm-up a tenth of the run), the same head architectures and
initialisation seed. Every arm is trained through ``resm finetune``; no model selection (the
last step is scored).

Measured on each arm's bundle(s), never on data read in training: structure mean per-sequence
F1 (strict and ±1) on TS0 and bpRNA-new (all records or a seeded ``--ss-test`` subset of each),
folded by the bundle's predictor as `resm fold --model DIR` folds and scored by
resm.structure.metrics.evaluate; RNA-RNA interaction AUROC / AUPRC on the DeepMirTar test (828
pairs, `resm interact`'s library function); expression R^2 / Spearman on the MRL test part (the
seeded 10% of the 20k library, 2,000 UTRs, or a seeded ``--mrl-test`` subset; `resm predict
--task mrl`'s library function). Each arm keeps its per-item test results (items_<head>.json),
from which the report draws standard errors (per-sequence F1: over sequences; AUROC and R^2:
seeded bootstrap) and paired differences between arms that differ in one factor.

``--arms`` runs a subset (for two processes at a time); ``--score`` scores only the heads named
(a later call without it scores the rest on the bundles already trained, so an arm can train
while the test priors are still being computed); ``--report`` only writes the table and figure
from the arms' result files. The two-head tables (shared_adapter_cpu.md,
shared_adapter_cpu_s400.md) were made by this script before structure joined (commit a706479,
``--steps`` = joint steps, two heads).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import yaml
from repo_paths import REPO, data_dir, run_resm

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


def arm_config(init: str, setup: str, subs: list[str], steps: int, out: Path, a) -> dict:
    """The finetune config of one run of an arm: configs/finetune/rri_mrl_joint.yaml (the
    interaction and expression heads) plus, for ``structure``, the dense 2-D head of
    configs/finetune/structure_conv.yaml without its ViennaRNA channel, with the arm's backbone,
    mode, sub-tasks and budget."""
    cfg = yaml.safe_load((REPO / "configs/finetune/rri_mrl_joint.yaml").read_text())
    scheme, source, _ = INITS[init]
    model = cfg["model"]
    model["scheme"] = scheme
    model["init"] = a.protein if source == "protein" else str(random_backbone(scheme, out.parent.parent))
    if setup == "frozen":
        model["mode"] = "frozen"
        model.pop("adapter", None)
    tasks = {"structure": structure_entry(a), **cfg["tasks"]}
    cfg["tasks"] = {k: tasks[k] for k in subs}
    for name, sub in cfg["tasks"].items():
        if name != "structure":
            sub["data"]["max_val"] = 200  # the final validation only (no selection); tests are apart
    cfg["tasks"].get("rri", {}).get("data", {})["batch_size"] = a.rri_batch
    cfg["tasks"].get("mrl", {}).get("data", {})["batch_size"] = a.mrl_batch
    cfg["optim"]["warmup_steps"] = max(1, steps // 10)
    if a.lr is not None:
        cfg["optim"]["lr"] = a.lr
    if a.seed:  # the structure and interaction heads' initialisation, batch order and crops; the
        # expression data seed stays 0: it defines the MRL test split
        cfg["train"]["seed"] = a.seed
        for name in ("structure", "rri"):
            if name in cfg["tasks"]:
                cfg["tasks"][name]["data"]["seed"] = a.seed
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


def structure_entry(a) -> dict:
    """The ``structure`` sub-task of ``--structure-head`` (:func:`pairs_entry` for ``pairs``);
    ``conv``: configs/finetune/structure_conv.yaml's head (kind ``conv``, one-hot pair channels,
    no attention) and data, without the ViennaRNA channel (no
    thermodynamic prior: what the head knows comes from the backbone's embeddings and the
    sequence), crops of ``--ss-max-length`` nt, ``--ss-tokens`` tokens a batch; the greedy
    threshold is chosen at the end on a fixed seeded 200-record subset of VL0 (validation
    only: no test record is read in training)."""
    if a.structure_head == "pairs":
        return pairs_entry(a)
    cfg = yaml.safe_load((REPO / "configs/finetune/structure_conv.yaml").read_text())
    data = dict(cfg["data"], use_bpp=False, max_length=a.ss_max_length, tokens_per_batch=a.ss_tokens, max_val=200)
    return {"weight": 1.0, "head": cfg["head"], "data": data, "loss": cfg["loss"]}


def pairs_entry(a) -> dict:
    """configs/finetune/shared.yaml's ``structure`` sub-task (the shipped sparse pair head over
    EternaFold's candidate pairs) with crops of ``--ss-max-length`` nt, ``--ss-tokens`` tokens a
    batch, 200 VL0 records for the end-of-training choice, its priors in ``--bpp-cache``
    computed in one process."""
    sub = yaml.safe_load((REPO / "configs/finetune/shared.yaml").read_text())["tasks"]["structure"]
    data = dict(
        sub["data"],
        max_length=a.ss_max_length,
        tokens_per_batch=a.ss_tokens,
        max_val=200,
        bpp_cache=str(a.bpp_cache),
        workers=1,
    )
    return dict(sub, data=data)


def prime(a) -> None:
    """Fill ``--bpp-cache`` in this one process: the pair priors of every structure record an
    arm may read (training records, validation records, the TS0 / bpRNA-new test subsets), so
    that arms run side by side never compute the same priors."""
    sys.path.insert(0, str(REPO))
    from resm.config import from_dict
    from resm.data.labelled_structures import StructureDataConfig, load_records, load_training_records
    from resm.mapping import get_scheme
    from resm.structure.datasets import load_dataset
    from resm.structure.priors import PriorConfig, compute_priors

    sub = pairs_entry(a)
    data = {k: v.format(data_dir=a.data_dir) if isinstance(v, str) else v for k, v in sub["data"].items()}
    d = from_dict(StructureDataConfig, data, "data")
    scheme = get_scheme("kdny")
    seqs = [r.seq for r in load_training_records(d, scheme)[0]]
    seqs += [r.seq for r in load_records(d.val, scheme, d.max_val, d.seed)[0]]
    seqs += [r.seq for name in SS_SETS for r in load_dataset(name, Path(a.data_dir), a.ss_test, 0)]
    cfgs = [from_dict(PriorConfig, p, "data.priors") for p in d.priors]
    t = time.time()
    Path(a.bpp_cache).mkdir(parents=True, exist_ok=True)
    compute_priors(list(dict.fromkeys(seqs)), cfgs, a.bpp_cache, workers=1, progress=True)
    print(f"priors of {len(set(seqs))} sequences in {a.bpp_cache} ({time.time() - t:.0f} s)", flush=True)


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
    res = json.loads(res_file.read_text()) if res_file.exists() else {"seed": a.seed}
    runs = {h: [h] for h in a.heads} if setup == "own" else {"joint": list(a.heads)}
    bundles = {}
    for run, subs in runs.items():
        rdir = out / run
        bundles.update(dict.fromkeys(subs, rdir / "model"))
        if f"train_s_{run}" in res:
            continue
        steps = a.batches * len(subs)
        cfg_file = out / f"{run}.yaml"
        cfg_file.write_text(yaml.safe_dump(arm_config(init, setup, subs, steps, rdir, a), sort_keys=False))
        res[f"train_s_{run}"] = run_resm(["finetune", "--config", cfg_file], log)
        res_file.write_text(json.dumps(res, indent=1))
    for head in a.heads:
        if head not in res and head in a.score:
            t = time.time()
            res[head], items = EVALUATE[head](bundles[head], Path(a.data_dir), REPO / a.runs, a)
            res[f"{head}_eval_s"] = time.time() - t
            (out / f"items_{head}.json").write_text(json.dumps(items, default=float))
            res_file.write_text(json.dumps(res, indent=1, default=float))
    print(name, json.dumps({k: res[k] for k in a.heads if k in res}, default=float), flush=True)


def evaluate_rri(bundle: Path, data: Path, runs: Path, a) -> tuple[dict, dict]:
    """DeepMirTar test AUROC / AUPRC of the bundle's interaction head (`resm interact`'s library
    function), and each pair's score and label."""
    sys.path.insert(0, str(REPO))
    from resm.predict import interact

    got = interact(data / "rri/DeepMirTar_IndTest.tsv", bundle)
    r = got["metrics"]
    items = {"score": [float(x) for x in got["scores"]], "label": [int(p.label) for p in got["pairs"]]}
    return {k: r[k] for k in ("auroc", "auprc", "n")}, items


def evaluate_mrl(bundle: Path, data: Path, runs: Path, a) -> tuple[dict, dict]:
    """MRL test R^2 / Spearman of the bundle's expression head (`resm predict --task mrl`'s
    library function) on the MRL test part, or its seeded subset of ``--mrl-test`` UTRs (the
    same for every arm), and each UTR's prediction and measured MRL."""
    sys.path.insert(0, str(REPO))
    from resm.data.mrl import read_mrl, split_utrs
    from resm.predict import predict_expression
    from resm.tasks.base import subset

    te_csv = runs / f"mrl_test20k_{a.mrl_test or 'all'}.csv"
    if not te_csv.exists():
        _, _, te = split_utrs(read_mrl(data / "mrl/Smart5UTR_egfp_m1pseudo_2_test20k.csv"), (0.8, 0.1, 0.1), 0)
        te = subset(te, a.mrl_test, 0)
        tmp = te_csv.with_suffix(f".{os.getpid()}.tmp")  # two arms may evaluate at once
        tmp.write_text("id,utr,rl\n" + "".join(f"{u.name},{u.seq},{u.mrl}\n" for u in te))
        os.replace(tmp, te_csv)
    got = predict_expression(te_csv, bundle)
    y = [float(line.split(",")[2]) for line in te_csv.read_text().splitlines()[1:]]
    m = got["metrics"]
    return {k: m[k] for k in ("r2", "spearman", "n")}, {"pred": [float(x) for x in got["pred"]], "y": y}


def evaluate_structure(bundle: Path, data: Path, runs: Path, a) -> tuple[dict, dict]:
    """Mean per-sequence F1 (strict and ±1 shift) of the bundle's structure head on TS0 and
    bpRNA-new (all records, or a seeded subset of ``--ss-test`` of each: the same for every
    arm), folded as `resm fold --model DIR` folds (the bundle's predictor, at the threshold
    chosen on VL0) and scored with resm.structure.metrics.evaluate, per set with its standard
    error over sequences; and each sequence's F1 and ±1 F1."""
    sys.path.insert(0, str(REPO))
    import torch

    from resm.structure.datasets import load_dataset
    from resm.structure.predictor_loading import supervised_predictor
    from resm.tasks.base import open_bundle

    # `resm fold --model DIR --threads 1 [--bpp-cache]`: priors (pair head) in one process, from the cache
    cache = a.bpp_cache if a.structure_head == "pairs" else None
    pred = supervised_predictor(bundle, workers=1, cache=cache, open_bundle=open_bundle)
    out, items = {}, {}
    for name in SS_SETS:
        recs = load_dataset(name, data, a.ss_test, 0)
        t = time.time()
        with torch.inference_mode():
            got = [s.pairs for s, _ in pred.fold([(r.name, r.seq) for r in recs], progress=False)]
        out[name] = {"n": len(recs), "fold_s": time.time() - t}
        _score(got, recs, name, out[name], items)
    return out, items


def _score(got: list, recs: list, name: str, out: dict, items: dict) -> None:
    """Mean per-sequence F1 and ±1 F1 of the partner arrays ``got`` against ``recs`` (with the
    standard errors over sequences) into ``out``, each sequence's score into ``items``."""
    import numpy as np

    from resm.structure.metrics import evaluate

    r = evaluate(got, [x.pairs for x in recs])
    per = [evaluate([p], [x.pairs]) for p, x in zip(got, recs)]  # per-sequence scores, for the SE
    out["pair_ratio"] = r["pair_ratio"]
    for key in ("f1", "f1_shift"):
        v = np.array([q[f"{key}_mean"] for q in per])
        out.update({key: r[f"{key}_mean"], f"{key}_se": float(v.std(ddof=1) / np.sqrt(len(v)))})
        items[f"{name}_{key}"] = v.tolist()


def reference(a) -> None:
    """EternaFold alone (LinearPartition's MEA structure, beam 100: the folder whose pair
    probabilities the ``pairs`` head reads) on the same TS0 / bpRNA-new records, scored as the
    arms are; written to ``{runs}/eternafold``."""
    sys.path.insert(0, str(REPO))
    from resm.structure.datasets import load_dataset
    from resm.structure.folders import fold_with

    out, items = {}, {}
    for name in SS_SETS:
        recs = load_dataset(name, Path(a.data_dir), a.ss_test, 0)
        t = time.time()
        got = [fold_with("eternafold", r.seq) for r in recs]
        out[name] = {"n": len(recs), "fold_s": time.time() - t}
        _score(got, recs, name, out[name], items)
    folder = REPO / a.runs / "eternafold"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "items_structure.json").write_text(json.dumps(items))
    (folder / "result.json").write_text(json.dumps({"structure": out}, indent=1))
    print(json.dumps(out), flush=True)


EVALUATE = {"structure": evaluate_structure, "rri": evaluate_rri, "mrl": evaluate_mrl}
SS_SETS = ("ts0", "bprna-new")


def load_arms(runs, heads) -> tuple[dict, dict]:
    """The results and per-item test results of the arms in ``runs`` that scored every head."""
    res, items = {}, {}
    for name in ARMS:
        f = REPO / runs / name / "result.json"
        r = json.loads(f.read_text()) if f.exists() else {}
        if all(h in r for h in heads):
            lost = [h for h in heads if not (f.parent / f"items_{h}.json").exists()]
            if lost:
                raise SystemExit(
                    f"{f.parent / f'items_{lost[0]}.json'}: no such file; arm {name} scored {lost[0]} but its "
                    f"per-item results are gone (take {lost[0]} out of its result.json, then --arms {name} "
                    f"--score {lost[0]})"
                )
            res[name] = r
            items[name] = {h: json.loads((f.parent / f"items_{h}.json").read_text()) for h in heads}
    return res, items


def report(a) -> None:
    res, items = load_arms(a.runs, a.heads)
    se = {n: standard_errors(items[n], a.heads) for n in res}
    lr = f"--lr {a.lr} " if a.lr is not None else ""
    pairs = f"--structure-head pairs --bpp-cache {a.bpp_cache} " if a.structure_head == "pairs" else ""
    cmd = (
        f"OMP_NUM_THREADS=1 python experiments/transfer_cpu/shared_adapter.py --protein {a.protein} "
        f"--heads {' '.join(a.heads)} --batches {a.batches} --rri-batch {a.rri_batch} --mrl-batch {a.mrl_batch} "
        f"{lr}{pairs}--ss-max-length {a.ss_max_length} --ss-tokens {a.ss_tokens} --ss-test {a.ss_test or 0} "
        f"--mrl-test {a.mrl_test or 0} {f'--seed {a.seed} ' if a.seed else ''}--runs {a.runs} "
        f"--arms {' '.join(res)} --out {_shown(a.out)}"
    )
    if a.seed_runs:
        cmd += f" --seed-runs {' '.join(a.seed_runs)}"
    n = len(a.heads)
    sub = f", a seeded subset of {a.mrl_test} of them, the same for every arm" if a.mrl_test else ""
    ss_sub = f"a seeded subset of {a.ss_test} records of each, the same for every arm" if a.ss_test else "all records"
    lines = [
        "# One adapter for every head? Frozen or adapters? Which initialisation? (equal budget, CPU scale)",
        "",
        f"Command: `{cmd}`{a.note}",
        "",
        f"Every arm: each head trained on exactly {a.batches} batches of its own, the same batches in the same "
        "order, the same head architectures and initialisation seed, LoRA r 8 where adapters train, cosine "
        f"learning rate (peak {a.lr or 1e-3:g}) with a tenth of the run as warm-up, the last step scored (no model "
        "selection). Heads: "
        + "; ".join(HEAD_TEXT[_text_key(h, a)].format(a=a) for h in a.heads)
        + f". `shared`: one run of `task: joint`, {a.batches * n} steps with the heads' batches interleaved "
        f"round-robin; `own`: one run per head, {a.batches} steps each, each with its own adapter; `frozen`: "
        f"`task: joint` with the backbone frozen (heads only), {a.batches * n} steps. Backbone: the `small` "
        "ESM-2 architecture (4 layers, 128 dims, 0.8M parameters).",
        "",
        "Test sets, never read in training: "
        + "; ".join(TEST_TEXT[h].format(sub=sub, ss_sub=ss_sub) for h in a.heads)
        + ". In brackets: the standard error over test items (structure: over sequences; AUROC and R²: "
        "1,000 seeded bootstrap resamples of the test items).",
        "",
        "| init | heads | " + " | ".join(c for h in a.heads for c in COLUMNS[h]) + " | train s |",
        "|---|---|" + "---|" * sum(len(COLUMNS[h]) for h in a.heads) + "---|",
    ]
    for name, r in res.items():
        init, setup = name.split("_")
        secs = sum(v for k, v in r.items() if k.startswith("train_s_"))
        cells = [c for h in a.heads for c in CELLS[h](r[h], se[name])]
        lines.append(f"| {INITS[init][2]} | {SETUPS[setup]} | " + " | ".join(cells) + f" | {secs:.0f} |")
    diffs = contrasts(res, items, a.heads)
    if diffs:
        lines += [
            "",
            "Paired differences (first arm minus second; in brackets the standard error of the difference over "
            "the same test items: structure over sequences, AUROC and R² by 1,000 seeded paired bootstrap "
            "resamples):",
            "",
            "| contrast | " + " | ".join(lab for h in a.heads for lab in DIFF_LABELS[h]) + " |",
            "|---|" + "---|" * sum(len(DIFF_KEYS[h]) for h in a.heads),
        ]
        for label, cells in diffs:
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
    if a.seed_runs:
        lines += ["", *seed_table(res, items, a)]
    ref = REPO / a.runs / "eternafold" / "result.json"
    if "structure" in a.heads and ref.exists():
        lines += ["", *reference_table(res, items, json.loads(ref.read_text()), ref.parent)]
    missing = [n for n in ARMS if n not in res]
    if missing:
        lines += ["", "Not run: " + ", ".join(missing) + "."]
    lines += ["", "What the table shows, and what it cannot: experiments/transfer_cpu/README.md (issue 27 item 4)."]
    text = "\n".join(lines) + "\n"
    a.out.write_text(text)
    _figure(res, se, a.out.with_suffix(".png"), a.batches, a.heads)
    print(text)


HEAD_TEXT = {
    "pairs": "structure, configs/finetune/shared.yaml's sub-task (the shipped sparse pair head over EternaFold's "
    "candidate pairs, beam 100, width 32; bpRNA TR0, max_train 2000) on crops of {a.ss_max_length} nt, "
    "{a.ss_tokens} tokens a batch, 200 VL0 records for the end-of-training choice, priors from one cache "
    "folder for every arm",
    "structure": "structure, the dense 2-D head of configs/finetune/structure_conv.yaml (one-hot pair channels, "
    "no ViennaRNA channel, no attention maps) on bpRNA TR0 crops of {a.ss_max_length} nt, {a.ss_tokens} tokens "
    "a batch, greedy threshold chosen on 200 VL0 records",
    "rri": "interaction, configs/finetune/rri_mrl_joint.yaml's head on {a.rri_batch} MirTarRAW pairs a batch",
    "mrl": "expression, rri_mrl_joint.yaml's head on {a.mrl_batch} UTRs of the 20k MRL library's training part a batch",
}
TEST_TEXT = {
    "structure": "structure on TS0 (1,305) and bpRNA-new (5,401), {ss_sub}, mean per-sequence F1 strict and "
    "with ±1 shifts, folded as `resm fold --model DIR` folds",
    "rri": "interaction on DeepMirTar_IndTest (828 pairs)",
    "mrl": "expression on the seeded 10% test part of the 20k MRL library (2,000 UTRs){sub}",
}
COLUMNS = {
    "structure": ("TS0 F1", "TS0 F1 ±1", "bpRNA-new F1", "bpRNA-new F1 ±1"),
    "rri": ("DeepMirTar AUROC", "AUPRC"),
    "mrl": ("MRL R²", "MRL Spearman"),
}


def _text_key(head: str, a) -> str:
    return "pairs" if head == "structure" and a.structure_head == "pairs" else head


def _se(v, e) -> str:
    return f"{v:.3f} ({e:.3f})"


CELLS = {
    "structure": lambda r, se: [_se(r[s][k], r[s][f"{k}_se"]) for s in SS_SETS for k in ("f1", "f1_shift")],
    "rri": lambda r, se: [_se(r["auroc"], se["auroc"]), f"{r['auprc']:.3f}"],
    "mrl": lambda r, se: [_se(r["r2"], se["r2"]), f"{r['spearman']:.3f}"],
}
DIFF_KEYS = {"structure": ("ts0_f1", "bprna-new_f1"), "rri": ("auroc",), "mrl": ("r2",)}
DIFF_LABELS = {"structure": ("Δ TS0 F1", "Δ bpRNA-new F1"), "rri": ("Δ AUROC",), "mrl": ("Δ R²",)}
BOOT = 1000


def _metric(key: str, it: dict, idx=None):
    """An arm's metric ``key`` on its test items; with ``idx`` (resamples x items, indices) an
    array, one value per resample. AUROC by ranks (the Mann-Whitney statistic, ties averaged:
    scikit-learn's roc_auc_score), R^2 as scikit-learn's r2_score, F1 as a mean over sequences."""
    import numpy as np
    from scipy.stats import rankdata

    idx = np.arange(_n(key, it))[None] if idx is None else idx
    if key == "auroc":
        y, p = np.asarray(it["rri"]["label"])[idx], np.asarray(it["rri"]["score"])[idx]
        ranks = rankdata(p, axis=1)
        pos = y.sum(axis=1)
        v = ((ranks * y).sum(axis=1) - pos * (pos + 1) / 2) / (pos * (y.shape[1] - pos))
    elif key == "r2":
        y, p = np.asarray(it["mrl"]["y"])[idx], np.asarray(it["mrl"]["pred"])[idx]
        v = 1 - ((y - p) ** 2).sum(axis=1) / ((y - y.mean(axis=1, keepdims=True)) ** 2).sum(axis=1)
    else:
        v = np.asarray(it["structure"][key])[idx].mean(axis=1)
    return float(v[0]) if v.shape[0] == 1 and idx.shape[0] == 1 else v


def _n(key: str, it: dict) -> int:
    return len(it["rri"]["label"] if key == "auroc" else it["mrl"]["y"] if key == "r2" else it["structure"][key])


def _boot_se(key: str, a: dict, b: dict | None = None) -> float:
    """Bootstrap standard error of ``key`` on arm items ``a`` (or of the paired difference a - b),
    1,000 seeded resamples of the test items."""
    import numpy as np

    n = _n(key, a)
    idx = np.random.default_rng(0).integers(0, n, (BOOT, n))
    vals = _metric(key, a, idx) - (_metric(key, b, idx) if b is not None else 0.0)
    return float(np.std(vals, ddof=1))


def standard_errors(it: dict, heads) -> dict:
    """Bootstrap standard errors of an arm's AUROC and R² (structure's come with its result)."""
    return {k: _boot_se(k, it) for h in heads if h != "structure" for k in DIFF_KEYS[h]}


def _diff(key: str, a: dict, b: dict) -> str:
    import numpy as np

    if key in ("auroc", "r2"):
        d, e = _metric(key, a) - _metric(key, b), _boot_se(key, a, b)
    else:  # per-sequence F1: the same sequences, so the paired differences' standard error
        v = np.asarray(a["structure"][key]) - np.asarray(b["structure"][key])
        d, e = float(v.mean()), float(v.std(ddof=1) / np.sqrt(len(v)))
    return f"{d:+.3f} ({e:.3f})"


def contrasts(res: dict, items: dict, heads) -> list[tuple[str, list[str]]]:
    """Paired differences between arms that differ in one factor: the setups within each
    initialisation, and the initialisations within each setup."""
    pairs = []
    for i in INITS:
        for x, y in (("shared", "own"), ("shared", "frozen"), ("own", "frozen")):
            pairs.append((f"{i}: {x} − {y}", f"{i}_{x}", f"{i}_{y}"))
    for s in SETUPS:
        for x, y in (("protein", "random"), ("protein", "nt"), ("random", "nt")):
            pairs.append((f"{s}: {x} − {y}", f"{x}_{s}", f"{y}_{s}"))
    keys = [k for h in heads for k in DIFF_KEYS[h]]
    return [(lab, [_diff(k, items[x], items[y]) for k in keys]) for lab, x, y in pairs if x in res and y in res]


def reference_table(res: dict, items: dict, ref: dict, folder: Path) -> list[str]:
    """EternaFold alone on the same structure test records (``--reference``), and each arm
    minus it (paired over the same sequences)."""
    it = {"structure": json.loads((folder / "items_structure.json").read_text())}
    cells = [_se(ref["structure"][s][k], ref["structure"][s][f"{k}_se"]) for s in SS_SETS for k in ("f1", "f1_shift")]
    lines = [
        "Structure against EternaFold alone (LinearPartition's maximum expected accuracy structure, beam 100, "
        "the folder whose pair probabilities the pair head reads; `--reference`), on the same records:",
        "",
        "| | " + " | ".join(COLUMNS["structure"]) + " |",
        "|---|" + "---|" * len(COLUMNS["structure"]),
        "| EternaFold | " + " | ".join(cells) + " |",
    ]
    for name in res:
        diffs = [_diff(f"{s}_{k}", items[name], it) for s in SS_SETS for k in ("f1", "f1_shift")]
        lines.append(f"| {name} − EternaFold | " + " | ".join(diffs) + " |")
    return lines


def seed_table(res: dict, items: dict, a) -> list[str]:
    """The seed spread: each arm that also ran under another seed (``--seed-runs`` folders),
    one row per seed, and the difference between the seeds; then each other seed's paired
    contrasts between its arms. Where no arm of the other seeds scored structure (``--score rri
    mrl``), the heads they did score."""
    heads = list(a.heads)
    runs = [load_arms(d, heads) for d in a.seed_runs]
    if not any(r for r, _ in runs) and "structure" in heads:
        heads.remove("structure")
        runs = [load_arms(d, heads) for d in a.seed_runs]
    for folder, (r, _) in zip(a.seed_runs, runs):
        if not r:
            raise SystemExit(
                f"--seed-runs {folder}: no arm there scored {', '.join(heads)} "
                "(each arm's result.json and items_<head>.json)"
            )
    cols = [(h, k) for h in heads for k in DIFF_KEYS[h]]
    labels = [lab for h in heads for lab in DIFF_LABELS[h]]
    lines = [
        "Seed spread (the same arm trained again under another seed: train.seed and the structure / interaction "
        "data seeds, i.e. head initialisation, adapter initialisation, dropout, batch order and crops; the "
        "expression data seed stays 0 because it defines the MRL test split"
        + ("; structure not scored for the other seeds" if heads != list(a.heads) else "")
        + "):",
        "",
        "| arm | seed | " + " | ".join(labels).replace("Δ ", "") + " |",
        "|---|---|" + "---|" * len(cols),
    ]
    for name in res:
        others = [(r[name].get("seed", 0), it[name]) for r, it in runs if name in r]
        if not others:
            continue
        for seed, it in [(res[name].get("seed", 0), items[name]), *others]:
            lines.append(f"| {name} | {seed} | " + " | ".join(f"{_metric(k, it):.3f}" for _, k in cols) + " |")
        for seed, it in others:
            cells = " | ".join(_diff(k, items[name], it) for _, k in cols)
            lines.append(f"| {name} | {res[name].get('seed', 0)} − {seed} | {cells} |")
    if len(lines) == 4:
        return []
    for r, it in runs:
        diffs = contrasts(r, it, heads)
        if diffs:
            seed = next(iter(r.values())).get("seed", 0)
            lines += ["", f"Paired differences under seed {seed} (as above, between that seed's arms):", ""]
            lines += ["| contrast | " + " | ".join(labels) + " |", "|---|" + "---|" * len(cols)]
            lines += [f"| {label} | " + " | ".join(cells) + " |" for label, cells in diffs]
    return lines


def _shown(path: Path) -> str:
    path = Path(path).resolve()
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def _figure(res: dict, se: dict, path: Path, batches: int, heads) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    panels = {
        "structure": [("ts0", "f1", "TS0 F1"), ("bprna-new", "f1", "bpRNA-new F1")],
        "rri": [("rri", "auroc", "DeepMirTar test AUROC")],
        "mrl": [("mrl", "r2", "MRL test R²")],
    }
    chosen = [p for h in heads for p in panels[h]]
    fig, axes = plt.subplots(1, len(chosen), figsize=(3.2 * len(chosen), 3.6))
    axes = np.atleast_1d(axes)
    width = 0.26
    colours = {"shared": "#1b9e77", "own": "#d95f02", "frozen": "#7570b3"}
    inits = list(INITS)

    def value(name, key, metric):
        r = res.get(name)
        if r is None:
            return np.nan, 0.0
        if key in SS_SETS:
            return r["structure"][key][metric], r["structure"][key][f"{metric}_se"]
        return r[key][metric], se[name][metric]

    for ax, (key, metric, label) in zip(axes, chosen, strict=True):
        for k, setup in enumerate(SETUPS):
            vals, errs = zip(*(value(f"{i}_{setup}", key, metric) for i in inits))
            x = np.arange(len(inits)) + (k - 1) * width
            ax.bar(x, vals, width, yerr=errs, capsize=2, label=SETUPS[setup], color=colours[setup])
            for xi, v in zip(x, vals, strict=True):
                if np.isfinite(v):
                    ax.text(xi, v, f"{v:.3f}", ha="center", va="bottom", fontsize=5)
        ax.set_xticks(np.arange(len(inits)), [INITS[i][2].replace(", ", "\n") for i in inits], fontsize=6)
        if key == "rri":
            ax.axhline(0.5, color="grey", ls="--", lw=0.8, label="chance (AUROC 0.5)")
        ax.set_ylabel(label)
        finite = [value(n, key, metric)[0] for n in res] or [0.0]
        ax.set_ylim(min(0.0, min(finite) - 0.05), max(finite) + 0.08)
    handles, labels = axes[0].get_legend_handles_labels()
    if "rri" in heads:
        h2, l2 = axes[[c[0] for c in chosen].index("rri")].get_legend_handles_labels()
        handles, labels = h2, l2
    fig.legend(handles, labels, fontsize=7, loc="lower center", ncol=4, frameon=False)
    fig.suptitle(f"Equal budget: {batches} batches per head (CPU, small backbone; bars: standard errors)", fontsize=9)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    fig.savefig(path, dpi=150)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--protein", default="runs/protein_small/model.pt")
    ap.add_argument("--heads", nargs="+", default=list(EVALUATE), choices=list(EVALUATE), help="the heads trained")
    ap.add_argument("--batches", type=int, default=40, help="batches per head (every arm, every head)")
    ap.add_argument("--rri-batch", type=int, default=16, help="pairs per interaction batch")
    ap.add_argument("--mrl-batch", type=int, default=32, help="UTRs per expression batch")
    ap.add_argument("--lr", type=float, default=None, help="peak learning rate (default: rri_mrl_joint.yaml's)")
    ap.add_argument("--ss-max-length", type=int, default=400, help="crop length of the structure training records")
    ap.add_argument("--ss-tokens", type=int, default=2000, help="tokens per structure batch")
    ap.add_argument("--ss-test", type=int, default=0, help="seeded subset of TS0 and of bpRNA-new (0: all)")
    ap.add_argument("--mrl-test", type=int, default=1000, help="seeded subset of the MRL test part (0: all)")
    ap.add_argument("--runs", default="runs/shared_adapter_cpu")
    ap.add_argument(
        "--seed",
        type=int,
        default=0,
        help="train.seed and the structure / interaction data seeds (head initialisation, batch order, crops); "
        "the expression data seed stays 0 (it defines the MRL test split)",
    )
    ap.add_argument(
        "--seed-runs", nargs="*", default=[], help="--report: runs folders of other seeds, for the seed-spread table"
    )
    ap.add_argument(
        "--structure-head",
        choices=("conv", "pairs"),
        default="conv",
        help="conv: the dense 2-D head, no thermodynamic channel; pairs: shared.yaml's head over EternaFold's pairs",
    )
    ap.add_argument("--bpp-cache", default="runs/prior_cache", help="--structure-head pairs: the priors' folder")
    ap.add_argument("--prime", action="store_true", help="--structure-head pairs: fill --bpp-cache, then stop")
    ap.add_argument(
        "--reference", action="store_true", help="fold the structure test records with EternaFold alone, then stop"
    )
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--arms", nargs="*", default=ARMS, choices=ARMS)
    ap.add_argument(
        "--score",
        nargs="*",
        default=None,
        choices=list(EVALUATE),
        help="the heads scored in this call (default: every head); the others are scored by a later call, "
        "which reuses the trained bundles (training and scoring apart, e.g. while the test priors are computed)",
    )
    ap.add_argument("--report", action="store_true")
    ap.add_argument("--note", default="", help="text appended after the command line in the table")
    ap.add_argument("--out", type=Path, default=REPO / "experiments/results/shared_adapter_cpu_3heads.md")
    a = ap.parse_args()
    a.mrl_test = a.mrl_test or None
    a.ss_test = a.ss_test or None
    a.score = a.heads if a.score is None else a.score
    if a.batches < 1:
        raise SystemExit("--batches must be >= 1")
    a.data_dir = data_dir(a.data_dir)
    if a.prime or a.reference:
        (prime if a.prime else reference)(a)
        return
    if not a.report:
        for name in a.arms:
            run_arm(name, a)
    report(a)


if __name__ == "__main__":
    main()
