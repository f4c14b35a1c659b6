"""loss.f1_weight: the expected-F1 (soft F1) term of the pair head's loss
(resm.tasks.structure_heads.soft_f1_loss). 0 is the binary cross-entropy alone, bit for bit;
above 0 the term is the mean over the batch's sequences of 1 - 2 sum(p y) / (sum(p) + n), n
the sequence's reference pairs (those that are no candidate included); it carries gradients and
a short training run lowers it; bad values and the 2-D head are one-line errors."""

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from resm.cli import main as cli_main
from tests.conftest import logged
from tests.tasks.test_structure_task import assets, config, pair_config, write  # noqa: F401 (assets: a fixture)

CPU = torch.device("cpu")


def _task(assets, tmp_path, f1_weight=None):  # noqa: F811 (assets: the fixture)
    from resm.tasks.structure_task import StructureTask

    cfg = pair_config(assets, tmp_path / "o")
    if f1_weight is not None:
        cfg["loss"]["f1_weight"] = f1_weight
    return StructureTask(cfg)


def _batch(task):
    """Three training items of different lengths (a padded batch), the middle one given an
    extra reference pair that is no candidate (A-A: candidates are canonical pairs only)."""
    items = sorted((it for batch in task.train_stream(0, 1).iter_epoch(0) for it in batch), key=lambda it: it.key)
    picked = [items[0]]
    for it in items[1:]:
        if len(it.seq) not in {len(p.seq) for p in picked}:
            picked.append(it)
        if len(picked) == 3:
            break
    mid = picked[1]
    pairs = np.array(mid.pairs)
    free = [k for k in range(len(pairs)) if pairs[k] < 0 and mid.seq[k] == "A"]
    a, b = next((x, y) for x in free for y in free if y - x > 3)
    pairs[a], pairs[b] = b, a
    picked[1] = dataclasses.replace(mid, pairs=pairs)
    return picked


def _brute_soft_f1(logits, target, seqs, items):
    """The term written out: one sequence at a time, loops over its candidates and its pairs."""
    terms = []
    for s, it in enumerate(items):
        n = sum(1 for i, j in enumerate(np.asarray(it.pairs)) if j > i)
        if n == 0:
            continue
        tp = mass = 0.0
        for k in range(len(logits)):
            if int(seqs[k]) == s:
                p = 1.0 / (1.0 + np.exp(-float(logits[k])))
                tp += p * float(target[k])
                mass += p
        terms.append(1.0 - 2.0 * tp / (mass + n))
    return float(np.mean(terms))


def test_weight_zero_is_the_cross_entropy_bit_for_bit(assets, tmp_path):  # noqa: F811
    pytest.importorskip("linearpartition")
    plain, zero = _task(assets, tmp_path), _task(assets, tmp_path, 0.0)
    assert plain.loss_cfg.f1_weight == 0.0
    assert "f1_weight" not in plain.fingerprint()["loss"]  # earlier runs' checkpoints still resume
    items = _batch(plain)
    net = plain.model.eval()
    with torch.no_grad():
        tokens, b, _ = plain.kind.batch(items)
        logits = net(tokens, b)
        want = F.binary_cross_entropy_with_logits(logits, b["target"], pos_weight=torch.tensor(1.0))
        for task in (plain, zero):
            loss, info = task.loss(net, items, None, CPU)
            assert torch.equal(loss, want) and "loss_soft_f1" not in info


def test_soft_f1_term_equals_a_per_sequence_brute_force(assets, tmp_path):  # noqa: F811
    pytest.importorskip("linearpartition")
    from resm.heads.pairs import split_by_sequence

    task = _task(assets, tmp_path, 0.5)
    assert task.fingerprint()["loss"]["f1_weight"] == 0.5
    items = _batch(task)
    assert len({len(it.seq) for it in items}) == 3  # padded: three lengths
    net = task.model.eval()
    with torch.no_grad():
        tokens, b, cands = task.kind.batch(items)
        logits = net(tokens, b)
        counts = torch.tensor([len(c) for c in cands])
        assert all(len(x) for x in split_by_sequence(logits, counts)) and b["seq"].max() == 2
        # the middle sequence has a reference pair outside its candidates: it counts in its F1
        assert float(split_by_sequence(b["target"], counts)[1].sum()) < sum(
            1 for i, j in enumerate(items[1].pairs) if j > i
        )
        want = _brute_soft_f1(logits.numpy(), b["target"].numpy(), b["seq"].numpy(), items)
        bce = F.binary_cross_entropy_with_logits(logits, b["target"], pos_weight=torch.tensor(1.0))
        loss, info = task.loss(net, items, None, CPU)
    assert info["loss_soft_f1"] == pytest.approx(want, rel=1e-5)
    assert float(loss) == pytest.approx(float(bce) + 0.5 * want, rel=1e-5)
    # the same batch in another order: each sequence's term is its own
    with torch.no_grad():
        _, info2 = task.loss(net, items[::-1], None, CPU)
    assert info2["loss_soft_f1"] == pytest.approx(want, rel=1e-5)


def test_soft_f1_loss_by_hand():
    """Hand-made candidates of three sequences: one without a reference pair (left out of the
    mean), one with a reference pair among no candidate (n counts it)."""
    from resm.tasks.structure_heads import soft_f1_loss

    logits = torch.tensor([0.0, 2.0, -1.0, 1.0, 3.0, -2.0], requires_grad=True)
    target = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0, 0.0])
    seq = torch.tensor([0, 0, 1, 2, 2, 2])
    n_true = torch.tensor([2, 0, 2])
    p = torch.sigmoid(logits.detach())
    f1_0 = 2 * p[0] / (p[0] + p[1] + 2)
    f1_2 = 2 * (p[3] + p[4]) / (p[3] + p[4] + p[5] + 2)
    got = soft_f1_loss(logits, target, seq, n_true)
    assert float(got.detach()) == pytest.approx(float(1 - (f1_0 + f1_2) / 2), rel=1e-6)
    got.backward()
    g = logits.grad
    assert torch.isfinite(g).all() and g[2] == 0  # sequence 1 has no reference pair: no gradient
    assert g[0] < 0 and g[3] < 0 and g[4] < 0  # raising a reference pair's probability lowers the term
    assert g[1] > 0 and g[5] > 0  # raising a wrong candidate's raises it
    # no sequence with a reference pair: 0, on the graph
    zero = soft_f1_loss(logits, target, seq, torch.tensor([0, 0, 0]))
    assert float(zero.detach()) == 0.0 and zero.requires_grad


def test_gradients_reach_the_head(assets, tmp_path):  # noqa: F811
    pytest.importorskip("linearpartition")
    from resm.structure.metrics import n_pairs
    from resm.tasks.structure_heads import soft_f1_loss

    task = _task(assets, tmp_path, 1.0)
    items = _batch(task)
    net = task.model.train()
    tokens, b, _ = task.kind.batch(items)
    logits = net(tokens, b)
    n_true = torch.tensor([n_pairs(it.pairs) for it in items])
    soft_f1_loss(logits, b["target"], b["seq"], n_true).backward()
    grads = [p.grad for p in task.model.head.parameters() if p.requires_grad]
    assert grads and all(g is None or torch.isfinite(g).all() for g in grads)
    assert sum(float(g.abs().sum()) for g in grads if g is not None) > 0


def test_training_with_the_term_lowers_it(assets, tmp_path):  # noqa: F811
    pytest.importorskip("linearpartition")
    out = tmp_path / "run"
    cfg = pair_config(assets, out, loss={"f1_weight": 1.0})
    assert cli_main(["finetune", "--config", str(write(cfg, tmp_path / "f1.yaml"))]) == 0
    soft = logged(out, key="loss_soft_f1")
    assert sorted(soft) == list(range(1, 61))
    first, last = np.mean([soft[s] for s in range(1, 6)]), np.mean([soft[s] for s in range(56, 61)])
    assert last < 0.9 * first, soft
    assert (out / "structure_model.pt").exists()


def test_a_bad_f1_weight_is_a_one_line_error(assets, tmp_path, capsys):  # noqa: F811
    path = write(pair_config(assets, tmp_path / "x"), tmp_path / "p.yaml")
    conv = write(config(assets, tmp_path / "y"), tmp_path / "c.yaml")
    capsys.readouterr()
    for cfg, over, what in (
        (path, "loss.f1_weight=-1", "loss.f1_weight must be a finite number >= 0, got -1.0"),
        (path, "loss.f1_weight=.nan", "loss.f1_weight: expected a finite number"),
        (path, "loss.f1_weight=two", "loss.f1_weight: expected a number, got 'two'"),
        (conv, "loss.f1_weight=1", "loss.f1_weight is for head.kind pairs"),
    ):
        assert cli_main(["finetune", "--config", str(cfg), over]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and what in err[0], err
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
    # the 2-D head takes 0, the default
    from resm.tasks.structure_task import StructureTask

    assert StructureTask({**config(assets, tmp_path / "z"), "loss": {"f1_weight": 0}}).loss_cfg.f1_weight == 0
