"""One adapter, three heads (issue 27): `task: joint` trains the structure, interaction and
expression heads on one LoRA adapter with interleaved batches; the bundle it writes serves
`resm fold`, `resm interact`, `resm predict --task mrl` and resm.load_bundle. A tiny backbone
and tiny data made here."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from tests.conftest import resm_main
from tests.tasks.test_rri_mrl import rand, rri_pairs, utr_rows, write_pairs, write_utrs
from tests.tasks.test_structure_task import hairpins

STEPS = 60  # 20 batches of each task


def shared_config(d: Path, ckpt: Path, steps: int = STEPS) -> dict:
    return {
        "task": "joint",
        "model": {"init": str(ckpt), "mode": "adapters", "adapter": {"r": 4, "alpha": 8}, "scheme": "kdny"},
        "tasks": {
            "structure": {
                "weight": 1.0,
                "head": {"kind": "pairs", "width": 16, "pair_width": 16, "blocks": 1, "dilations": [1]},
                "data": {
                    "train": hairpins(d / "TR.dbn", 40, 0),
                    "val": hairpins(d / "VL.dbn", 8, 1),
                    "max_length": 60,
                    "tokens_per_batch": 300,
                    "priors": [{"kind": "vienna"}],
                    "workers": 1,
                    "seed": 0,
                },
                "loss": {"pos_weight": 1.0},
            },
            "rri": {
                "weight": 1.0,
                "head": {"proj_dim": 16, "channels": 16, "blocks": 1, "dropout": 0.0, "max_length": 40},
                "data": {
                    "train": str(write_pairs(d / "pairs.tsv", rri_pairs(200, 0))),
                    "val_fraction": 0.2,
                    "batch_size": 16,
                },
            },
            "mrl": {
                "weight": 1.0,
                "head": {"hidden": 32, "conv_layers": 2, "kernel": 5, "anchor": 4, "dropout": 0.0, "max_length": 40},
                "data": {"train": str(write_utrs(d / "utrs.csv", utr_rows(600, 0))), "batch_size": 64},
            },
        },
        "optim": {"lr": 3e-3, "warmup_steps": 3, "weight_decay": 0.0, "schedule": "constant"},
        "train": {
            "out_dir": str(d / "run"),
            "max_steps": steps,
            "log_every": 3,
            "val_every": steps,
            "ckpt_every": 0,
            "keep_last": 1,
            "seed": 0,
            "progress": False,
        },
    }


def batch_losses(task, model) -> dict[str, float]:
    """Each sub-task's loss, in eval mode, on the first four training batches of its stream."""
    model.eval()
    out = {}
    with torch.no_grad():
        for name, t in task.tasks.items():
            it = iter(t.train_stream(0, 1).iter_epoch(0))
            out[name] = float(np.mean([float(t.loss(model, next(it), None, "cpu")[0]) for _ in range(4)]))
    return out


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    from resm.tasks import run
    from resm.tasks.joint import JointTask

    d = tmp_path_factory.mktemp("shared")
    ckpt = d / "tiny.pt"
    resm_main("init-checkpoint", "--arch", "tiny", "--scheme", "kdny", "--seed", "1", "--out", ckpt)
    cfg = shared_config(d, ckpt)
    task = JointTask(cfg)  # seeded: the run starts from exactly these weights
    before = batch_losses(task, task.model)
    res = run(cfg)
    return {"dir": d, "cfg": cfg, "task": task, "before": before, "result": res, "bundle": Path(res["model_file"])}


def test_one_adapter_trains_the_three_heads(shared):
    from resm.backbone.adapters import read_manifest
    from resm.tasks.base import load_bundle

    folder = shared["bundle"]
    man = read_manifest(folder)
    assert list(man["adapters"]) == ["shared"]
    assert {n: (e["task"], e["adapter"]) for n, e in man["heads"].items()} == {
        "structure": ("structure", "shared"),
        "rri": ("rri", "shared"),
        "mrl": ("mrl", "shared"),
    }
    extra = man["heads"]["structure"]["extra"]
    assert extra["head"] == "pairs" and extra["priors"][0]["kind"] == "vienna" and "decoding" in extra
    # interleaved batches: the log holds each task's loss, and each task had a third of the steps
    rows = [json.loads(x) for x in (shared["dir"] / "run" / "log.jsonl").read_text().splitlines()]
    train = [r for r in rows if r["split"] == "train"]
    assert len(train) == STEPS // 3 and all({"loss_structure", "loss_rri", "loss_mrl"} <= set(r) for r in train)
    # every head's loss fell, read back from the bundle (the adapter and heads it saved)
    model, _, _ = load_bundle(folder)
    after = batch_losses(shared["task"], model)
    print("losses before", shared["before"], "after", after)
    for name in ("structure", "rri", "mrl"):
        assert after[name] < 0.9 * shared["before"][name], (name, shared["before"], after)
    final = shared["result"]["final"]
    assert {"structure_val_f1_mean", "rri_val_auroc", "mrl_val_r2"} <= set(final), final


def test_the_bundle_serves_fold_interact_predict_and_the_api(shared, tmp_path):
    import resm
    from resm.tasks.base import encode_batch

    folder = shared["bundle"]
    rng = np.random.default_rng(3)
    seq = "GGGCGCAAGCCUUCGGGCGCCAUAGCGGAAACCGCU"
    fa = tmp_path / "x.fa"
    fa.write_text(f">x\n{seq}\n")
    # the commands in this process (resm.cli.main): a new interpreter's start-up here is mostly
    # peft's import; the real entry point serves bundles in tests/tasks/test_bundle_commands.py
    # (fold), test_long_heads.py (interact) and test_rri_mrl.py (predict --task mrl)
    resm_main("fold", fa, "--model", folder, "-o", tmp_path / "x.dbn", "--threads", "1")
    mir, utr = rand(rng, 21), rand(rng, 300)
    pairs = tmp_path / "p.tsv"
    pairs.write_text(f"a_name\ta_seq\tb_name\tb_seq\nm\t{mir}\tu\t{utr}\n")
    resm_main("interact", pairs, "--model", folder, "-o", tmp_path / "s.tsv")
    utrs = tmp_path / "u.fa"
    utrs.write_text(f">a\n{utr[:30]}\n>b\n{utr[:40]}\n")
    resm_main("predict", "--task", "mrl", utrs, "--model", folder, "-o", tmp_path / "m.tsv")

    b = resm.load_bundle(folder, device="cpu")
    assert b.heads == {"structure": "structure", "rri": "rri", "mrl": "mrl"}
    (folded,) = b.fold({"x": seq})
    dbn = (tmp_path / "x.dbn").read_text().splitlines()
    assert isinstance(folded, resm.Folded) and dbn[:2] == [">x", seq] and dbn[2].split()[0] == folded.dotbracket
    assert folded.dense().shape == (len(seq), len(seq))
    (scan,) = b.interact([(mir, utr)])
    cli_score = float((tmp_path / "s.tsv").read_text().splitlines()[1].split("\t")[3])
    assert scan.score == pytest.approx(cli_score, abs=1e-5)
    cli_mrl = [float(r.split("\t")[1]) for r in (tmp_path / "m.tsv").read_text().splitlines()[1:]]
    np.testing.assert_allclose(b.predict_mrl({"a": utr[:30], "b": utr[:40]}), cli_mrl, rtol=1e-5)

    # one encoder pass serves every head that reads the same input: structure and mrl together
    from resm.heads.pairs import candidates, collate_candidates
    from resm.structure.priors import PriorConfig, pair_prior

    cfg = b.model.heads["structure"].cfg
    cand = candidates(seq, [pair_prior(seq, PriorConfig(kind="vienna"))], cfg)
    batch = {**encode_batch([seq], b.scheme), **collate_candidates([cand])}
    with torch.no_grad():
        calls = b.model.encoder_calls
        both = b.model(batch, ["structure", "mrl"])
        assert b.model.encoder_calls == calls + 1
        alone = {n: b.model(batch, [n])[n] for n in ("structure", "mrl")}
    for n in ("structure", "mrl"):
        torch.testing.assert_close(both[n], alone[n])


def _one_line_error(capsys, args, *parts):
    """``resm ARGS`` (in this process) exits 1 with one line holding every part."""
    from resm.cli import main as cli_main

    capsys.readouterr()
    assert cli_main([str(a) for a in args]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    for x in parts:
        assert x in lines[0], lines[0]


def test_a_bundle_without_the_head_is_one_line_naming_it(shared, tmp_path, capsys):
    import resm

    fa = tmp_path / "x.fa"
    fa.write_text(">x\nGGGGAAACCCCGCGCAAAGCGC\n")
    pairs = write_pairs(tmp_path / "p.tsv", rri_pairs(2, 1), labels=False)
    commands = {"structure": ["fold", fa], "mrl": ["predict", "--task", "mrl", fa], "rri": ["interact", pairs]}
    for head, args in commands.items():
        folder = shared["bundle"].parent / f"no_{head}"  # beside it: the backbone's relative path holds
        shutil.rmtree(folder, ignore_errors=True)
        shutil.copytree(shared["bundle"], folder)
        man = json.loads((folder / "manifest.json").read_text())
        del man["heads"][head]
        (folder / "manifest.json").write_text(json.dumps(man))
        out = tmp_path / f"never_{head}.txt"
        _one_line_error(capsys, [*args, "--model", folder, "-o", out], str(folder), f"no {head} head")
        assert not out.exists()
        b = resm.load_bundle(folder, device="cpu")
        calls = {
            "structure": lambda b=b: b.fold_one("GGGGAAACCCC"),
            "mrl": lambda b=b: b.predict_mrl(["ACGUACGU"]),
            "rri": lambda b=b: b.interact([("ACGUACGU", "ACGUACGU")]),
        }
        with pytest.raises(resm.bundle.BundleError, match=f"no {head} head"):
            calls[head]()


def test_joint_config_errors_are_one_line(shared, tmp_path, capsys):
    cfg = shared_config(tmp_path, Path(shared["cfg"]["model"]["init"]), steps=2)
    cfg["train"]["out_dir"] = str(tmp_path / "never")
    for change, words in (
        (lambda c: c["tasks"].update(fold={}), ["unknown task(s) ['fold']", "known: ['mrl', 'rri', 'structure']"]),
        (lambda c: c["tasks"]["rri"].update(loss={"pos_weight": 2.0}), ["tasks.rri.loss", "no loss section"]),
        (lambda c: c["tasks"]["structure"]["head"].update(use_attention=True), ["use_attention", "embeddings"]),
    ):
        c = json.loads(json.dumps(cfg))
        change(c)
        path = tmp_path / "bad.yaml"
        path.write_text(yaml.safe_dump(c))
        _one_line_error(capsys, ["finetune", "--config", path], *words)
        assert not (tmp_path / "never").exists()


def test_the_shipped_shared_config_reads():
    """configs/finetune/shared.yaml names the three sub-tasks on one adapter (a run of it is
    measured in the README, on the real data)."""
    from resm.config import find_config, load_config
    from resm.tasks.joint import JointEntry, sub_tasks

    cfg = load_config(find_config("shared", "finetune"), [])
    assert cfg["task"] == "joint" and cfg["model"]["mode"] == "adapters"
    assert set(cfg["tasks"]) == {"structure", "rri", "mrl"} == set(sub_tasks())
    from resm.config import from_dict

    for name, sub in cfg["tasks"].items():
        from_dict(JointEntry, sub, f"tasks.{name}")


def test_a_bundle_pair_head_scores_as_a_structure_model_with_its_weights(shared):
    """The bundle's head, run through the shared encoder (HeadOfBundle), gives the candidate
    probabilities a StructureModel built from the same backbone, adapter and head gives."""
    import resm
    from resm.structure.model import HeadOfBundle, StructureModel, predict_candidates
    from resm.structure.priors import PriorConfig, pair_prior

    b = resm.load_bundle(shared["bundle"], device="cpu")
    seqs = ["GGGCGCAAGCCUUCGGGCGCCAUAGCGGAAACCGCU", "GCGCAAAGCGCAUAUGGGAAACCCA"]
    priors = [[pair_prior(s, PriorConfig(kind="vienna"))] for s in seqs]
    got = predict_candidates(HeadOfBundle(b.model, "structure"), b.scheme, seqs, priors)
    alone = StructureModel(b.model.encoder.backbone, b.model.heads["structure"], "frozen").eval()
    want = predict_candidates(alone, b.scheme, seqs, priors)
    for (c1, p1), (c2, p2) in zip(got, want, strict=True):
        np.testing.assert_array_equal(c1.i, c2.i)
        np.testing.assert_allclose(p1, p2, atol=1e-6)
    assert len(got[0][1]) > 0
