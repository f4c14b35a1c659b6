"""data.train's per-file pos_weight in the pair head's loss (resm.tasks.structure_heads): each
record's candidates take its file's weight of the paired term; without the key the loss is the
one of loss.pos_weight, bit for bit."""

import pytest
import torch
import torch.nn.functional as F

from resm.cli import main as cli_main
from tests.tasks.test_structure_task import assets, pair_config, write  # noqa: F401 (assets: a fixture)

CPU = torch.device("cpu")


def _pdb(tmp_path):
    path = tmp_path / "TR1.tsv"
    path.write_text(
        "id\tsequence\tpairs\n"
        "t1\tGGGGAAACCCCAUAGCGCGAAAGCGCU\t1:11 2:10 3:9 4:8 15:26 16:25 17:24\n"
        "t2\tGCGCGAAAGCGCAUAGGGCUUCGGCCCU\t1:12 2:11 3:10 4:9 16:27 17:26 18:25 19:24\n"
    )
    return str(path)


def _task(assets, tmp_path, entry):  # noqa: F811 (assets: the fixture)
    from resm.tasks.structure_task import StructureTask

    cfg = pair_config(assets, tmp_path / "o")
    cfg["data"]["train"] = [assets["train"], entry]
    cfg["loss"]["pos_weight"] = 1.5
    return StructureTask(cfg)


def _weighted_bce(logits, target, w):
    """The binary cross-entropy with weight ``w`` (per candidate) on the paired term, written out."""
    return (-(w * target * F.logsigmoid(logits)) - (1 - target) * F.logsigmoid(-logits)).mean()


def test_a_records_weight_gives_exactly_its_weighted_loss(assets, tmp_path):  # noqa: F811
    pytest.importorskip("linearpartition")
    pdb = _pdb(tmp_path)
    plain = _task(assets, tmp_path, {"file": pdb, "repeat": 2})
    weighted = _task(assets, tmp_path, {"file": pdb, "repeat": 2, "pos_weight": 4.0})
    assert plain.train_pos_weights is None
    assert weighted.train_pos_weights == [1.5] * 40 + [4.0] * 4
    net = weighted.model.eval()  # one network for both tasks' losses
    items = {it.key: it for batch in weighted.train_stream(0, 1).iter_epoch(0) for it in batch}
    tr0 = [items[("train", k)] for k in (0, 1, 2)]
    tr1 = [items[("train", 40)], items[("train", 43)]]
    mixed = tr0[:2] + tr1
    with torch.no_grad():
        # default: no record carries a weight, so the loss is loss.pos_weight's, bit for bit, and
        # a batch of TR0 records is unchanged bit for bit beside a weighted file
        tokens, b, _ = plain.kind.batch(mixed)
        logits = net(tokens, b)
        want = F.binary_cross_entropy_with_logits(logits, b["target"], pos_weight=torch.tensor(1.5))
        assert torch.equal(plain.loss(net, mixed, None, CPU)[0], want)
        assert torch.equal(weighted.loss(net, tr0, None, CPU)[0], plain.loss(net, tr0, None, CPU)[0])
        # a mixed batch: each candidate takes its record's weight
        w = torch.tensor([1.5, 1.5, 4.0, 4.0])[b["seq"]]
        got = weighted.loss(net, mixed, None, CPU)[0]
        assert torch.allclose(got, _weighted_bce(logits, b["target"], w), rtol=1e-6, atol=0)
        assert b["target"][b["seq"] >= 2].sum() > 0 and got > want  # the paired term weighs more on TR1's candidates
        # TR1 records alone: exactly the loss with pos_weight 4
        tokens1, b1, _ = weighted.kind.batch(tr1)
        l1 = net(tokens1, b1)
        want1 = F.binary_cross_entropy_with_logits(l1, b1["target"], pos_weight=torch.tensor(4.0))
        assert torch.allclose(weighted.loss(net, tr1, None, CPU)[0], want1, rtol=1e-6, atol=0)
    # validation keeps loss.pos_weight: the validation loss is the same for both
    assert weighted.kind.predictions(net, CPU)[1] == plain.kind.predictions(net, CPU)[1]


def test_a_bad_pos_weight_is_a_one_line_error(assets, tmp_path, capsys):  # noqa: F811
    path = write(pair_config(assets, tmp_path / "x"), tmp_path / "p.yaml")
    conv = {**pair_config(assets, tmp_path / "y"), "head": {"kind": "conv", "proj_dim": 8, "channels": 8}}
    conv["data"] = {k: v for k, v in conv["data"].items() if k not in ("priors", "workers")}
    conv_path = write(conv, tmp_path / "c.yaml")
    a, b = tmp_path / "a.dbn", tmp_path / "b.tsv"  # files that are there: a missing one is said first
    a.write_text(""), b.write_text("")
    capsys.readouterr()
    rule = "pos_weight must be a finite number > 0"
    for cfg, over, what in (
        (path, f"data.train=[{a}, {{file: {b}, pos_weight: 0}}]", f"data.train[1].{rule}"),
        (path, f"data.train=[{{file: {a}, pos_weight: two}}]", f"data.train[0].{rule}"),
        (path, f"data.train=[{{file: {a}, pos_wieght: 2}}]", "data.train[0]: expected a file"),
        (conv_path, f"data.train=[{{file: {a}, pos_weight: 2}}]", "data.train[0].pos_weight is for head.kind pairs"),
    ):
        assert cli_main(["finetune", "--config", str(cfg), over]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and what in err[0], err
