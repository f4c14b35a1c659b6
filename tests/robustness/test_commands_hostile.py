"""Hostile inputs the other robustness tables missed, one case per defect found and fixed
(every command but ``fold`` and ``evaluate structure``, which test_structure_hostile.py
covers). Each case runs ``resm`` in process against the shared workspace
(:mod:`tests.robustness.conftest`) and checks the rule of every bad input
(:func:`tests.robustness.cases.check_one_line`): the exit code, one line on stderr
naming the file, line, record or key, no traceback, and nothing written anywhere in the
workspace or the case's folder."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
import yaml

from resm.backbone.load import safe_load
from tests.robustness.cases import Case, check_one_line, copy, then, write

PAIRS = "a_name\ta_seq\tb_name\tb_seq\tlabel\nm1\tGUUAAUUACUCCUCCGGAAU\tt1\tACCCUUGUCCUACACUACCUAGCAU\t1\n"
UTR = "ACGUACGUACGUACGUAAAAACCCGGGUUU"


def _sidecar(p: dict) -> None:
    """A copy of the tiny checkpoint as m.pt with its contact regression beside it, as
    fair-esm ships them (m-contact-regression.pt)."""
    t = Path(p["t"])
    shutil.copy2(p["tiny"], t / "m.pt")
    d = safe_load(Path(p["tiny"]))
    torch.save({"model": {k: v for k, v in d["model"].items() if "regression" in k}}, t / "m-contact-regression.pt")


def _run_config(src: str, name: str = "c.yaml", place: dict | None = None, **keys):
    """A copy of the workspace's ``src`` config as ``{t}/name`` whose run folder is ``{t}/run``,
    with ``keys`` set (``"model.init": "{t}/run/model.pt"``; None removes the key) after
    copying the workspace files of ``place`` (``{key: "run/model.pt"}``) into the case's folder."""

    def setup(p: dict) -> None:
        t = Path(p["t"])
        for key, rel in (place or {}).items():
            (t / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(p[key], t / rel)
        cfg = yaml.safe_load(Path(p[src]).read_text())
        cfg["train"]["out_dir"] = str(t / "run")
        for dotted, value in keys.items():
            *parents, last = dotted.split(".")
            d = cfg
            for k in parents:
                d = d.setdefault(k, {})
            if value is None:
                d.pop(last, None)
            else:
                fill = [v.replace("{t}", str(t)) for v in (value if isinstance(value, list) else [value])]
                d[last] = fill if isinstance(value, list) else fill[0]
        (t / name).parent.mkdir(parents=True, exist_ok=True)
        (t / name).write_text(yaml.safe_dump(cfg))

    return setup


def _nan_checkpoint(p: dict) -> None:
    """The tiny fair-esm checkpoint with one weight all NaN, as m.pt."""
    d = safe_load(Path(p["tiny"]))
    key = next(k for k in d["model"] if k.endswith("q_proj.weight"))
    d["model"][key] = torch.full_like(d["model"][key], float("nan"))
    torch.save(d, Path(p["t"]) / "m.pt")


def _nan_hf(p: dict) -> None:
    """A copy of the tiny Hugging Face folder with one weight +inf."""
    from safetensors.torch import load_file, save_file

    shutil.copytree(p["hf"], Path(p["t"]) / "hf")
    f = Path(p["t"]) / "hf" / "model.safetensors"
    sd = load_file(f)
    key = next(k for k in sd if k.endswith("query.weight"))
    sd[key] = torch.full_like(sd[key], float("inf"))
    save_file(sd, f)


def _nan_head(p: dict) -> None:
    """A copy of the mrl bundle whose head holds a NaN, its checksum updated to match (a
    training that diverged writes such a head)."""
    import hashlib
    import json

    from safetensors.torch import load_file, save_file

    folder = Path(p["t"]) / "mrl_model"
    shutil.copytree(p["mrl_model"], folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    entry = next(iter(manifest["heads"].values()))
    sd = load_file(folder / entry["file"])
    key = next(k for k, v in sd.items() if v.is_floating_point())
    sd[key] = sd[key].clone().reshape(-1)
    sd[key][0] = float("nan")
    sd[key] = sd[key].reshape(load_file(folder / entry["file"])[key].shape)
    save_file(sd, folder / entry["file"])
    entry["sha256"] = hashlib.sha256((folder / entry["file"]).read_bytes()).hexdigest()
    (folder / "manifest.json").write_text(json.dumps(manifest))


def _nan_probe(p: dict) -> None:
    """The workspace's probe with a NaN weight, as {t}/p.pt."""
    d = safe_load(Path(p["probe"]))
    d["weight"] = d["weight"] * float("nan")
    torch.save(d, Path(p["t"]) / "p.pt")


def _big_weight(p: dict) -> None:
    """A copy of the pretraining run whose checkpoint holds a weight of 1e6, beyond fp16."""
    shutil.copytree(p["run"], Path(p["t"]) / "run")
    f = Path(p["t"]) / "run" / "checkpoints" / "step_00000002" / "engine.pt"
    d = torch.load(f, weights_only=True)
    key = next(k for k in d["model"] if k.endswith("q_proj.weight"))
    d["model"][key][0, 0] = 1e6
    torch.save(d, f)


def _mrl_scale(**extra):
    """A copy of the mrl bundle whose head entry says ``extra`` (its mean/std)."""

    def setup(p: dict) -> None:
        import json

        folder = Path(p["t"]) / "mrl_model"
        shutil.copytree(p["mrl_model"], folder)
        manifest = json.loads((folder / "manifest.json").read_text())
        next(iter(manifest["heads"].values()))["extra"].update(extra)
        (folder / "manifest.json").write_text(json.dumps(manifest))

    return setup


def _compare_config(rel: str):
    """The workspace's compare config, writing to {t}/cmp, saved as {t}/rel (re-running a
    comparison from the config.json it wrote)."""

    def setup(p: dict) -> None:
        cfg = yaml.safe_load(Path(p["compare_cfg"]).read_text())
        cfg["out_dir"] = str(Path(p["t"]) / "cmp")
        (Path(p["t"]) / rel).parent.mkdir(parents=True, exist_ok=True)
        (Path(p["t"]) / rel).write_text(yaml.safe_dump(cfg))

    return setup


CASES = [
    # an output over a file the command reads without an option naming it
    Case(
        "interact/out-is-the-bundles-backbone",
        ["interact", "{pairs}", "--model", "{rri_model}", "-o", "{tiny}"],
        1,
        ["--out {tiny}", "the backbone of --model"],
    ),
    Case(
        "predict/out-is-the-bundles-backbone",
        ["predict", "--task", "mrl", "--model", "{mrl_model}", "-o", "{tiny}", "{utrs}"],
        1,
        ["--out {tiny}", "the backbone of --model"],
    ),
    Case(
        "predict/sites-is-the-bundles-backbone",
        ["predict", "--task", "rri", "--model", "{rri_model}", "--sites", "{tiny}", "{pairs}"],
        1,
        ["--sites {tiny}", "the backbone of --model"],
    ),
    Case(
        "interact/out-is-the-adapter",
        ["interact", "{pairs}", "--model", "{rri_model}", "--adapter", "{t}/peft", "-o", "{t}/peft/config.json"],
        1,
        ["--out {t}/peft/config.json", "--adapter"],
        setup=then(copy("hf", "peft")),
    ),
    Case(
        "probe/out-is-the-models-contact-regression",
        ["probe", "{t}/m.pt", "{dbn}", "--out", "{t}/m-contact-regression.pt"],
        1,
        ["--out {t}/m-contact-regression.pt", "the contact regression of the model"],
        setup=_sidecar,
    ),
    Case(
        "interact/zero-shot-out-is-the-backbones-contact-regression",
        ["interact", "{pairs}", "--zero-shot", "--backbone", "{t}/m.pt", "-o", "{t}/m-contact-regression.pt"],
        1,
        ["the contact regression of --backbone"],
        setup=_sidecar,
    ),
    # a training run folder holding the run's own inputs: the run would write over them
    Case(
        "pretrain/init-in-the-run-folder",
        ["pretrain", "--config", "{t}/c.yaml"],
        1,
        ["model.init: {t}/run/model.pt", "train.out_dir"],
        setup=_run_config(
            "pretrain_cfg", place={"tiny": "run/model.pt"}, **{"model.arch": None, "model.init": "{t}/run/model.pt"}
        ),
    ),
    Case(
        "pretrain/corpus-in-the-run-folder",
        ["pretrain", "--config", "{t}/c.yaml"],
        1,
        ["data.train[0]: {t}/run/log.jsonl", "train.out_dir"],
        setup=_run_config("pretrain_cfg", place={"fa": "run/log.jsonl"}, **{"data.train": ["{t}/run/log.jsonl"]}),
    ),
    Case(
        "pretrain/config-in-the-run-folder",
        ["pretrain", "--config", "{t}/run/config.json"],
        1,
        ["--config: {t}/run/config.json", "train.out_dir"],
        setup=_run_config("pretrain_cfg", name="run/config.json"),
    ),
    Case(
        "finetune/data-in-the-run-folder",
        ["finetune", "--config", "{t}/c.yaml"],
        1,
        ["data.train: {t}/run/model/manifest.json", "train.out_dir"],
        setup=_run_config(
            "rri_cfg", place={"pairs": "run/model/manifest.json"}, **{"data.train": "{t}/run/model/manifest.json"}
        ),
    ),
    Case(
        "finetune/backbone-in-the-run-folder",
        ["finetune", "--config", "{t}/c.yaml"],
        1,
        ["model.init: {t}/run/model.pt", "train.out_dir"],
        setup=_run_config("rri_cfg", place={"tiny": "run/model.pt"}, **{"model.init": "{t}/run/model.pt"}),
    ),
    # tables: names that the FASTA reader refuses, a header without a sequence column, labels
    # on some lines only (the metrics would leave the others out in silence)
    Case(
        "interact/name-with-an-escape-sequence",
        ["interact", "{t}/p.tsv", "--model", "{rri_model}", "-o", "{t}/o.tsv"],
        1,
        ["{t}/p.tsv line 3", "a_name", "U+001B"],
        setup=write("p.tsv", PAIRS + "m\x1b[2J\tGUUAAUUACUCC\tt2\tACCCUUGUCCUACAC\t0\n"),
    ),
    Case(
        "interact/name-with-a-nul",
        ["interact", "{t}/p.tsv", "--model", "{rri_model}", "-o", "{t}/o.tsv"],
        1,
        ["{t}/p.tsv line 3", "b_name", "U+0000"],
        setup=write("p.tsv", PAIRS + "m2\tGUUAAUUACUCC\tt\x002\tACCCUUGUCCUACAC\t0\n"),
    ),
    Case(
        "interact/name-not-utf8",
        ["interact", "{t}/p.tsv", "--model", "{rri_model}", "-o", "{t}/o.tsv"],
        1,
        ["{t}/p.tsv line 3", "a_name", "not UTF-8"],
        setup=write("p.tsv", PAIRS.encode() + b"m\xff2\tGUUAAUUACUCC\tt2\tACCCUUGUCCUACAC\t0\n"),
    ),
    Case(
        "interact/quoted-name-with-a-tab",
        ["interact", "{t}/p.csv", "--model", "{rri_model}", "-o", "{t}/o.tsv"],
        1,
        ["{t}/p.csv line 2", "a_name", "U+0009"],
        setup=write("p.csv", 'a_name,a_seq,b_name,b_seq\n"m\t1",GUUAAUUACUCC,t1,ACCCUUGUCCUACAC\n'),
    ),
    Case(
        "predict/mrl-quoted-id-with-a-line-break",
        ["predict", "--task", "mrl", "--model", "{mrl_model}", "-o", "{t}/o.tsv", "{t}/u.csv"],
        1,
        ["{t}/u.csv line 2", "id", "U+000A"],
        setup=write("u.csv", f'id,utr\n"a\nb",{UTR}\n'),
    ),
    Case(
        "interact/header-without-b_seq",
        ["interact", "{t}/p.tsv", "--model", "{rri_model}", "-o", "{t}/o.tsv"],
        1,
        ["{t}/p.tsv line 1", "no b_seq column"],
        setup=write("p.tsv", "a_name\ta_seq\tb_name\tlabel\nm1\tGUUAAUUACUCC\tt1\t1\n"),
    ),
    Case(
        "interact/an-empty-label-among-labels",
        ["interact", "{t}/p.tsv", "--model", "{rri_model}", "-o", "{t}/o.tsv"],
        1,
        ["{t}/p.tsv line 3", "label is empty"],
        setup=write("p.tsv", PAIRS + "m2\tGUUAAUUACUCC\tt2\tACCCUUGUCCUACAC\t\n"),
    ),
    Case(
        "predict/rri-a-label-among-empty-ones",
        ["predict", "--task", "rri", "--model", "{rri_model}", "-o", "{t}/o.tsv", "{t}/p.tsv"],
        1,
        ["{t}/p.tsv line 3", "label '1'"],
        setup=write("p.tsv", PAIRS.replace("\t1\n", "\t\n") + "m2\tGUUAAUUACUCC\tt2\tACCCUUGUCCUACAC\t1\n"),
    ),
    Case(
        "predict/mrl-id-with-an-escape-sequence",
        ["predict", "--task", "mrl", "--model", "{mrl_model}", "-o", "{t}/o.tsv", "{t}/u.csv"],
        1,
        ["{t}/u.csv line 3", "id", "U+001B"],
        setup=write("u.csv", f"id,utr\na,{UTR}\nb\x1b[31m,{UTR}\n"),
    ),
    Case(
        "predict/mrl-id-not-utf8-with-targets",
        ["predict", "--task", "mrl", "--model", "{mrl_model}", "-o", "{t}/o.tsv", "{t}/u.csv"],
        1,
        ["{t}/u.csv line 2", "id", "not UTF-8"],
        setup=write("u.csv", b"id,utr,rl\nb\xfe," + UTR.encode() + b",2.5\n"),
    ),
    Case(
        "predict/mrl-header-only-names-the-file-in-full",
        ["predict", "--task", "mrl", "--model", "{mrl_model}", "-o", "{t}/o.tsv", "{t}/u.csv"],
        1,
        ["{t}/u.csv line 1", "header only"],
        setup=write("u.csv", "id,utr\n"),
    ),
    Case(
        "predict/mrl-too-long-names-the-file-in-full",
        ["predict", "--task", "mrl", "--model", "{mrl_model}", "-o", "{t}/o.tsv", "{t}/u.csv"],
        1,
        ["{t}/u.csv", "record 'a' has 4100 nt"],
        setup=write("u.csv", f"id,utr\na,{'A' * 4100}\n"),
    ),
    # weights that are not finite: every output would be NaN, with exit 0
    Case(
        "embed/checkpoint-with-nan-weights",
        ["embed", "{t}/m.pt", "{fa}", "{t}/o.npz"],
        1,
        ["{t}/m.pt", "q_proj.weight", "NaN or infinite"],
        setup=_nan_checkpoint,
    ),
    Case(
        "embed/hf-folder-with-an-infinite-weight",
        ["embed", "{t}/hf", "{fa}", "{t}/o.npz"],
        1,
        ["{t}/hf", "q_proj.weight", "NaN or infinite"],
        setup=_nan_hf,
    ),
    Case(
        "predict/mrl-head-with-a-nan",
        ["predict", "--task", "mrl", "--model", "{t}/mrl_model", "--backbone", "{tiny}", "-o", "{t}/o.tsv", "{utrs}"],
        1,
        ["{t}/mrl_model/head-mrl.safetensors", "NaN or infinite"],
        setup=_nan_head,
    ),
    Case(
        "pretrain/corpus-without-a-usable-record",
        ["pretrain", "--config", "{t}/c.yaml"],
        1,
        ["data.train ({t}/bad.fa)", "no training records"],
        setup=then(
            write("bad.fa", ">a\nJJJJJJJJJJJJ\n>b\nAC\n"),
            _run_config("pretrain_cfg", **{"data.train": ["{t}/bad.fa"]}),
        ),
    ),
    # config values that reached torch or numpy, whose errors named no key
    *[
        Case(
            f"finetune/{task}-{key.replace('.', '-')}-{value}",
            ["finetune", "--config", f"{{{task}_cfg}}", "train.out_dir={t}/run", f"{key}={value}"],
            1,
            [said],
        )
        for task, key, value, said in (
            ("rri", "head.dropout", "2", "head: dropout must be in [0, 1), got 2.0"),
            ("mrl", "head.dropout", ".nan", "head.dropout: expected a finite number, got nan"),
            ("structure", "head.dropout", "1", "head: dropout must be in [0, 1), got 1.0"),
            ("rri", "train.seed", "-1", "train.seed must be >= 0"),
            ("rri", "data.seed", "-1", "data.seed must be >= 0"),
            ("mrl", "data.seed", "-1", "data.seed must be >= 0"),
            ("structure", "data.seed", "-1", "data.seed must be >= 0"),
        )
    ],
    Case(
        "interact/zero-shot-probe-with-a-nan",
        ["interact", "{pairs}", "--zero-shot", "--backbone", "{tiny}", "--probe", "{t}/p.pt", "-o", "{t}/o.tsv"],
        1,
        ["{t}/p.pt", "weight holds NaN or infinite"],
        setup=_nan_probe,
    ),
    Case(
        "interact/stride-beyond-the-window",
        ["interact", "{pairs}", "--model", "{rri_model}", "--window", "10", "--stride", "50", "-o", "{t}/o.tsv"],
        1,
        ["(--stride), got 50"],
    ),
    Case(
        "interact/window-beyond-the-heads-length",
        ["interact", "{pairs}", "--model", "{rri_model}", "--window", "100000", "-o", "{t}/o.tsv"],
        1,
        ["40: the head's max_length), got 100000"],
    ),
    # a config that sets one key twice: PyYAML kept the last in silence
    Case(
        "pretrain/a-key-given-twice",
        ["pretrain", "--config", "{t}/c.yaml"],
        1,
        ["{t}/c.yaml", "line 3", "'max_steps' given twice (first on line 2)"],
        setup=write("c.yaml", "train:\n  max_steps: 2\n  max_steps: 3000\n"),
    ),
    Case(
        "finetune/a-section-given-twice",
        ["finetune", "--config", "{t}/c.yaml"],
        1,
        ["{t}/c.yaml", "'optim' given twice"],
        setup=write("c.yaml", "task: rri\noptim: {lr: 0.1}\noptim: {lr: 0.2}\n"),
    ),
    Case(
        "compare/a-key-given-twice",
        ["compare", "--config", "{t}/c.yaml"],
        1,
        ["{t}/c.yaml", "'out_dir' given twice"],
        setup=write("c.yaml", "out_dir: runs/a\nout_dir: runs/b\n"),
    ),
    Case(
        "export/fp16-of-a-weight-beyond-its-range",
        ["export", "{t}/run", "--out", "{t}/esm2_x.pt", "--dtype", "fp16"],
        1,
        ["{t}/run", "q_proj.weight", "does not fit fp16"],
        setup=_big_weight,
    ),
    Case(
        "predict/mrl-std-nan-in-the-manifest",
        ["predict", "--task", "mrl", "--model", "{t}/mrl_model", "--backbone", "{tiny}", "-o", "{t}/o.tsv", "{utrs}"],
        1,
        ["{t}/mrl_model/manifest.json", "extra.std nan"],
        setup=_mrl_scale(std=float("nan")),
    ),
    Case(
        "predict/mrl-mean-not-a-number-in-the-manifest",
        ["predict", "--task", "mrl", "--model", "{t}/mrl_model", "--backbone", "{tiny}", "-o", "{t}/o.tsv", "{utrs}"],
        1,
        ["{t}/mrl_model/manifest.json", "extra.mean and extra.std must be numbers"],
        setup=_mrl_scale(mean="abc"),
    ),
    Case(
        "predict/mrl-std-0-in-the-manifest",
        ["predict", "--task", "mrl", "--model", "{t}/mrl_model", "--backbone", "{tiny}", "-o", "{t}/o.tsv", "{utrs}"],
        1,
        ["{t}/mrl_model/manifest.json", "extra.std 0.0"],
        setup=_mrl_scale(std=0),
    ),
    # options: a linker that is not RNA, an empty scheme name, a probe with no pairs to learn
    Case(
        "interact/zero-shot-linker-not-rna",
        ["interact", "{pairs}", "--zero-shot", "--backbone", "{tiny}", "--linker", "AAJ", "-o", "{t}/o.tsv"],
        1,
        ["--linker", "'J'"],
    ),
    Case("schemes/show-empty", ["schemes", "--show", ""], 2, ["--show", "got ''"]),
    Case(
        "init/scheme-empty", ["init-checkpoint", "--arch", "tiny", "--scheme", "", "--out", "{t}/x.pt"], 2, ["--scheme"]
    ),
    Case("embed/scheme-blank", ["embed", "{tiny}", "{fa}", "{t}/o.npz", "--scheme", " "], 2, ["--scheme"]),
    Case(
        "probe/structures-without-a-pair",
        ["probe", "{tiny}", "{t}/e.dbn", "--out", "{t}/p.pt"],
        1,
        ["{t}/e.dbn", "holds a base pair"],
        setup=write("e.dbn", ">a\nACGUACGUAC\n..........\n>b\nACGUACGUAC\n..........\n"),
    ),
    # options of the other task, which were ignored in silence; a variant file with no variant
    Case(
        "predict/window-with-mrl",
        ["predict", "--task", "mrl", "--model", "{mrl_model}", "--window", "5", "-o", "{t}/o.tsv", "{utrs}"],
        2,
        ["--window and --stride are for --task rri"],
    ),
    Case(
        "predict/variants-with-rri",
        ["predict", "--task", "rri", "--model", "{rri_model}", "--variants", "-o", "{t}/o.tsv", "{pairs}"],
        2,
        ["--variants is for --task mrl"],
    ),
    Case(
        "predict/variants-file-without-a-variant",
        ["predict", "--task", "mrl", "--model", "{mrl_model}", "--variants", "-o", "{t}/o.tsv", "{t}/v.csv"],
        1,
        ["{t}/v.csv", "no variant row"],
        setup=write("v.csv", f"utr,hrl,info4,mother\n{UTR},1.0,normal,\n{UTR[:-1]}A,2.0,normal,\n"),
    ),
    Case(
        "compare/config-is-its-own-output",
        ["compare", "--config", "{t}/cmp/config.json"],
        1,
        ["--config: {t}/cmp/config.json", "out_dir"],
        setup=_compare_config("cmp/config.json"),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_input_is_one_line_and_writes_nothing(case: Case, ws, tmp_path, capfd, monkeypatch):
    check_one_line(case, ws, tmp_path, capfd, monkeypatch)


def test_metrics_that_are_undefined_are_nan_without_a_warning(ws, tmp_path):
    """Two equal UTRs get one prediction, so the correlation with their MRL is undefined: NaN in
    the printed metrics, and nothing on stderr but the progress bar (before: four lines of scipy's
    ConstantInputWarning around a run that succeeded). A real process: pytest would catch the
    warnings of an in-process run."""
    import os
    import subprocess
    import sys

    (tmp_path / "u.csv").write_text(f"id,utr,rl\na,{UTR},1.0\nb,{UTR},2.0\n")
    argv = ["predict", "--task", "mrl", "--model", ws["mrl_model"], "-o", tmp_path / "o.tsv", tmp_path / "u.csv"]
    r = subprocess.run(
        [sys.executable, "-m", "resm", *map(str, argv)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    said = r.stderr.replace("\r", "\n").split("\n")  # the progress bar alone (the scores go to a file)
    assert r.returncode == 0 and all(s.startswith("predict mrl: ") for s in said if s.strip()), r.stderr
    assert "spearman nan" in r.stdout and "pearson nan" in r.stdout, r.stdout
