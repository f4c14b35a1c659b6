"""The non-canonical scorer's fit (resm.tasks.noncanonical_scorer.train_scorer) runs through the one
training loop (resm.train.Trainer, in memory): it learns, it is seeded, and it is plain AdamW
over the same batches as the loop the scorer had of its own before, but for weight decay on the
biases, which the loop's parameter groups leave out."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn

from resm.structure.noncanonical import NonCanonicalConfig, NonCanonicalScorer, n_features
from resm.tasks.noncanonical_scorer import TrainOptions, train_scorer

CFG = NonCanonicalConfig(hidden=8, members=2, layers=1)


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices; and one thread sums in one order
    yield
    torch.set_num_threads(n)


def _problem(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Features of the scorer's width whose label is the sign of one fixed direction (linearly
    separable, about a third positive)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, n_features(CFG))).astype(np.float32)
    w = np.random.default_rng(99).normal(size=n_features(CFG))
    y = (X @ w > 0.4 * np.linalg.norm(w)).astype(np.float32)
    return X, y


def _reference_fit(X, y, cfg, opts: TrainOptions, decay_biases: bool) -> NonCanonicalScorer:
    """The loop train_scorer ran of its own before it went through resm.train.Trainer (AdamW
    with torch's defaults, constant rate, no clipping, a permutation per epoch from one
    generator per member), with weight decay on the biases (as it had) or not (as the training
    loop's parameter groups have it)."""
    torch.manual_seed(opts.seed)
    scorer = NonCanonicalScorer(cfg)
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    for k, member in enumerate(scorer.members):
        torch.manual_seed(opts.seed + k)
        rng = np.random.default_rng(opts.seed + k)
        weights = [p for p in member.parameters() if p.ndim >= 2]
        biases = [p for p in member.parameters() if p.ndim < 2]
        groups = [
            {"params": weights, "weight_decay": opts.weight_decay},
            {"params": biases, "weight_decay": opts.weight_decay if decay_biases else 0.0},
        ]
        opt = torch.optim.AdamW(groups, lr=opts.lr)
        for _ in range(opts.epochs):
            order = torch.from_numpy(rng.permutation(len(X)))
            for s in range(0, len(X), opts.batch):
                idx = order[s : s + opts.batch]
                loss = nn.functional.binary_cross_entropy_with_logits(member(Xt[idx])[:, 0], yt[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
    return scorer.eval()


def _max_diff(a: nn.Module, b: nn.Module) -> float:
    sa, sb = a.state_dict(), b.state_dict()
    return max(float((sa[k] - sb[k]).abs().max()) for k in sa)


def test_the_fit_learns_a_separable_problem_and_its_loss_falls():
    X, y = _problem(600, 0)
    scorer, losses = train_scorer(X, y, CFG, TrainOptions(epochs=6, batch=64, lr=1e-2))
    assert len(losses) == 6
    assert losses[-1] < 0.25 * losses[0]
    assert all(b < a for a, b in zip(losses, losses[1:]))
    Xh, yh = _problem(400, 1)
    with torch.no_grad():
        fitted = ((scorer(torch.from_numpy(X)) > 0).numpy() == (y > 0)).mean()
        held = ((scorer(torch.from_numpy(Xh)) > 0).numpy() == (yh > 0)).mean()
    assert fitted > 0.99  # the training rows are separated
    assert held > 0.85 > 1 - yh.mean()  # and held-out rows of the same rule, well above 'all negative'
    assert not torch.equal(scorer.members[0][0].weight, scorer.members[1][0].weight)  # a seed each


def test_the_fit_is_determined_by_its_seed():
    X, y = _problem(300, 2)
    opts = TrainOptions(epochs=2, batch=50, lr=5e-3, seed=3)
    a, la = train_scorer(X, y, CFG, opts)
    b, lb = train_scorer(X, y, CFG, opts)
    c, _ = train_scorer(X, y, CFG, TrainOptions(epochs=2, batch=50, lr=5e-3, seed=4))
    assert la == lb and _max_diff(a, b) == 0.0
    assert _max_diff(a, c) > 1e-3


def test_the_fit_is_the_former_loop_but_for_weight_decay_on_biases():
    X, y = _problem(500, 5)  # 500 rows in batches of 64: the last batch of each epoch is short
    opts = TrainOptions(epochs=3, batch=64, lr=5e-3, weight_decay=0.05, seed=1)
    got, _ = train_scorer(X, y, CFG, opts)
    # the same weights as the former loop with the biases left out of the decay ...
    assert _max_diff(got, _reference_fit(X, y, CFG, opts, decay_biases=False)) <= 1e-6
    # ... not as the former loop itself, which decayed them too
    assert _max_diff(got, _reference_fit(X, y, CFG, opts, decay_biases=True)) > 1e-6
    # without weight decay the two are one and the same
    plain = TrainOptions(epochs=3, batch=64, lr=5e-3, weight_decay=0.0, seed=1)
    got, _ = train_scorer(X, y, CFG, plain)
    assert _max_diff(got, _reference_fit(X, y, CFG, plain, decay_biases=True)) <= 1e-6


def test_the_fit_refuses_no_candidates():
    with pytest.raises(ValueError, match="no candidates"):
        train_scorer(np.zeros((0, n_features(CFG)), np.float32), np.zeros(0, np.float32), CFG)


def test_the_member_batches_resume_where_they_stopped():
    from resm.tasks.noncanonical_scorer import _RowBatches

    whole = _RowBatches(10, 4, 7)  # 3 batches an epoch (4, 4, 2)
    it = iter(whole)
    first = [next(it) for _ in range(7)]
    assert [e for e, _ in first] == [0, 0, 0, 1, 1, 1, 2]
    assert sorted(torch.cat([r for e, r in first if e == 1]).tolist()) == list(range(10))
    assert not torch.equal(first[0][1], first[3][1])  # another order each epoch
    part = _RowBatches(10, 4, 7)
    it = iter(part)
    for _ in range(4):
        next(it)
    again = _RowBatches(10, 4, 7)
    again.load_state_dict(part.state_dict())
    nxt = next(iter(again))
    assert nxt[0] == 1 and torch.equal(nxt[1], first[4][1])
