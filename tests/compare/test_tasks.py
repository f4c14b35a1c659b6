"""``resm compare`` on the sequence-level tasks (RNA-RNA interaction, mean ribosome load), offline:
tiny checkpoints made here, synthetic pairs and UTRs with a learnable rule, written to tmp_path.

* RRI: label 1 when ``b`` is the reverse complement of ``a``, 0 when it is the reverse complement
  of another pair's ``a`` (of the same length): only the pairing of the two partners tells the
  label;
* MRL: the target falls with the number of upstream AUGs in the UTR.
"""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
import yaml

from resm.cli import main as cli_main
from resm.compare.backends import BackendSpec, make_backend
from resm.compare.config import parse_config
from resm.compare.harness import run_compare
from resm.compare.training import CachedEncoder
from resm.config import ConfigError
from resm.structure.io import Structure, write_structures

RC = {"A": "U", "C": "G", "G": "C", "U": "A"}


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)
    yield


def revcomp(s: str) -> str:
    return "".join(RC[c] for c in reversed(s))


def rand(rng, n: int, letters: str = "ACGU") -> str:
    return "".join(rng.choice(list(letters), n))


def write_pairs(path, n: int, seed: int, lo: int = 8, hi: int = 12):
    """Label 1: ``b`` is the reverse complement of ``a``; label 0: ``b`` is the reverse complement
    of another pair's ``a`` of the same length. Neither partner alone tells the label."""
    rng = np.random.default_rng(seed)
    small = [rand(rng, int(rng.integers(lo, hi + 1))) for _ in range(n)]
    with open(path, "w") as fh:
        fh.write("a_name\ta_seq\tb_name\tb_seq\tlabel\n")
        for i, a in enumerate(small):
            label = i % 2
            others = [s for s in small if len(s) == len(a) and s != a]
            src = a if label else others[int(rng.integers(0, len(others)))]
            fh.write(f"rna{i}\t{a}\ttarget{i}\t{revcomp(src)}\t{label}\n")
    return path


def write_utrs(path, n: int, seed: int, length: int = 30):
    rng = np.random.default_rng(seed)
    with open(path, "w") as fh:
        fh.write("id,utr,rl\n")
        for i in range(n):
            s = rand(rng, length)
            for _ in range(int(rng.integers(0, 4))):
                k = int(rng.integers(0, length - 2))
                s = s[:k] + "AUG" + s[k + 3 :]
            y = 6.0 - 1.5 * s.count("AUG") + 0.1 * rng.standard_normal()
            fh.write(f"u{i},{s.replace('U', 'T')},{y:.4f}\n")  # DNA letters, as the released files
    return path


def hairpins(n: int, seed: int):
    rng = np.random.default_rng(seed)
    recs = []
    for i in range(n):
        a, b = int(rng.integers(1, 6)), int(rng.integers(1, 6))
        stem = rand(rng, 6, "GGCCGCU")
        seq = rand(rng, a, "AC") + stem + "GAAA" + revcomp(stem) + rand(rng, b, "AC")
        pairs = np.full(len(seq), -1)
        for k in range(6):
            pairs[a + k], pairs[a + 15 - k] = a + 15 - k, a + k
        recs.append(Structure(f"hp_{i}", seq, pairs))
    return recs


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Tiny resm checkpoints (kdny, nt) and the synthetic data sets."""
    from resm.backbone.load import init_model, resm_meta, save_fair_esm
    from resm.mapping import get_scheme

    d = tmp_path_factory.mktemp("compare_tasks")
    out = {}
    for scheme, seed in (("kdny", 1), ("nt", 2)):
        out[scheme] = d / f"tiny_{scheme}.pt"
        save_fair_esm(
            init_model("tiny", seed=seed),
            out[scheme],
            meta=resm_meta(get_scheme(scheme), "tiny", init="random", seed=seed),
        )
    out["pairs"] = write_pairs(d / "pairs.tsv", 300, 0)
    out["pairs_test"] = write_pairs(d / "pairs_test.tsv", 100, 1)
    out["utrs"] = write_utrs(d / "utrs.csv", 600, 2)
    write_structures(hairpins(10, 3), d / "hp.dbn")
    out["hp"] = d / "hp.dbn"
    return out


def rri_section(files, **kw):
    return {
        "train": str(files["pairs"]),
        "test": str(files["pairs_test"]),
        "val_fraction": 0.2,
        "max_train": 240,
        "max_val": 40,
        "head": {"proj_dim": 8, "channels": 8, "blocks": 2, "dropout": 0.0},
        "steps": 30,
        "lr": 5.0e-3,
        "batch": 16,
        "seed": 0,
        **kw,
    }


def mrl_section(files, **kw):
    return {
        "train": str(files["utrs"]),
        "fractions": [0.7, 0.1, 0.2],
        "max_train": 300,
        "head": {"hidden": 16, "conv_layers": 1, "kernel": 5, "anchor": 4, "dropout": 0.0},
        "steps": 30,
        "lr": 5.0e-3,
        "batch": 32,
        "seed": 0,
        **kw,
    }


def read_csv(path):
    with open(path) as fh:
        return {r["backend"]: r for r in csv.DictReader(fh)}


# --------------------------------------------------------------------------- pieces
def test_onehot_backend():
    b = make_backend(BackendSpec.from_dict({"name": "oh", "kind": "onehot"})).load()
    h = b.embed("ACGUNt")
    assert h.shape == (6, 4) and b.embed_dim == 4 and not b.has_attention and b.num_params == 0
    assert torch.equal(h[:4], torch.eye(4)) and torch.equal(h[4], torch.zeros(4)) and torch.equal(h[5], h[3])
    with pytest.raises(ValueError, match="no attention maps"):
        b.attention_maps("ACGU")
    with pytest.raises(ConfigError, match="unknown key 'checkpoint' for kind onehot"):
        BackendSpec.from_dict({"name": "oh", "kind": "onehot", "checkpoint": "x.pt"})


def test_cached_encoder_reads_the_batch_sequences():
    from resm.mapping import get_scheme
    from resm.tasks.base import encode_batch

    seqs = ["ACGUN", "GGA"]
    cache = {s: torch.randn(len(s), 3) for s in seqs}
    h, mask = CachedEncoder(cache, 3)(encode_batch(["acgtr", "GGA"], get_scheme("kdny")))  # normalised on the way
    assert h.shape == (2, 5, 3) and mask.tolist() == [[True] * 5, [True] * 3 + [False] * 2]
    assert torch.equal(h[0], cache["ACGUN"]) and torch.equal(h[1, :3], cache["GGA"]) and not h[1, 3:].any()


GOOD = {
    "tasks": ["rri", "mrl"],
    "rri": {"train": "p.tsv", "test": "t.tsv"},
    "mrl": {"train": "u.csv"},
    "backends": [{"name": "oh", "kind": "onehot"}],
}


@pytest.mark.parametrize(
    "patch, msg",
    [
        ({"tasks": ["rri", "folding"]}, "tasks: unknown task 'folding'"),
        ({"tasks": "rri"}, "tasks: give a non-empty list"),
        ({"tasks": ["rri", "rri"]}, "tasks: a task is listed twice"),
        ({"tasks": ["structure"]}, "task structure needs a section 'data'"),
        ({"rri": None}, "task rri needs a section 'rri'"),
        ({"rri": [1]}, "rri: expected a mapping"),
        ({"rri": {"test": "t.tsv"}}, "rri.train: give the training pairs file"),
        ({"rri": {"train": "p.tsv"}}, "rri.test: give the test pairs file"),
        ({"rri": {**GOOD["rri"], "max_trian": 5}}, "rri: unknown key 'max_trian'"),
        ({"rri": {**GOOD["rri"], "steps": 0}}, "rri.steps must be an integer >= 1"),
        ({"rri": {**GOOD["rri"], "max_test": -1}}, "rri.max_test must be an integer >= 1 or null"),
        ({"rri": {**GOOD["rri"], "lr": 0}}, "rri.lr must be a number > 0"),
        ({"rri": {**GOOD["rri"], "val_fraction": 1.5}}, "rri.val_fraction must be a number > 0 and < 1"),
        ({"rri": {**GOOD["rri"], "head": {"embed_dim": 4}}}, "rri.head.embed_dim cannot be set"),
        ({"rri": {**GOOD["rri"], "head": {"chanels": 4}}}, "rri.head: unknown key 'chanels'"),
        ({"rri": {**GOOD["rri"], "head": {"kernel": 4}}}, "rri.head: kernel must be odd"),
        ({"mrl": {"train": "u.csv", "fractions": [0.5, 0.4]}}, "mrl.fractions must be three shares"),
        ({"mrl": {"train": "u.csv", "batch": 2.5}}, "mrl.batch: expected an integer, got 2.5"),
        ({"mrl": {"train": "u.csv", "weight_decay": -1}}, "mrl.weight_decay must be a number >= 0"),
        ({"mrl": {"train": "u.csv", "seed": "a"}}, "mrl.seed: expected an integer, got 'a'"),
        ({"mrl": {"train": "u.csv", "seed": -1}}, r"mrl.seed must be >= 0 and <= 2\*\*53 - 1 \(an integer\), got -1"),
        ({"mrl": {"train": "u.csv", "head": {"hidden": 0}}}, "mrl.head: hidden and max_length must be >= 1"),
        ({"mrl": {"train": ""}}, "mrl.train: give the UTR file"),
    ],
)
def test_task_config_errors_name_the_key(patch, msg):
    with pytest.raises(ConfigError, match=msg):
        parse_config({**GOOD, **patch})
    cfg = parse_config(GOOD)
    assert cfg.tasks == ["rri", "mrl"] and cfg.data is None and cfg.rri.steps == 300
    # without `tasks`, only structure runs (existing configs keep working)
    plain = parse_config({"data": {"train": "a", "val": "b", "test": "c"}, "backends": GOOD["backends"]})
    assert plain.tasks == ["structure"] and plain.rri is None


def test_missing_task_file_is_a_one_line_error(files, tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                **GOOD,
                "rri": rri_section(files, test=str(tmp_path / "nope.tsv")),
                "mrl": mrl_section(files),
                "out_dir": str(tmp_path / "o"),
            }
        )
    )
    assert cli_main(["compare", "--config", str(path)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "rri.test:" in err and "nope.tsv: no such file" in err
    assert not (tmp_path / "o").exists()


# --------------------------------------------------------------------------- end to end
def test_compare_all_tasks_end_to_end(files, tmp_path, capsys, monkeypatch):
    """Every backend kind in every task's table: finite metrics, skipped rows, n/a where it applies."""
    import resm.compare.backends as B

    class Short(B.OneHotBackend):  # a length limit (as RNA-FM's) that the pairs fit, the hairpins and UTRs exceed
        def load(self):
            super().load()
            self.max_length = 20 if self.name == "short" else None
            return self

    monkeypatch.setitem(B.KINDS, "onehot", Short)
    out = tmp_path / "out"
    cfg = {
        "tasks": ["structure", "rri", "mrl"],
        "data": {"train": str(files["hp"]), "val": str(files["hp"]), "test": str(files["hp"])},
        "backends": [
            {"name": "resm-kdny", "kind": "resm", "checkpoint": str(files["kdny"]), "scheme": "kdny"},
            {"name": "native-nt", "kind": "resm", "checkpoint": str(files["nt"]), "scheme": "nt"},
            {"name": "missing", "kind": "resm", "checkpoint": str(tmp_path / "absent.pt")},
            {"name": "rinalmo", "kind": "multimolecule", "model": "multimolecule/rinalmo"},
            {"name": "onehot", "kind": "onehot"},
            {"name": "short", "kind": "onehot"},
            {"name": "viennarna", "kind": "viennarna"},
        ],
        "probe": {"max_pairs_per_seq": 50},
        "head": {"proj_dim": 4, "channels": 4, "blocks": 1, "dilations": [1], "dropout": 0.0},
        "train": {"steps": 5, "crop": 24, "batch": 2},
        "rri": rri_section(files, steps=10, max_train=64, max_test=60),
        "mrl": mrl_section(files, steps=10, max_train=64, max_val=20, max_test=60),
        "out_dir": str(out),
        "progress": False,
    }
    path = tmp_path / "tasks.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert cli_main(["compare", "--config", str(path)]) == 0
    printed = capsys.readouterr().out
    assert "SKIPPED backend missing: checkpoint" in printed and "## RNA-RNA interaction" in printed

    names = ["resm-kdny", "native-nt", "missing", "rinalmo", "onehot", "short", "viennarna"]
    st, rri, mrl = (read_csv(out / f) for f in ("results.csv", "results_rri.csv", "results_mrl.csv"))
    for table in (st, rri, mrl):
        assert list(table) == names
        assert table["missing"]["status"].startswith("skipped: checkpoint") and table["rinalmo"]["status"].startswith(
            "skipped: "
        )
    for name in ("resm-kdny", "native-nt", "onehot"):
        assert rri[name]["status"] == "ok" and mrl[name]["status"] == "ok"
        for k in ("auroc", "auprc", "val_auroc"):
            assert 0.0 <= float(rri[name][k]) <= 1.0
        for k in ("r2", "spearman", "val_r2"):
            assert np.isfinite(float(mrl[name][k]))
        for r in (rri[name], mrl[name]):
            assert float(r["embed_s"]) > 0 and float(r["train_s"]) > 0
    # ViennaRNA: duplex energies score RRI (no training), no MRL model
    assert rri["viennarna"]["status"].startswith("ok (duplexfold") and 0.5 < float(rri["viennarna"]["auroc"]) <= 1.0
    assert mrl["viennarna"]["status"].startswith("n/a") and mrl["viennarna"]["r2"] == ""
    # one-hot: no attention maps, so no zero-shot probe; the supervised structure head still trains
    assert st["onehot"]["zeroshot_f1"] == "n/a" and 0.0 <= float(st["onehot"]["supervised_f1"]) <= 1.0
    assert float(st["resm-kdny"]["zeroshot_f1"]) >= 0.0
    # a task whose sequences exceed a backend's limit is a skip in that task's table only
    assert (
        rri["short"]["status"] == "ok"
        and mrl["short"]["status"] == "skipped: sequences up to 30 nt exceed its limit of 20 nt"
    )
    assert st["short"]["status"].startswith("skipped: sequences up to") and "limit of 20 nt" in st["short"]["status"]

    md = (out / "results.md").read_text()
    for title in ("## Secondary structure", "## RNA-RNA interaction", "## Mean ribosome load"):
        assert md.count(title) == 1
    for name in names:
        assert md.count(f"\n| {name} |") == 3  # one row per task table
    assert md.count("skipped: checkpoint") == 3 and "| onehot | onehot | ok | n/a | n/a |" in md
    conf = json.loads((out / "config.json").read_text())
    assert conf["tasks"] == ["structure", "rri", "mrl"] and conf["rri"]["steps"] == 10
    assert set(conf["details"]) == {"resm-kdny", "native-nt", "onehot", "short", "viennarna"}
    assert conf["details"]["short"]["mrl"] == {"skipped": "sequences up to 30 nt exceed its limit of 20 nt"}


def test_onehot_learns_the_rules_and_runs_are_deterministic(files, tmp_path):
    """Within the budget, the one-hot floor learns both synthetic rules well above chance, and the
    same seeds give the same numbers twice."""
    cfg = {
        "tasks": ["rri", "mrl"],
        "backends": [{"name": "onehot", "kind": "onehot"}],
        "rri": rri_section(files, steps=200),
        "mrl": mrl_section(files, steps=100),
        "progress": False,
    }
    runs = [run_compare({**cfg, "out_dir": str(tmp_path / f"o{k}")}, log=lambda *_: None) for k in range(2)]
    rri, mrl = runs[0]["rri_rows"][0], runs[0]["mrl_rows"][0]
    assert rri["auroc"] > 0.9 and rri["auprc"] > 0.9, rri  # chance: 0.5
    assert mrl["r2"] > 0.6 and mrl["spearman"] > 0.75, mrl  # chance: 0
    keys = {"rri": ("auroc", "auprc", "val_auroc"), "mrl": ("r2", "spearman", "val_r2")}
    for task, ks in keys.items():
        a, b = runs[0][f"{task}_rows"][0], runs[1][f"{task}_rows"][0]
        assert all(a[k] == b[k] for k in ks), (a, b)
        assert runs[0]["details"]["onehot"][task]["final_loss"] == runs[1]["details"]["onehot"][task]["final_loss"]
    assert not (tmp_path / "o0" / "results.csv").exists()  # no structure task: no structure table
    assert (tmp_path / "o0" / "results_rri.csv").exists() and (tmp_path / "o0" / "results_mrl.csv").exists()
