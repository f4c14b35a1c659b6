"""Heads on cached embeddings, trained by the one loop (resm.train.Trainer)."""

import copy

import numpy as np
import torch

from resm.compare.training import WindowStream, train_cached, window_batch
from resm.heads.pair_map import pair_loss
from tests.conftest import tiny_cached_structure_task


def test_window_stream_is_seeded_and_resumable():
    a = WindowStream([30, 12, 50], batch=4, crop=16, seed=7)
    first = [b for _, b in zip(range(5), a)]
    assert all(len(b) == 4 and all(0 <= s < e <= s + 16 for _, s, e in b) for b in first)
    state = a.state_dict()
    b = WindowStream([30, 12, 50], batch=4, crop=16, seed=7)
    assert [x for _, x in zip(range(5), b)] == first
    b.load_state_dict(state)
    assert next(iter(a)) == next(iter(b))


def test_structure_head_trains_through_the_loop_and_is_deterministic(tmp_path):
    first, sec, embs, recs = tiny_cached_structure_task(12)
    seq, cfg = recs[0].seq, first.head_cfg

    def whole_loss(head):  # the four whole records, one fixed batch (training draws crops)
        h, mask, nuc, target = window_batch(embs, recs, [(k, 0, len(seq)) for k in range(len(recs))])
        with torch.no_grad():
            return float(pair_loss(head.eval()(h, mask, nuc=nuc), target, mask, sec.pos_weight, cfg.min_loop))

    heads, losses = [], []
    for _ in range(2):
        task = tiny_cached_structure_task(12)[0]
        before = whole_loss(copy.deepcopy(task.model))
        losses.append(train_cached(task, sec, "cpu"))
        # it learns: the loss on the whole records falls (observed 0.768 -> 0.646 in 12 steps;
        # a head the loop never stepped stays at 0.768)
        assert whole_loss(task.model) < 0.9 * before, (before, whole_loss(task.model))
        heads.append(task.model)
        assert len(task.losses) == sec.steps and not task.model.training
    assert losses[0] == losses[1] and np.isfinite(losses[0])
    for p, q in zip(heads[0].parameters(), heads[1].parameters()):
        torch.testing.assert_close(p, q)
