"""resm finetune (structure task) end to end: learning through the shared Trainer, exact
resume, the structure_model.pt round trip and config errors. Tiny backbone, synthetic
hairpins, frozen mode."""

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from resm.cli import main as cli_main
from tests.conftest import logged, resm_cli

COMP = {"A": "U", "U": "A", "G": "C", "C": "G"}


def hairpins(path, n, seed):
    """n random hairpins of 30-50 nt: random flanks, a Watson-Crick stem of 5-8 bp, a loop of
    4-8 nt, written as .dbn."""
    rng = np.random.default_rng(seed)
    with open(path, "w") as fh:
        for k in range(n):
            L = int(rng.integers(30, 51))
            stem, loop = int(rng.integers(5, 9)), int(rng.integers(4, 9))
            core = 2 * stem + loop
            left = int(rng.integers(0, L - core + 1))
            seq = list(rng.choice(list("ACGU"), L))
            db = ["."] * L
            for i in range(stem):
                a, b = left + i, left + core - 1 - i
                seq[b] = COMP[seq[a]]
                db[a], db[b] = "(", ")"
            fh.write(f">hp{seed}_{k}\n{''.join(seq)}\n{''.join(db)}\n")
    return str(path)


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    d = tmp_path_factory.mktemp("ft")
    backbone = d / "tiny.pt"
    assert cli_main(["init-checkpoint", "--arch", "tiny", "--out", str(backbone), "--seed", "1"]) == 0
    return {
        "dir": d,
        "backbone": str(backbone),
        "train": hairpins(d / "TR.dbn", 40, 0),
        "val": hairpins(d / "VL.dbn", 12, 1),
    }


def structure_config(assets, out_dir, head: dict, data: dict, loss: dict, lr: float, steps: int, over: dict):
    """A structure task's config on the tiny backbone and the hairpins of ``assets``: ``head``,
    ``data`` (besides the two files and the seed), ``loss``, the learning rate, ``steps`` steps
    (validated and saved at the last), each section of ``over`` updated with its entries."""
    cfg = {
        "task": "structure",
        "model": {"init": assets["backbone"], "mode": "frozen"},
        "head": head,
        "data": {"train": assets["train"], "val": assets["val"], **data, "seed": 0},
        "loss": loss,
        "optim": {"lr": lr, "warmup_steps": 5, "schedule": "cosine"},
        "train": {
            "out_dir": str(out_dir),
            "max_steps": steps,
            "log_every": 1,
            "val_every": steps,
            "ckpt_every": steps,
            "progress": False,
            "device": "cpu",
        },
    }
    for k, v in over.items():
        cfg[k].update(v)
    return cfg


def config(assets, out_dir, **over):
    head = {"kind": "conv", "proj_dim": 8, "channels": 12, "blocks": 2, "dilations": [1, 2], "dropout": 0.0}
    data = {"max_length": 40, "tokens_per_batch": 400, "use_bpp": False}
    loss = {"pos_weight": 30.0}  # positives are ~1% of cells: weigh them up to learn fast
    return structure_config(assets, out_dir, head, data, loss, 1e-2, 80, over)


def write(cfg, path):
    path.write_text(yaml.safe_dump(cfg))
    return path


def finetune_error(capsys, config, *overrides) -> str:
    """``resm finetune --config config overrides`` in this process: exit 1 and exactly one line
    on stderr, which is returned."""
    capsys.readouterr()
    assert cli_main(["finetune", "--config", str(config), *overrides]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


run = resm_cli


log = logged


@pytest.fixture(scope="module")
def trained(assets):
    """One CLI training run (80 steps), shared by the learning and round-trip tests."""
    from resm.tasks.structure_task import StructureTask

    cfg = config(assets, assets["dir"] / "run")
    task = StructureTask(cfg)
    before = task.validate(task.model.eval(), torch.device("cpu"))
    p = run("finetune", "--config", write(cfg, assets["dir"] / "cfg.yaml"))
    return {"cfg": cfg, "before": before, "stdout": p.stdout, "dir": assets["dir"] / "run"}


def test_finetune_learns_hairpins(trained):
    out = trained["dir"]
    assert "finished at step 80" in trained["stdout"] and "structure_model.pt" in trained["stdout"]
    assert (out / "structure_model.pt").exists()
    losses = log(out)
    assert sorted(losses) == list(range(1, 81))
    assert np.mean([losses[s] for s in range(76, 81)]) < 0.25 * np.mean([losses[s] for s in range(1, 6)]), losses
    after = log(out, "validation", "val_f1")[80]
    assert after > trained["before"]["val_f1"] + 0.4 and after > 0.6, (trained["before"], after)
    assert log(out, "validation", "val_loss")[80] < trained["before"]["val_loss"] / 3


def test_model_file_round_trip(trained):
    from resm.mapping import get_scheme
    from resm.structure.io import read_structures
    from resm.structure.model import load_structure_model, predict_pairs
    from resm.tasks.structure_task import StructureTask

    path = trained["dir"] / "structure_model.pt"
    raw = torch.load(path, weights_only=True)  # plain dicts and tensors only
    assert raw["backbone"]["embed_tokens.weight"].dtype == torch.float16
    assert 0.05 <= raw["threshold"] <= 0.95 and raw["scheme"] == "kdny"
    assert raw["val_metrics"]["f1_mean"] > 0.6
    from resm.backbone.load import load_backbone

    init = load_backbone(trained["cfg"]["model"]["init"]).model.state_dict()
    for k, v in raw["backbone"].items():  # frozen: the backbone is the initial one (fp16)
        assert torch.equal(v, init[k].half()), k
    model, meta = load_structure_model(path)
    assert meta["head_config"]["channels"] == 12 and meta["threshold"] == raw["threshold"]

    # the in-memory model with the trained weights (fp16-rounded backbone, as stored)
    task = StructureTask(trained["cfg"])
    task.model.head.load_state_dict(raw["head"])
    task.model.backbone.load_state_dict({k: v.float() for k, v in raw["backbone"].items()})
    task.model.eval()
    scheme = get_scheme("kdny")
    rec = next(iter(read_structures(trained["cfg"]["data"]["val"])))
    P = predict_pairs(model, scheme, rec.seq, tile=8)  # several tiles
    assert P.dtype == np.float32 and P.shape == (len(rec.seq),) * 2
    # a file from before the pair head records no head_kind: it loads as the 2-D head it holds
    assert raw["head_kind"] == "conv" and model.kind == "conv"
    torch.save({k: v for k, v in raw.items() if k != "head_kind"}, trained["dir"] / "no_kind.pt")
    old, _ = load_structure_model(trained["dir"] / "no_kind.pt")
    assert old.kind == "conv"
    np.testing.assert_array_equal(predict_pairs(old, scheme, rec.seq, tile=8), P)
    from resm.data.labelled_structures import Item, collate
    from resm.nucleotides import rna_codes

    it = Item(("val", 0), rec.name, rec.seq, rec.pairs, 0, scheme.encode(rec.seq), rna_codes(rec.seq))
    b = collate([it])
    with torch.no_grad():
        ref = torch.sigmoid(task.model(b["tokens"], {"nuc": b["nuc"]}))[0].numpy()
    np.testing.assert_allclose(P, ref, atol=1e-5)
    np.testing.assert_allclose(predict_pairs(model, "kdny", rec.seq, tile=256), P, atol=1e-5)


def test_resume_matches_uninterrupted(assets, tmp_path):
    common = {"optim": {"schedule": "constant", "warmup_steps": 2}, "head": {"kind": "conv", "dropout": 0.1}}
    ref = config(assets, tmp_path / "ref", train={"max_steps": 9, "val_every": 0, "ckpt_every": 3}, **common)
    run("finetune", "--config", write(ref, tmp_path / "ref.yaml"))
    cfg = config(assets, tmp_path / "res", train={"max_steps": 6, "val_every": 0, "ckpt_every": 3}, **common)
    path = write(cfg, tmp_path / "res.yaml")
    run("finetune", "--config", path)
    assert max(log(tmp_path / "res")) == 6
    run("finetune", "--config", path, "train.max_steps=9", "train.resume_changed=true")  # resumes from step_00000006
    a, b = log(tmp_path / "ref"), log(tmp_path / "res")
    assert sorted(b) == list(range(1, 10))
    for s in (7, 8, 9):
        assert abs(a[s] - b[s]) < 1e-4, (s, a[s], b[s])


def test_stream_resume_and_sharding(assets):
    from resm.mapping import get_scheme
    from resm.tasks.structure_task import StructureDataConfig, StructureStream, load_records

    cfg = StructureDataConfig(train=assets["train"], max_length=30, tokens_per_batch=200)
    recs, ids, _ = load_records(cfg.train, get_scheme("kdny"), None, 0)
    s = StructureStream(recs, ids, cfg)
    it = iter(s)
    first = [next(it) for _ in range(5)]
    state = s.state_dict()
    rest = [next(it) for _ in range(20)]  # crosses an epoch boundary
    s2 = StructureStream(recs, ids, cfg)
    s2.load_state_dict(state)
    it2 = iter(s2)
    again = [next(it2) for _ in range(20)]
    assert [[(x.name, x.start) for x in b] for b in rest] == [[(x.name, x.start) for x in b] for b in again]
    for b in first + rest:
        assert max(len(x.seq) for x in b) <= 30 and len(b) * 32 <= 200
        for x in b:  # crops keep only pairs inside the window, and they are complementary
            i = np.flatnonzero(x.pairs >= 0)
            assert all(x.pairs[x.pairs[k]] == k for k in i)
    shards = [{x.name for b in StructureStream(recs, ids, cfg, r, 2).iter_epoch(0) for x in b} for r in (0, 1)]
    assert not shards[0] & shards[1] and len(shards[0] | shards[1]) == len(recs)


def test_bpp_channel_small(assets, tmp_path):
    from resm.structure.model import predict_pairs
    from resm.tasks.structure_task import StructureTask
    from resm.train import Trainer
    from resm.train_config import OptimConfig, TrainConfig

    small = hairpins(tmp_path / "five.dbn", 5, 3)
    cfg = config(assets, tmp_path / "bpp", data={"train": small, "val": small, "use_bpp": True})
    task = StructureTask(cfg)
    assert task.head_cfg.use_bpp and task.model.head.stem_bpp is not None
    res = Trainer(
        task,
        OptimConfig(lr=1e-3, warmup_steps=1),
        TrainConfig(
            out_dir=str(tmp_path / "bpp"), max_steps=2, val_every=2, ckpt_every=0, progress=False, device="cpu"
        ),
    ).fit()
    assert len(task.kind._bpp) == 10  # each record folded once per split, lazily
    assert np.isfinite(res["validation"]["val_loss"])
    from resm.structure.model import load_structure_model

    model, meta = load_structure_model(tmp_path / "bpp" / "structure_model.pt")
    assert meta["head_config"]["use_bpp"]
    P = predict_pairs(model, "kdny", task.val_records[0].seq)
    assert np.isfinite(P).all()


def test_bad_configs_are_one_line_errors(assets, tmp_path, capsys):
    p = run(
        "finetune",
        "--config",
        write({**config(assets, tmp_path / "x"), "task": "folding"}, tmp_path / "a.yaml"),
        check=False,
    )
    assert p.returncode == 1 and "unknown task 'folding'; known tasks: ['structure', 'rri', 'mrl', 'joint']" in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1
    path = write(config(assets, tmp_path / "y"), tmp_path / "b.yaml")
    assert "model.adapter" in finetune_error(capsys, path, "model.mode=adapters", "model.adapter.r=0")
    assert cli_main(["finetune", "--config", str(path), "model.adapter.r=4"]) == 1
    assert "only used with model.mode adapters" in capsys.readouterr().err
    assert cli_main(["finetune", "--config", str(path), "head.embed_dim=7"]) == 1
    assert "head.embed_dim" in capsys.readouterr().err
    assert cli_main(["finetune", "--config", str(path), "head.chanels=7"]) == 1
    assert "head: unknown key 'chanels'" in capsys.readouterr().err


def test_full_mode_and_attention_channels(assets):
    from resm.structure.model import predict_pairs
    from resm.tasks.structure_task import StructureTask

    for mode, frozen_grads in (("full", False), ("frozen", True)):
        task = StructureTask(config(assets, "/nonexistent", model={"mode": mode}, head={"use_attention": True}))
        assert task.head_cfg.attn_channels == 2 * 4  # tiny: 2 layers x 4 heads
        m = task.model.train()
        assert m.backbone.training == (mode == "full")
        loss, info = task.loss(m, next(iter(task.train_stream(0, 1))), None, torch.device("cpu"))
        loss.backward()
        n_grads = sum(p.grad is not None for p in m.backbone.parameters())
        assert (n_grads == 0) == frozen_grads
        assert not [n for n, p in m.named_parameters() if p.requires_grad and p.grad is None]  # DDP-safe
        P = predict_pairs(m, "kdny", task.val_records[0].seq, tile=16)
        assert np.isfinite(P).all()


def test_evaluate_structure_against_rnafold(trained, tmp_path):
    """resm evaluate structure: the model and the classical folders scored on the same
    sequences; RNAfold's row equals the metrics computed directly, and the margin row is the
    difference."""
    from resm.structure.folders import linearpartition_mea, rnafold
    from resm.structure.metrics import evaluate

    data = tmp_path / "data"
    (data / "ss" / "bprna").mkdir(parents=True)
    src = trained["cfg"]["data"]["val"]
    (data / "ss" / "bprna" / "TS0.dbn").write_text(Path(src).read_text())
    out = tmp_path / "table.md"
    run(
        "evaluate",
        "structure",
        "--model",
        trained["dir"] / "structure_model.pt",
        "--dataset",
        "ts0",
        "--data-dir",
        data,
        "--limit",
        "8",
        "--out",
        out,
        "--folders",
        "rnafold",
        "eternafold",
    )
    table = out.read_text()
    assert "Command: `resm evaluate structure" in table and "EternaFold parameters" in table
    from resm.structure.datasets import load_dataset

    recs = load_dataset("ts0", data, limit=8)
    rows = {
        c[2]: c
        for c in (
            [x.strip() for x in line.strip("|").split("|")]
            for line in table.splitlines()
            if line.startswith("| ts0 | 8 |")
        )
    }
    assert set(rows) == {"**resm**", "rnafold", "eternafold"}
    ref = evaluate([rnafold(r.seq)[0] for r in recs], [r.pairs for r in recs])
    assert float(rows["rnafold"][3]) == pytest.approx(ref["f1_mean"], abs=5e-4)
    lp = evaluate([linearpartition_mea(r.seq, "eterna") for r in recs], [r.pairs for r in recs])
    assert float(rows["eternafold"][4]) == pytest.approx(lp["f1_shift_mean"], abs=5e-4)
    assert float(rows["**resm**"][3]) > 0.5  # the trained head folds these hairpins well
    best = max(float(rows["rnafold"][3]), float(rows["eternafold"][3]))
    margin = next(
        line
        for line in table.splitlines()
        if line.startswith("| ts0 |") and "best" not in line and line.count("|") == 7
    )
    assert float(margin.split("|")[3]) == pytest.approx(float(rows["**resm**"][3]) - best, abs=2e-3)
    p = run(
        "evaluate",
        "structure",
        "--model",
        trained["dir"] / "structure_model.pt",
        "--dataset",
        "ts0",
        "--data-dir",
        tmp_path / "none",
        check=False,
    )
    assert p.returncode == 1 and "data set not found" in p.stderr
    p = run(
        "evaluate",
        "structure",
        "--model",
        trained["dir"] / "structure_model.pt",
        "--dataset",
        "ts0",
        "--data-dir",
        data,
        "--folders",
        "mfold",
        check=False,
    )
    assert p.returncode == 2 and "unknown folder 'mfold'" in p.stderr and len(p.stderr.strip().splitlines()) == 1


def test_fold_with_a_supervised_model(trained, tmp_path):
    """resm fold --model structure_model.pt: the pairs are the stored-threshold decoding of
    predict_pairs, written as valid dot-brackets."""
    from resm.structure.decode import decode
    from resm.structure.io import read_structures
    from resm.structure.model import load_structure_model, predict_pairs

    val = list(read_structures(trained["cfg"]["data"]["val"]))[:4]
    fa = tmp_path / "in.fa"
    fa.write_text("".join(f">{r.name}\n{r.seq}\n" for r in val))
    model_file = trained["dir"] / "structure_model.pt"
    run("fold", fa, "--model", model_file, "-o", tmp_path / "out.dbn")
    got = {r.name: r.pairs for r in read_structures(tmp_path / "out.dbn")}
    model, meta = load_structure_model(model_file)
    for r in val:
        want = decode(predict_pairs(model, meta["scheme"], r.seq), r.seq, threshold=meta["threshold"])
        assert np.array_equal(got[r.name], want)
    p = run("fold", fa, "--model", model_file, "--reference", trained["cfg"]["data"]["val"])
    assert "F1 over 4 sequences" in p.stderr and len(p.stdout.splitlines()) == 5  # the report: header + 4 rows


def pair_config(assets, out_dir, **over):
    head = {"kind": "pairs", "width": 16, "pair_width": 16, "blocks": 1, "dilations": [1], "rounds": 1, "dropout": 0.0}
    data = {"max_length": 60, "tokens_per_batch": 400, "priors": [{"kind": "eternafold"}], "workers": 1}
    return structure_config(assets, out_dir, head, data, {"pos_weight": 1.0}, 3e-3, 60, over)


@pytest.fixture
def pair_config_file(assets, tmp_path):
    """:func:`pair_config` in a file, its out_dir under ``tmp_path``."""
    return write(pair_config(assets, tmp_path / "x"), tmp_path / "p.yaml")


def pair_table(records, path):
    """``records`` as a PDB-style pair table (id, sequence, pairs) at ``path``, each record's
    first paired base i0 also in a second (usually non-canonical) pair: a triple."""
    rows = []
    for r in records:
        ij = [f"{i + 1}:{j + 1}" for i, j in enumerate(r.pairs.tolist()) if j > i]
        i0, j0 = next((i, j) for i, j in enumerate(r.pairs.tolist()) if j > i)
        ij.append(f"{i0 + 1}:{j0}")
        rows.append(f"{r.name}\t{r.seq}\t{' '.join(ij)}\n")
    path.write_text("id\tsequence\tpairs\n" + "".join(rows))
    return path


@pytest.fixture(scope="module")
def pair_trained(assets):
    pytest.importorskip("linearpartition")
    out = assets["dir"] / "pairs"
    cfg = pair_config(assets, out)
    p = run("finetune", "--config", write(cfg, assets["dir"] / "pairs.yaml"))
    return {"stdout": p.stdout, "dir": out, "cfg": cfg}


def test_pair_head_learns_and_chooses_its_decoding(assets, pair_trained):
    """head.kind pairs: candidates from EternaFold (LinearPartition), loss that falls, the
    decoding chosen on validation and stored, and a model file whose predictions decode to the
    validation score it reports."""
    from resm.structure.decode import Decoding, decode_sparse
    from resm.structure.io import read_structures
    from resm.structure.metrics import evaluate
    from resm.structure.model import load_structure_model, model_priors, predict_candidates
    from resm.structure.priors import pair_prior

    assert "decoding: MEA gamma" in pair_trained["stdout"]
    assert "validation F1" not in pair_trained["stdout"]  # one F1 per split: the chosen decoding's
    losses = log(pair_trained["dir"])
    assert np.mean([losses[s] for s in range(56, 61)]) < 0.6 * np.mean([losses[s] for s in range(1, 6)]), losses
    path = pair_trained["dir"] / "structure_model.pt"
    raw = torch.load(path, weights_only=True)
    assert raw["head_kind"] == "pairs" and raw["priors"][0]["kind"] == "eternafold"
    dec = Decoding.from_dict(raw["decoding"])
    model, meta = load_structure_model(path)
    val = list(read_structures(assets["val"]))
    priors = [[pair_prior(r.seq, c) for c in model_priors(meta)] for r in val]
    got = predict_candidates(model, meta["scheme"], [r.seq for r in val], priors)
    from resm.heads.pairs import prior_probability

    preds = [
        decode_sparse(r.seq, c.i, c.j, q, dec, prior_probability(c, model.head.cfg)) for r, (c, q) in zip(val, got)
    ]
    f1 = evaluate(preds, [r.pairs for r in val])["f1_mean"]
    assert f1 == pytest.approx(raw["val_metrics"]["val"]["f1_mean"], abs=1e-6) and f1 > 0.7
    # one sequence alone gets the probabilities it got in the batch
    alone = predict_candidates(model, meta["scheme"], [val[3].seq], [priors[3]])[0][1]
    np.testing.assert_allclose(alone, got[3][1], atol=1e-5)


def test_decoding_chosen_on_several_sources(assets, pair_trained, pair_config_file, tmp_path, capsys):
    """data.val_sets adds a validation set (here a PDB pair table with a base triple); with
    select_on all the decoding maximises the mean F1 of every set, the file reports each set's
    precision, recall and pair ratio, and a task built to choose decodings skips the training
    priors. Bad val_sets / select_on are one-line config errors."""
    from resm.backbone.load import safe_load
    from resm.structure.decode import Decoding, choose_decoding
    from resm.structure.io import read_structures
    from resm.structure.model import model_from_payload
    from resm.tasks.structure_task import StructureTask

    pdb = pair_table(list(read_structures(assets["val"]))[:6], tmp_path / "PDB.tsv")
    cfg = pair_config(assets, tmp_path / "o")
    cfg["data"].update(val_sets={"pdb": str(pdb)}, select_on="all", pdb_pairs="all")
    task = StructureTask(cfg, train_priors=False)
    assert task.validation_splits() == ["val", "pdb"] and not any(k[0] == "train" for k in task.priors)
    payload = safe_load(pair_trained["dir"] / "structure_model.pt")
    model, _ = model_from_payload(payload)
    sets = task.kind.validation_predictions(model, "cpu")
    task.kind.choose(model, "cpu", payload, sets=sets)
    m = payload["val_metrics"]
    assert m["selected_on"] == ["val", "pdb"] and m["pdb"]["n"] == 6
    assert m["pdb"]["recall_mean"] < 1 and m["pdb"]["pair_ratio"] > 0  # one partner per predicted base
    chosen = Decoding.from_dict(payload["decoding"])
    _, scores = choose_decoding(
        [sets["val"], sets["pdb"]], prior_weights=(0.0, 0.1, 0.2, 0.3, 0.4, 0.5), return_scores=True
    )
    mean = np.mean([task.kind.decoding_metrics(model, sets[s], chosen)["f1_mean"] for s in ("val", "pdb")])
    assert mean == pytest.approx(max(scores.values()), abs=1e-12)
    assert m["pdb"]["f1_mean"] == pytest.approx(task.kind.decoding_metrics(model, sets["pdb"], chosen)["f1_mean"])
    for over, what in (
        (f"data.val_sets={{val: {pdb}}}", "reserved name"),  # a file that is there: a missing one is said first
        ("data.select_on=[val, vl9]", "'vl9' is not a validation set"),
    ):
        assert what in finetune_error(capsys, pair_config_file, over)


def test_finetune_the_shipped_model_on_pdb(assets, tmp_path, capsys):
    """configs/finetune/structure_pdb.yaml, a few steps on a tiny PDB pair table: training starts
    from the shipped model's weights (frozen backbone kept, head moved), the decoding is chosen on
    VL0-like and VL1-like sets together; a start model built otherwise is a one-line error."""
    pytest.importorskip("linearpartition")
    from resm.backbone.load import safe_load
    from resm.structure.io import read_structures
    from resm.structure.model import load_structure_model

    tr1 = pair_table(list(read_structures(assets["train"]))[:8], tmp_path / "TR1.tsv")
    out = tmp_path / "run"
    over = [
        f"data.train={tr1}",
        f"data.val={assets['val']}",
        f"data.val_sets={{vl1: {tr1}}}",
        "data.max_val=4",
        f"data.bpp_cache={tmp_path / 'cache'}",
        "data.workers=1",
        "data.tokens_per_batch=700",
        f"train.out_dir={out}",
        "train.max_steps=3",
        "train.val_every=3",
        "train.ckpt_every=3",
        "train.log_every=1",
        "train.progress=false",
        "train.device=cpu",
    ]
    p = run("finetune", "--config", "configs/finetune/structure_pdb.yaml", *over)
    assert "vl1 F1" in p.stdout and "pairs" in p.stdout
    shipped, _ = load_structure_model("resm/models/structure_default.pt")
    tuned, meta = load_structure_model(out / "structure_model.pt")
    for (k, a), b in zip(shipped.backbone.state_dict().items(), tuned.backbone.state_dict().values()):
        assert torch.equal(a, b), k  # frozen
    moved = [
        k
        for (k, a), b in zip(shipped.head.state_dict().items(), tuned.head.state_dict().values())
        if a.dtype.is_floating_point and not torch.equal(a, b)
    ]
    assert moved and len(log(out)) == 3
    assert meta["val_metrics"]["selected_on"] == ["val", "vl1"] and meta["val_metrics"]["vl1"]["n"] == 4  # data.max_val
    raw = safe_load(out / "structure_model.pt")
    assert raw["head_config"] == safe_load("resm/models/structure_default.pt")["head_config"]
    err = finetune_error(capsys, "configs/finetune/structure_pdb.yaml", *over, "head.width=32")
    assert "start.model resm/models/structure_default.pt: head.width is 64 there, 32 here" in err


def test_training_on_several_sets(assets, pair_config_file, tmp_path, capsys):
    """data.train as a list: bpRNA-style dbn records and a PDB pair table taken three times an
    epoch; a repeated record's priors are computed once; bad entries are one-line errors."""
    pytest.importorskip("linearpartition")
    from resm.tasks.structure_task import StructureTask

    pdb = tmp_path / "TR1.tsv"
    pdb.write_text("id\tsequence\tpairs\nt1\tGGGGAAACCCCAUAGCGCGAAAGCGCU\t1:11 2:10 3:9 4:8 1:9\n")
    cfg = pair_config(assets, tmp_path / "o")
    cfg["data"]["train"] = [assets["train"], {"file": str(pdb), "repeat": 3}]
    task = StructureTask(cfg)
    names = [r.name for r in task.train_records]
    assert len(names) == 43 and names[-3:] == ["t1"] * 3
    assert task.train_records[-1].pairs.multiplet_bases() == 2  # bases 1 and 9, each in two pairs
    task.ensure_priors([("train", 40)])  # priors are computed when a record is first used
    task.ensure_priors([("train", 42)])
    assert task.priors[("train", 40)] is task.priors[("train", 42)]
    batch = next(iter(task.train_stream(0, 1)))
    assert task.loss(task.model.train(), batch, None, torch.device("cpu"))[0].isfinite()
    for over, what in (
        (f"data.train=[{{file: {pdb}, repeat: 0}}]", "data.train[0]: expected a file"),  # files that are there
        (f"data.train=[{pdb}, 3]", "data.train[1]"),
    ):
        assert what in finetune_error(capsys, pair_config_file, over)


def test_pair_head_config_errors(pair_config_file, capsys):
    err = finetune_error(capsys, pair_config_file, "data.priors=[{kind: rnastructure}]")
    assert "data.priors[0]" in err and "rnastructure" in err
    for over, what in (
        ("head.kind=axial", "head.kind must be one of ['conv', 'pairs']"),
        ("data.use_bpp=true", "data.use_bpp"),
        ("head.priors=2", "head.priors"),
    ):
        assert what in finetune_error(capsys, pair_config_file, over)


def test_fold_with_a_pair_model(assets, pair_trained, tmp_path):
    """resm fold with a pair-head model: batched folding gives each record the structure that
    its own candidates decode to; --nested leaves no crossing pair, --bpp lists the decoded
    probabilities, and greedy-decoding options are refused in one line."""
    from resm.heads.pairs import prior_probability
    from resm.structure.decode import Decoding, decode_sparse
    from resm.structure.io import read_structures
    from resm.structure.model import load_structure_model, model_priors, predict_candidates
    from resm.structure.priors import pair_prior

    model_file = pair_trained["dir"] / "structure_model.pt"
    val = list(read_structures(assets["val"]))
    fa = tmp_path / "in.fa"
    fa.write_text("".join(f">{r.name}\n{r.seq}\n" for r in val))
    run("fold", fa, "--model", model_file, "-o", tmp_path / "out.dbn", "--bpp", tmp_path / "out.bpp", "--threads", "2")
    got = {r.name: r.pairs for r in read_structures(tmp_path / "out.dbn")}
    model, meta = load_structure_model(model_file)
    dec = Decoding.from_dict(meta["decoding"])
    for r in val:
        ((c, q),) = predict_candidates(
            model, meta["scheme"], [r.seq], [[pair_prior(r.seq, k) for k in model_priors(meta)]]
        )
        want = decode_sparse(r.seq, c.i, c.j, q, dec, prior_probability(c, model.head.cfg))
        assert np.array_equal(got[r.name], want), r.name
    bpp = (tmp_path / "out.bpp").read_text()
    assert sum(line.startswith(">") for line in bpp.splitlines()) == len(val)
    run("fold", fa, "--model", model_file, "-o", tmp_path / "nested.dbn", "--nested")
    for r in read_structures(tmp_path / "nested.dbn"):
        k = [(a, int(r.pairs[a])) for a in range(len(r.pairs)) if r.pairs[a] > a]
        assert not any(a < c < b < d for a, b in k for c, d in k)
    p = run("fold", fa, "--model", model_file, "--threshold", "0.4", check=False)
    assert p.returncode == 1 and "maximum expected accuracy" in p.stderr and len(p.stderr.strip().splitlines()) == 1


def test_gpu_recipe_runs_on_cpu_with_a_tiny_checkpoint(assets, tmp_path):
    """configs/finetune/structure_esm2_gpu.yaml (attention at the candidates, backbone windows,
    bf16) is the shipped head's GPU recipe; with CPU overrides it trains end to end, and the
    model it writes reads attention maps and windows its embeddings. Its bf16 is kept: CPU
    autocast takes the half-precision path the GPU run takes."""
    from resm.structure.model import load_structure_model
    from resm.structure.predictor_loading import supervised_predictor

    pytest.importorskip("linearpartition")
    out = tmp_path / "gpu_recipe"
    run(
        "finetune",
        "--config",
        "structure_esm2_gpu",
        f"model.init={assets['backbone']}",
        f"data.train={assets['train']}",
        f"data.val={assets['val']}",
        "data.families=null",
        "data.family_holdout=0",
        "data.bpp_cache=null",
        "data.max_length=60",
        "data.tokens_per_batch=400",
        "data.workers=1",
        "data.max_val=12",
        "head.width=16",
        "head.pair_width=16",
        "head.blocks=1",
        "head.rounds=1",
        "head.embed_window=32",
        "train.device=cpu",
        "train.max_steps=3",
        "train.val_every=3",
        "train.ckpt_every=3",
        "train.progress=false",
        f"train.out_dir={out}",
    )
    model, meta = load_structure_model(out / "structure_model.pt")
    cfg = model.head.cfg
    assert cfg.use_attention and cfg.attn_channels > 0 and cfg.embed_window == 32 and meta["decoding"]
    pred = supervised_predictor(out / "structure_model.pt", workers=1)
    folded = pred.fold_one("GGGGCGCAAAGCGCCCC" + "A" * 30 + "GCGGAUUUAGCUCAGUUGGGAGAGC")  # 72 nt > 32: windows
    assert len(folded.pairs) == 72 and folded.dense().shape == (72, 72)


def test_pair_priors_are_computed_for_the_records_a_run_uses(assets, monkeypatch):
    """A short fine-tune computes the priors of the records it trains on, not of the whole
    training set before step 1 (a 20-step run on TR0 used to fold all 10,172 records first)."""
    pytest.importorskip("linearpartition")
    from resm.structure import priors
    from resm.tasks.structure_task import StructureTask

    folded = []
    real = priors.compute_priors
    monkeypatch.setattr(priors, "compute_priors", lambda seqs, *a, **k: folded.extend(seqs) or real(seqs, *a, **k))
    task = StructureTask(pair_config(assets, assets["dir"] / "lazy"))
    assert folded == [] and len(task.train_records) == 40
    batch = next(iter(task.train_stream(0, 1).iter_epoch(0)))  # the first batch of the first epoch
    task.loss(task.model, batch, torch.Generator().manual_seed(0), torch.device("cpu"))
    assert sorted(folded) == sorted({it.seq for it in batch}) and len(folded) < len(task.train_records)
    task.loss(task.model, batch, torch.Generator().manual_seed(0), torch.device("cpu"))
    assert len(folded) == len({it.seq for it in batch})  # computed once
    task.kind.predictions(task.model.eval(), torch.device("cpu"))
    assert len(folded) == len({it.seq for it in batch}) + len(task.val_records)
