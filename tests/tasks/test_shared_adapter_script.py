"""experiments/transfer_cpu/shared_adapter.py, the parts that train nothing: ``--score HEADS``
(an arm scores only the heads named, a later call the rest, on the bundles already trained) and
the seed table of ``--report --seed-runs`` (each arm's seeds and their paired differences, each
other seed's contrasts, the fallback to the heads the other seeds scored, one-line errors),
on per-arm result files made here by hand."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.conftest import experiment_script

ROOT = Path(__file__).resolve().parents[2]
HEADS = ["structure", "rri", "mrl"]


@pytest.fixture
def mod(monkeypatch):
    folder = ROOT / "experiments" / "transfer_cpu"
    monkeypatch.syspath_prepend(str(folder))  # its repo_paths
    return experiment_script("transfer_cpu/shared_adapter.py", "shared_adapter_script")


def items(ts0, bprna, scores, preds) -> dict:
    """One arm's per-item test results: per-sequence F1 on the two structure sets, interaction
    scores of four pairs labelled 1 1 0 0, expression predictions of four UTRs measured 1..4 (the
    four repeated ten times, which leaves AUROC and R² as they are and gives the bootstrap
    resamples both labels and spread)."""
    return {
        "structure": {"ts0_f1": ts0, "ts0_f1_shift": ts0, "bprna-new_f1": bprna, "bprna-new_f1_shift": bprna},
        "rri": {"score": scores * 10, "label": [1, 1, 0, 0] * 10},
        "mrl": {"y": [1.0, 2.0, 3.0, 4.0] * 10, "pred": preds * 10},
    }


def write_arm(runs: Path, name: str, seed: int, it: dict, heads=HEADS) -> None:
    arm = runs / name
    arm.mkdir(parents=True)
    (arm / "result.json").write_text(json.dumps({"seed": seed, **{h: {} for h in heads}}))
    for h in heads:
        (arm / f"items_{h}.json").write_text(json.dumps(it[h]))


# seed 0: AUROC 1 (every positive above every negative), R² 1 (exact predictions)
SEED0 = {
    "protein_shared": items([0.5, 0.7, 0.9], [0.2, 0.4], [0.9, 0.8, 0.1, 0.2], [1.0, 2.0, 3.0, 4.0]),
    "protein_own": items([0.4, 0.6, 0.8], [0.1, 0.3], [0.9, 0.8, 0.1, 0.2], [1.0, 2.0, 3.0, 4.0]),
}
# seed 1: AUROC 0.5 (2 of 4 positive-negative pairs ordered), R² 1 - 1/5 = 0.8
SEED1 = {
    "protein_shared": items([0.4, 0.8, 0.6], [0.2, 0.2], [0.9, 0.1, 0.8, 0.2], [1.0, 2.0, 3.0, 5.0]),
    "protein_own": items([0.3, 0.7, 0.5], [0.1, 0.2], [0.9, 0.1, 0.8, 0.2], [1.0, 2.0, 3.0, 5.0]),
}


def two_seeds(mod, tmp_path, other_heads=HEADS):
    for name, it in SEED0.items():
        write_arm(tmp_path / "s0", name, 0, it)
    for name, it in SEED1.items():
        write_arm(tmp_path / "s1", name, 1, it, other_heads)
    res, its = mod.load_arms(tmp_path / "s0", HEADS)
    return res, its, SimpleNamespace(heads=list(HEADS), seed_runs=[str(tmp_path / "s1")])


def test_seed_table_rows_and_paired_differences_are_the_hand_computed_ones(mod, tmp_path):
    res, its, a = two_seeds(mod, tmp_path)
    lines = mod.seed_table(res, its, a)
    rows = {ln.split(" | ")[0] + " | " + ln.split(" | ")[1]: ln for ln in lines if ln.startswith("| protein")}
    # values: ts0 F1 mean, bpRNA-new F1 mean, AUROC, R²
    assert rows["| protein_shared | 0"] == "| protein_shared | 0 | 0.700 | 0.300 | 1.000 | 1.000 |"
    assert rows["| protein_shared | 1"] == "| protein_shared | 1 | 0.600 | 0.200 | 0.500 | 0.800 |"
    diff = rows["| protein_shared | 0 − 1"].split(" | ")[2:]
    # structure: the mean of the per-sequence differences (0.1, -0.1, 0.3) and its standard error
    # 0.2 / sqrt(3); bpRNA-new (0, 0.2): 0.1 and 0.1414 / sqrt(2)
    assert diff[0] == "+0.100 (0.115)" and diff[1] == "+0.100 (0.100)"
    assert diff[2].startswith("+0.500 (") and diff[3].startswith("+0.200 (")  # AUROC, R² (bootstrap SE)
    assert all(0 < float(d.split("(")[1].rstrip(") |")) < 0.2 for d in diff[2:])
    # the other seed's own contrast between its arms: shared - own, per sequence 0.1 0.1 0.1
    at = lines.index("Paired differences under seed 1 (as above, between that seed's arms):")
    contrast = next(ln for ln in lines[at:] if ln.startswith("| protein: shared − own"))
    assert contrast.split(" | ")[1:3] == ["+0.100 (0.000)", "+0.050 (0.050)"]
    assert contrast.split(" | ")[3].startswith("+0.000 (") and contrast.split(" | ")[4].startswith("+0.000 (")


def test_seed_table_falls_back_to_the_heads_the_other_seeds_scored(mod, tmp_path):
    res, its, a = two_seeds(mod, tmp_path, other_heads=["rri", "mrl"])  # no structure under seed 1
    lines = mod.seed_table(res, its, a)
    assert "structure not scored for the other seeds" in lines[0]
    assert "| arm | seed | AUROC | R² |" in lines
    assert "| protein_shared | 1 | 0.500 | 0.800 |" in lines
    assert a.heads == HEADS  # the report's own heads are left as they were


def test_seed_table_refuses_a_seed_folder_without_arms_in_one_line(mod, tmp_path):
    res, its, a = two_seeds(mod, tmp_path)
    (tmp_path / "s2").mkdir()
    a.seed_runs.append(str(tmp_path / "s2"))
    with pytest.raises(SystemExit) as e:
        mod.seed_table(res, its, a)
    msg = str(e.value.code)
    assert msg == (
        f"--seed-runs {tmp_path / 's2'}: no arm there scored structure, rri, mrl "
        "(each arm's result.json and items_<head>.json)"
    )


def test_an_arm_without_its_per_item_results_is_a_one_line_error(mod, tmp_path):
    for name, it in SEED0.items():
        write_arm(tmp_path / "s0", name, 0, it)
    (tmp_path / "s0" / "protein_own" / "items_rri.json").unlink()
    with pytest.raises(SystemExit) as e:
        mod.load_arms(tmp_path / "s0", HEADS)
    msg = str(e.value.code)
    assert msg.startswith(f"{tmp_path / 's0' / 'protein_own' / 'items_rri.json'}: no such file; arm protein_own")
    assert "\n" not in msg


def test_score_scores_only_the_heads_named_and_a_later_call_the_rest(mod, tmp_path, monkeypatch):
    """An arm trains once; --score rri scores the interaction head alone, a later call with the
    default (every head) scores structure and expression on the same bundles, rri not again."""
    trained, scored = [], []
    monkeypatch.setattr(mod, "run_resm", lambda args, log: trained.append(list(map(str, args))) or 2.5)
    monkeypatch.setattr(mod, "arm_config", lambda init, setup, subs, steps, rdir, a: {"subs": subs, "steps": steps})

    def fake(head):
        def evaluate(bundle, data, runs, a):
            scored.append((head, Path(bundle).relative_to(tmp_path).as_posix()))
            return {"value": len(scored)}, {"score": [0.5], "label": [1]}

        return evaluate

    for h in HEADS:
        monkeypatch.setitem(mod.EVALUATE, h, fake(h))
    a = SimpleNamespace(runs=str(tmp_path), heads=list(HEADS), score=["rri"], batches=3, seed=0, data_dir=".")
    mod.run_arm("protein_own", a)  # own: one run per head, each trained
    assert [t[2] for t in trained] == [str(tmp_path / "protein_own" / f"{h}.yaml") for h in HEADS]
    assert scored == [("rri", "protein_own/rri/model")]
    res = json.loads((tmp_path / "protein_own" / "result.json").read_text())
    assert res["rri"] == {"value": 1} and "structure" not in res and "mrl" not in res
    assert res["train_s_structure"] == res["train_s_rri"] == res["train_s_mrl"] == 2.5
    a.score = list(HEADS)
    mod.run_arm("protein_own", a)
    assert len(trained) == 3  # nothing trained again
    assert scored[1:] == [("structure", "protein_own/structure/model"), ("mrl", "protein_own/mrl/model")]
    res = json.loads((tmp_path / "protein_own" / "result.json").read_text())
    assert [res[h]["value"] for h in HEADS] == [2, 1, 3]
    assert sorted(p.name for p in (tmp_path / "protein_own").glob("items_*.json")) == [
        "items_mrl.json",
        "items_rri.json",
        "items_structure.json",
    ]
    # shared: one joint run for every head, its one bundle scored per head
    a.score = ["mrl"]
    mod.run_arm("random_shared", a)
    assert trained[-1][2] == str(tmp_path / "random_shared" / "joint.yaml")
    assert scored[-1] == ("mrl", "random_shared/joint/model")
