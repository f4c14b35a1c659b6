"""Brute-force references for the pretraining path, written from the definitions in plain
Python / numpy: which positions the masking may select and what it puts there, the masked-LM
loss over a padded batch and across accumulated micro-batches, crops at max_length and around
it, each epoch's records over ranks, the learning-rate schedule at its ends, the unigram
baseline, and an exact resume of a run with gradient accumulation."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from resm.alphabet import BOS, EOS, MASK, PAD, VOCAB_SIZE, pad_batch
from resm.data.masking import IGNORE_INDEX, MaskingConfig, mask_batch, mlm_loss
from resm.data.pretrain import (
    PretrainDataConfig,
    PretrainStream,
    center_crop,
    iter_split_records,
    unigram_entropy,
)
from resm.mapping import get_scheme
from resm.train_config import OptimConfig, TrainConfig

KDNY = get_scheme("kdny")


def write_fasta(path: Path, records) -> str:
    path.write_text("".join(f">{rid}\n{seq}\n" for rid, seq in records))
    return str(path)


def rand_rna(rng, n: int, alphabet: str = "ACGU") -> str:
    return "".join(rng.choice(list(alphabet), n))


# ----------------------------------------------------------------------------- masking
def reference_mask(tokens: torch.Tensor, letters, cfg: MaskingConfig, seed: int):
    """``mask_batch`` from its definition, position by position, fed the same random numbers in
    the order its steps need them: span 1, a score per position and a rounding number per row;
    span k, a run-start number per position (from k - 1 before the row) and a fallback score per
    position; then an action number and a letter pick per position."""
    g = torch.Generator().manual_seed(seed)
    B, T = tokens.shape
    k = cfg.span
    if k == 1:
        u = torch.rand((B, T), generator=g).tolist()
        r = torch.rand((B,), generator=g).tolist()
    else:  # a run start per position from k - 1 before the row on, and a fallback score
        starts = torch.rand((B, T + k - 1), generator=g).tolist()
        fix = torch.rand((B, T), generator=g).tolist()
    action = torch.rand((B, T), generator=g).tolist()
    pick = torch.randint(0, len(letters), (B, T), generator=g).tolist()
    toks = tokens.tolist()
    inputs = [row[:] for row in toks]
    labels = [[IGNORE_INDEX] * T for _ in range(B)]
    for b in range(B):
        eligible = [t for t in range(T) if toks[b][t] in letters]
        n = len(eligible)
        if n == 0:
            continue
        if k == 1:
            count = min(n, max(1, math.floor(n * cfg.mask_prob + r[b])))  # stochastic rounding of n p
            chosen = sorted(eligible, key=lambda t: u[b][t])[:count]  # that many eligible positions
        else:
            q = 1 - (1 - cfg.mask_prob) ** (1 / k)  # P(t covered) = 1 - (1 - q)^k = p
            run_starts = [j - (k - 1) for j in range(T + k - 1) if starts[b][j] < q]
            chosen = [t for t in eligible if any(s <= t < s + k for s in run_starts)]
            if not chosen:  # one run from the eligible position of the highest fallback score
                first = max(eligible, key=lambda t: fix[b][t])
                chosen = [t for t in eligible if first <= t < first + k]
        for t in chosen:
            labels[b][t] = toks[b][t]
            a = action[b][t]
            if a < cfg.mask_token_frac:
                inputs[b][t] = MASK
            elif a < cfg.mask_token_frac + cfg.random_token_frac:
                inputs[b][t] = letters[pick[b][t]]
    return torch.tensor(inputs), torch.tensor(labels)


def special_rich_batch(scheme, seed: int) -> torch.Tensor:
    """Padded sequences of the scheme's letters with unknown letters and a sequence of unknown
    letters only, lengths 1..60."""
    rng = np.random.default_rng(seed)
    letters = np.asarray(scheme.letter_ids)
    seqs = []
    for n in (1, 2, 7, 60, 33, 5):
        ids = letters[rng.integers(0, len(letters), n)]
        ids[rng.random(n) < 0.1] = scheme.unknown_id
        seqs.append(ids)
    seqs.append(np.full(4, scheme.unknown_id))
    return pad_batch(seqs)


@pytest.mark.parametrize("scheme", ["kdny", "protein", "codon3"])
@pytest.mark.parametrize(
    "cfg",
    [
        MaskingConfig(),
        MaskingConfig(mask_prob=0.5, mask_token_frac=0.5, random_token_frac=0.5),
        MaskingConfig(0.05),
        MaskingConfig(span=3),
        MaskingConfig(0.02, span=4),
    ],
    ids=["bert", "half-random", "sparse", "span3", "sparse-span4"],
)
@pytest.mark.parametrize("seed", [0, 1, 7])
def test_mask_batch_is_the_reference_draw_for_draw(scheme, cfg, seed):
    s = get_scheme(scheme)
    tokens = special_rich_batch(s, seed)
    letters = list(s.letter_ids)
    inputs, labels = mask_batch(tokens, letters, cfg, torch.Generator().manual_seed(seed))
    ref_inputs, ref_labels = reference_mask(tokens, letters, cfg, seed)
    assert torch.equal(labels, ref_labels)
    assert torch.equal(inputs, ref_inputs)
    # what the definition implies, read off the reference: targets only on the scheme's letters
    picked = ref_labels != IGNORE_INDEX
    assert not picked[(tokens == BOS) | (tokens == EOS) | (tokens == PAD) | (tokens == s.unknown_id)].any()
    assert picked[:-1].sum(1).min() >= 1 and not picked[-1].any()  # all-unknown row: nothing
    changed = picked & (inputs != MASK) & (inputs != tokens)
    assert set(inputs[changed].tolist()) <= set(letters)  # random tokens: the scheme's letters only


def test_masked_count_per_row_is_stochastic_rounding_of_the_rate():
    """Each row gets floor(n p) or floor(n p) + 1 targets (n: its letters), ceil with
    probability frac(n p), so the expected count is exactly n p (n p >= 1)."""
    tokens = pad_batch([np.asarray(KDNY.letter_ids)[np.arange(n) % 4] for n in (10, 37, 100, 333)])
    n = np.array([10, 37, 100, 333])
    counts = np.array(
        [
            (mask_batch(tokens, KDNY.letter_ids, generator=torch.Generator().manual_seed(s))[1] != -100).sum(1).numpy()
            for s in range(2000)
        ]
    )
    lo = np.floor(n * 0.15)
    assert ((counts == lo) | (counts == lo + 1)).all()
    assert np.abs(counts.mean(0) - n * 0.15).max() < 0.05  # 2000 draws: se <= 0.011


# ----------------------------------------------------------------------------- loss
def reference_loss(logits: np.ndarray, labels: np.ndarray, letters=None) -> float:
    """Mean over labelled positions of -log softmax (over all tokens, or the letters only)."""
    terms = []
    B, T, V = logits.shape
    allowed = list(range(V)) if letters is None else list(letters)
    for b in range(B):
        for t in range(T):
            y = int(labels[b, t])
            if y == IGNORE_INDEX:
                continue
            z = logits[b, t, allowed].astype(np.float64)
            m = z.max()
            terms.append(-(logits[b, t, y] - m - math.log(np.exp(z - m).sum())))
    return float(np.mean(terms))


@pytest.mark.parametrize("restrict", [False, True])
def test_mlm_loss_is_the_token_mean_over_masked_positions_of_a_padded_batch(restrict):
    tokens = special_rich_batch(KDNY, 3)
    g = torch.Generator().manual_seed(3)
    _, labels = mask_batch(tokens, KDNY.letter_ids, MaskingConfig(0.3), g)
    logits = torch.randn(*tokens.shape, VOCAB_SIZE, generator=g) * 3
    letters = KDNY.letter_ids if restrict else None
    got = float(mlm_loss(logits, labels, letters))
    assert got == pytest.approx(reference_loss(logits.numpy(), labels.numpy(), letters), rel=1e-6, abs=1e-6)
    # padding does not count: the same rows padded wider give the same loss
    wide = torch.full((tokens.shape[0], tokens.shape[1] + 5), IGNORE_INDEX)
    wide[:, : tokens.shape[1]] = labels
    wide_logits = torch.randn(tokens.shape[0], tokens.shape[1] + 5, VOCAB_SIZE)
    wide_logits[:, : tokens.shape[1]] = logits
    assert float(mlm_loss(wide_logits, wide, letters)) == pytest.approx(got, rel=1e-6)


def _tiny_model(seed: int = 0):
    from resm.backbone.load import init_model

    return init_model("tiny", seed=seed).train()


def _grads(model) -> dict[str, torch.Tensor]:
    return {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}


def test_accumulated_micro_batches_average_their_own_means(tmp_path):
    """grad_accum k: the step's gradient is the mean over the k micro-batches of the gradient of
    each one's own mean over its masked positions (micro-batch weighted, as TrainConfig says), not
    the mean over all their masked positions: one batch of 4 equals 2 accumulated micro-batches of
    2 exactly when the two halves hold as many masked positions."""
    from resm.engines import TorchEngine

    letters = np.asarray(KDNY.letter_ids)
    rng = np.random.default_rng(0)
    seqs = [letters[rng.integers(0, 4, n)] for n in (20, 20, 9, 30)]
    tokens = pad_batch(seqs)
    _, labels = mask_batch(tokens, KDNY.letter_ids, MaskingConfig(0.3), torch.Generator().manual_seed(0))
    labels[2:] = IGNORE_INDEX  # rows 2, 3: a few chosen targets only, fewer than rows 0, 1 hold
    labels[2, 3] = tokens[2, 3]
    labels[3, 5] = tokens[3, 5]
    halves = [(tokens[:2], labels[:2]), (tokens[2:], labels[2:])]
    counts = [int((lab != IGNORE_INDEX).sum()) for _, lab in halves]
    assert counts[0] != counts[1]

    def run(batches, accum):
        model = _tiny_model()
        engine = TorchEngine(model, OptimConfig(), TrainConfig(out_dir=str(tmp_path), grad_accum=accum), "cpu")
        for toks, lab in batches:
            engine.backward(mlm_loss(model(toks)["logits"], lab))
        return _grads(model), model

    accumulated, _ = run(halves, 2)
    # reference: the mean of the two micro-batch means, and the token-weighted mean
    model = _tiny_model()
    a = mlm_loss(model(tokens[:2])["logits"], labels[:2])
    b = mlm_loss(model(tokens[2:])["logits"], labels[2:])
    ((a + b) / 2).backward(retain_graph=True)
    micro_mean = _grads(model)
    model.zero_grad()
    ((a * counts[0] + b * counts[1]) / sum(counts)).backward()
    token_mean = _grads(model)
    for k in micro_mean:
        assert torch.allclose(accumulated[k], micro_mean[k], atol=1e-7, rtol=1e-5), k
    assert any(not torch.allclose(accumulated[k], token_mean[k], atol=1e-6, rtol=1e-3) for k in token_mean)
    # halves with equal masked counts: 2 x 2 accumulated == one batch of 4
    lab_eq = labels.clone()
    lab_eq[2:] = IGNORE_INDEX
    lab_eq[2, 3], lab_eq[2, 4], lab_eq[3, 5], lab_eq[3, 6] = tokens[2, 3], tokens[2, 4], tokens[3, 5], tokens[3, 6]
    lab_eq[:2] = IGNORE_INDEX
    lab_eq[0, 1], lab_eq[0, 2], lab_eq[1, 7], lab_eq[1, 9] = tokens[0, 1], tokens[0, 2], tokens[1, 7], tokens[1, 9]
    acc2, _ = run([(tokens[:2], lab_eq[:2]), (tokens[2:], lab_eq[2:])], 2)
    one, _ = run([(tokens, lab_eq)], 1)
    for k in one:
        assert torch.allclose(acc2[k], one[k], atol=1e-7, rtol=1e-4), k


# ----------------------------------------------------------------------------- crops
def _crop_cfg(path, max_length, **kw) -> PretrainDataConfig:
    base = dict(train=[path], max_length=max_length, min_length=1, tokens_per_batch=10_000, val_fraction=0.0)
    base.update(kw)
    return PretrainDataConfig(**base)


def test_crops_at_and_around_max_length(tmp_path):
    """A record of max_length or fewer residues is never cropped; one of max_length + d gets a
    window of exactly max_length residues, starting at each of 0..d (uniformly), and the model
    sees it between BOS and EOS like any other record."""
    L = 12
    rng = np.random.default_rng(0)
    lengths = {"short": L - 1, "exact": L, "plus1": L + 1, "plus2": L + 2, "plus9": L + 9}
    recs = [(rid, rand_rna(rng, n)) for rid, n in lengths.items()]
    cfg = _crop_cfg(write_fasta(tmp_path / "c.fa", recs), L)
    full = {rid: KDNY.encode(seq) for rid, seq in recs}
    stream = PretrainStream(cfg)
    starts: dict[str, list[int]] = {rid: [] for rid in lengths}
    for epoch in range(60):
        batches = list(stream.iter_epoch(epoch, with_ids=True))
        items = [it for b in batches for it in b]
        assert sorted(rid for rid, _ in items) == sorted(lengths)  # every record once per epoch
        for rid, ids in items:
            whole = full[rid]
            assert len(ids) == min(L, len(whole))
            found = [s for s in range(len(whole) - len(ids) + 1) if np.array_equal(whole[s : s + len(ids)], ids)]
            assert found, rid
            starts[rid].append(found[0])
        for batch in batches:
            padded = pad_batch([ids for _, ids in batch])
            for row, (_, ids) in zip(padded, batch):
                n = len(ids)
                assert row[0] == BOS and row[n + 1] == EOS and (row[n + 2 :] == PAD).all()
                assert torch.equal(row[1 : n + 1], torch.as_tensor(ids))
        assert stream.stats["cropped"] == 3
    assert set(starts["short"]) == set(starts["exact"]) == {0}
    assert set(starts["plus1"]) == {0, 1}
    assert set(starts["plus2"]) == {0, 1, 2}
    assert set(starts["plus9"]) <= set(range(10)) and len(set(starts["plus9"])) >= 7


def test_center_crop_reference():
    for n in range(1, 15):
        ids = np.arange(n)
        for L in range(1, 12):
            got = center_crop(ids, L)
            if n <= L:
                assert np.array_equal(got, ids)
            else:  # as many residues cut on the left as on the right, the odd one on the right
                left = (n - L) // 2
                assert np.array_equal(got, ids[left : left + L]) and n - L - left - left in (0, 1)


# ----------------------------------------------------------------------------- epochs and ranks
@pytest.mark.parametrize("world", [1, 2, 3])
def test_each_epoch_gives_every_training_record_once_over_the_ranks(tmp_path, world):
    rng = np.random.default_rng(1)
    recs = [(f"RF{i % 5:05d}|s{i}", rand_rna(rng, int(rng.integers(8, 50)))) for i in range(41)]
    recs.append(("dup", recs[0][1]))  # a duplicate: dropped before the split
    cfg = _crop_cfg(
        write_fasta(tmp_path / "c.fa", recs), 30, val_fraction=0.3, tokens_per_batch=64, bucket_size=7, seed=5
    )
    split = [rid for rid, _ in iter_split_records(cfg, "train")]
    assert "dup" not in split and len(set(split)) == len(split)
    streams = [PretrainStream(cfg, r, world) for r in range(world)]
    orders = []
    for epoch in range(3):
        per_rank = [[rid for b in s.iter_epoch(epoch, with_ids=True) for rid, _ in b] for s in streams]
        for r, ids in enumerate(per_rank):  # record k of the split goes to rank k % world
            assert sorted(ids) == sorted(split[r::world])
        assert sorted(sum(per_rank, [])) == sorted(split)
        orders.append(per_rank[0])
    assert orders[0] != orders[1] or orders[1] != orders[2]  # batch order reshuffled per epoch
    # the endless iterator is the epochs one after the other
    s = PretrainStream(cfg, 0, world)
    n0 = sum(1 for _ in s.iter_epoch(0))
    n1 = sum(1 for _ in s.iter_epoch(1))
    it = iter(PretrainStream(cfg, 0, world))
    endless = [next(it) for _ in range(n0 + n1)]
    expected = list(s.iter_epoch(0)) + list(s.iter_epoch(1))
    assert all(len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b)) for a, b in zip(endless, expected))


# ----------------------------------------------------------------------------- unigram baseline
def test_unigram_baseline_is_the_entropy_of_the_letters_masking_can_target(tmp_path):
    """The baseline is the loss of always predicting the corpus frequencies of the targets; the
    masking never targets the unknown letter (N), so it does not count."""
    from resm.tasks.mlm import MLMTask

    rng = np.random.default_rng(2)
    recs = [(f"s{i}", rand_rna(rng, 40, "AACGUNNN")) for i in range(12)]
    path = write_fasta(tmp_path / "c.fa", recs)
    task = MLMTask(
        {
            "model": {"arch": "tiny"},
            "data": {"train": [path], "val_fraction": 1.0, "max_length": 64, "min_length": 5},
        }
    )
    with torch.no_grad():
        task.validate(task.model.eval(), torch.device("cpu"))
    counts: dict[str, int] = {}
    for _, seq in recs:
        for c in seq:
            if c in "ACGU":
                counts[c] = counts.get(c, 0) + 1
    total = sum(counts.values())
    expected = -sum(v / total * math.log(v / total) for v in counts.values())
    assert task.baseline == pytest.approx(expected, rel=1e-12)
    batch = [KDNY.encode(seq) for _, seq in recs]
    assert unigram_entropy([batch], KDNY.letter_ids) == pytest.approx(expected, rel=1e-12)


# ----------------------------------------------------------------------------- schedule
def reference_lr(step: int, o: OptimConfig, max_steps: int) -> float:
    """The rate of optimiser step ``step`` (1 .. max_steps) from the documented schedule:
    warm-up lr * s / W for s <= W, then decay from lr (t = 0 at step W) to lr * min_lr_ratio at
    step max_steps (t = 1)."""
    W, N = o.warmup_steps, max_steps
    if step <= W:
        return o.lr * step / W
    if o.schedule == "constant":
        return o.lr
    t = (step - W) / (N - W)
    decay = 0.5 * (1 + math.cos(math.pi * t)) if o.schedule == "cosine" else 1 - t
    return o.lr * (o.min_lr_ratio + (1 - o.min_lr_ratio) * decay)


@pytest.mark.parametrize("schedule", ["cosine", "linear", "constant"])
@pytest.mark.parametrize("warmup,max_steps", [(4, 10), (0, 6), (1, 3), (5, 6), (7, 7)])
def test_learning_rate_of_every_step(tmp_path, schedule, warmup, max_steps):
    from resm.engines import TorchEngine

    o = OptimConfig(lr=0.01, warmup_steps=warmup, schedule=schedule, min_lr_ratio=0.2)
    engine = TorchEngine(
        torch.nn.Linear(2, 2), o, TrainConfig(out_dir=str(tmp_path), max_steps=max_steps), torch.device("cpu")
    )
    used = []
    for _ in range(max_steps):  # the rate each step uses, read as the loop logs it
        used.append(engine.lr)
        engine.optimizer.step()
        engine.scheduler.step()
    expected = [reference_lr(s, o, max_steps) for s in range(1, max_steps + 1)]
    assert used == pytest.approx(expected, rel=1e-12, abs=0)
    if warmup:
        assert used[warmup - 1] == pytest.approx(o.lr)  # the warm-up ends at lr
    if warmup < max_steps and schedule != "constant":
        assert used[-1] == pytest.approx(o.lr * o.min_lr_ratio)  # the last step uses the floor
        assert used.count(max(used)) == 1  # the peak is used once


# ----------------------------------------------------------------------------- exact resume
def _resume_cfg(tmp_path: Path, out: str) -> dict:
    rng = np.random.default_rng(3)
    fa = tmp_path / "corpus.fa"
    if not fa.exists():
        write_fasta(fa, [(f"RF{i % 4:05d}|s{i}", rand_rna(rng, int(rng.integers(12, 40)))) for i in range(30)])
    return {
        "model": {"arch": "tiny", "init_seed": 2},
        "data": {
            "train": [str(fa)],
            "max_length": 24,
            "min_length": 5,
            "tokens_per_batch": 120,
            "bucket_size": 8,
            "val_fraction": 0.0,
            "seed": 4,
        },
        "optim": {"lr": 3e-3, "warmup_steps": 2},
        "train": {
            "out_dir": str(tmp_path / out),
            "max_steps": 7,
            "grad_accum": 3,
            "log_every": 2,
            "val_every": 0,
            "ckpt_every": 3,  # not a multiple of log_every: a checkpoint inside a log window
            "keep_last": 5,
            "progress": False,
            "device": "cpu",
        },
    }


def _log(run: Path) -> list[dict]:
    out = []
    for line in (run / "log.jsonl").read_text().splitlines():
        rec = json.loads(line)
        out.append({k: v for k, v in rec.items() if k not in ("tokens_per_s", "elapsed_s")})
    return out


def test_stop_and_resume_is_the_uninterrupted_run(tmp_path):
    """Train 7 steps of 3 accumulated micro-batches; train the same to the end, throw away what
    followed step 3's checkpoint (as a kill between steps 3 and 4 would, even in the middle of
    an accumulation window) and resume: weights, optimiser state, data position, masking
    generator and every log line (loss, lr, tokens seen) are identical."""
    from resm.backbone.load import CheckpointError, load_backbone
    from resm.tasks.mlm import MLMTask
    from resm.train import run_task

    sections = set(MLMTask.sections)
    run_task(MLMTask, _resume_cfg(tmp_path, "ref"), sections)
    cfg = _resume_cfg(tmp_path, "cut")
    run_task(MLMTask, cfg, sections)
    cut = tmp_path / "cut"
    for later in ("step_00000006", "step_00000007"):
        shutil.rmtree(cut / "checkpoints" / later)
    (cut / "model.pt").unlink()
    run_task(MLMTask, cfg, sections)  # resumes at step 3

    ref = tmp_path / "ref"
    a = load_backbone(ref / "model.pt").model.state_dict()
    b = load_backbone(cut / "model.pt").model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    ea = torch.load(ref / "checkpoints/step_00000007/engine.pt", weights_only=True)
    eb = torch.load(cut / "checkpoints/step_00000007/engine.pt", weights_only=True)
    for pa, pb in zip(ea["optimizer"]["state"].values(), eb["optimizer"]["state"].values()):
        assert all(torch.equal(pa[k], pb[k]) for k in pa)
    assert ea["scheduler"] == eb["scheduler"]
    ta = json.loads((ref / "checkpoints/step_00000007/trainer_rank0.json").read_text())
    tb = json.loads((cut / "checkpoints/step_00000007/trainer_rank0.json").read_text())
    for key in ("step", "tokens_seen", "data", "mask_rng", "rng"):
        assert ta[key] == tb[key], key
    assert _log(ref) == _log(cut)
    # a kept window that is not one is refused in one line naming the file
    state = cut / "checkpoints/step_00000007/trainer_rank0.json"
    state.write_text(json.dumps({**tb, "window": {"loss": "x"}}))
    with pytest.raises(
        CheckpointError, match=r"trainer_rank0.json: not a complete trainer state \(unusable 'window'\)$"
    ):
        run_task(MLMTask, cfg, sections)


# ----------------------------------------------------------------------------- processes
def _val_cfg(path: str, tokens: int) -> dict:
    return {
        "model": {"arch": "tiny", "init_seed": 1},
        "data": {"train": [path], "val_fraction": 1.0, "max_length": 64, "min_length": 5, "tokens_per_batch": tokens},
        "validation": {"max_records": 9},
    }


def _validate_in_group(rank: int, world: int, store: str, cfgs: list, out: str) -> None:
    """One process of a gloo group: each config's validation metrics as the loop reduces them."""
    import torch.distributed as dist

    from resm.tasks.mlm import MLMTask
    from resm.train import _all_mean

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    try:
        metrics = []
        for cfg in cfgs:
            task = MLMTask(cfg)
            with torch.no_grad():
                metrics.append(_all_mean(task.validate(task.model.eval(), torch.device("cpu"))))
        Path(out, f"{rank}.json").write_text(json.dumps(metrics))
    finally:
        dist.destroy_process_group()


def test_validation_over_two_processes_is_the_one_process_value(tmp_path):
    """The validation loss is the mean over every masked position whatever the number of
    processes: with one batch (the second process has none) and with three batches shared 2 + 1
    (unequal counts of masked positions), two processes report what one does."""
    import torch.multiprocessing as mp

    from resm.tasks.mlm import MLMTask

    rng = np.random.default_rng(4)
    path = write_fasta(tmp_path / "v.fa", [(f"s{i}", rand_rna(rng, int(rng.integers(10, 60)))) for i in range(9)])
    cfgs = [_val_cfg(path, 10_000), _val_cfg(path, 190)]
    alone = []
    for cfg in cfgs:
        task = MLMTask(cfg)
        with torch.no_grad():
            alone.append(task.validate(task.model.eval(), torch.device("cpu")))
    assert len(task._val) == 3  # the second config: three batches
    mp.spawn(_validate_in_group, args=(2, str(tmp_path / "store"), cfgs, str(tmp_path)), nprocs=2)
    for rank in (0, 1):
        for one, two in zip(alone, json.loads((tmp_path / f"{rank}.json").read_text())):
            assert two["val_loss"] == pytest.approx(one["val_loss"], rel=1e-12)
            assert two["n_masked"] == one["n_masked"]
            assert two["unigram_baseline"] == pytest.approx(one["unigram_baseline"], rel=1e-12)


def test_collectives_of_an_nccl_group_use_the_gpu(monkeypatch):
    """A process group started with NCCL alone (init_distributed on GPUs) has no CPU backend:
    the loop's reductions must hand it CUDA tensors."""
    import torch.distributed as dist

    from resm import train

    monkeypatch.setattr(dist, "get_backend_config", lambda group=None: "cuda:nccl")
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 3)
    assert train._collective_device() == torch.device("cuda", 3)
    monkeypatch.setattr(dist, "get_backend_config", lambda group=None: "cpu:gloo,cuda:gloo")
    assert train._collective_device() == torch.device("cpu")
