"""The GPU path's device handling, checked on the CPU: each function runs with its model and
inputs on a stand-in GPU (tests/gpu/virtual_cuda.py, which refuses what CUDA refuses: a CPU
tensor meeting a GPU one, ``.numpy()`` of a GPU tensor, a GPU draw from a CPU generator) and
gives the CPU's results exactly (the arithmetic is the CPU's). The real GPU checks are
tests/gpu/test_gpu.py; these run in the ordinary suite."""

import warnings

import numpy as np
import pytest
import torch

from tests.conftest import tiny_cached_structure_task
from tests.gpu.virtual_cuda import DeviceMismatch, VirtualCuda, on_gpu, pretend_cuda


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():  # autocast on 'cuda' without CUDA: torch disables it, saying so
        warnings.simplefilter("ignore")
        yield


def test_the_stand_in_refuses_what_cuda_refuses_and_allows_what_it_allows():
    x = torch.arange(6.0)
    with VirtualCuda() as vc:
        g = x.to("cuda")
        assert on_gpu(g) and g.device == torch.device("cuda", 0) and not on_gpu(x)
        for bad in (
            lambda: g + torch.ones(6),
            lambda: torch.cat([g, x]),
            lambda: g.numpy(),
            lambda: x[torch.tensor([0, 1], device="cuda")],
            lambda: torch.rand(3, generator=torch.Generator(), device="cuda"),
            lambda: torch.nn.Linear(6, 2)(g),
        ):
            with pytest.raises(DeviceMismatch):
                bad()
        assert on_gpu(g * torch.tensor(2.0)) and on_gpu(g[torch.tensor([0, 1])])  # CPU scalars and indices
        assert float(g.sum()) == 15.0 and vc.syncs == 1
        back = g.cpu()
        assert not on_gpu(back) and back.numpy().tolist() == x.tolist()
        lin = torch.nn.Linear(6, 2).to("cuda")
        assert on_gpu(lin(g)) and all(on_gpu(p) for p in lin.parameters())
        assert on_gpu(torch.zeros(2, device=g.device)) and on_gpu(g.new_zeros(2)) and on_gpu(torch.zeros_like(g))


def test_noncanonical_scoring_follows_the_scorers_device():
    """score_candidates of a scorer on the GPU: it handed CPU features to the GPU weights."""
    from resm.structure.noncanonical import NonCanonicalConfig, NonCanonicalScorer, score_candidates

    seq = "GGGAAAGAAACCCGAUAGCA"
    part = np.full(len(seq), -1)
    for a, b in ((0, 12), (1, 11), (2, 10)):
        part[a], part[b] = b, a
    torch.manual_seed(0)
    scorer = NonCanonicalScorer(NonCanonicalConfig(hidden=8, layers=1))
    ref = score_candidates(scorer, seq, part, None)
    with VirtualCuda():
        got = score_candidates(scorer.to("cuda"), seq, part, None)
    assert len(ref[2]) and all(np.array_equal(a, b) for a, b in zip(ref, got))


def test_the_in_memory_training_loop_on_the_gpu_follows_its_device(monkeypatch):
    """The training loop in memory (engine torch) with train.device cuda, as the comparison
    harness trains its heads, then the head's tiled inference: the CPU run's losses, weights
    and maps, the weights left on the GPU."""
    from resm.compare.training import head_probs, train_cached

    ref, sec, embs, recs = tiny_cached_structure_task(6)
    train_cached(ref, sec, "cpu")
    maps = head_probs(ref.model, embs, recs, 16)
    pretend_cuda(monkeypatch)
    task = tiny_cached_structure_task(6)[0]
    with VirtualCuda():
        train_cached(task, sec, "cuda")
        assert all(on_gpu(p) for p in task.model.parameters())
        got = head_probs(task.model, embs, recs, 16)
    assert task.losses == ref.losses
    assert all(torch.equal(p, q) for p, q in zip(ref.model.parameters(), task.model.parameters()))
    assert all(np.array_equal(a, b) for a, b in zip(maps, got))


def test_a_conv_heads_map_predictor_follows_its_device(monkeypatch):
    """A 2-D head's structure model on the GPU folds through MapPredictor (its tiled inference,
    its own min_loop) as on the CPU."""
    from resm.heads.pair_map import StructureHead, StructureHeadConfig
    from resm.mapping import get_scheme
    from resm.structure.model import StructureModel
    from resm.structure.predictor import MapPredictor
    from tests.conftest import random_backbone

    torch.manual_seed(0)
    head = StructureHead(StructureHeadConfig(embed_dim=32, channels=8, blocks=2, min_loop=5, dropout=0.0))
    model = StructureModel(random_backbone(), head).eval()
    seq = "".join(np.random.default_rng(0).choice(list("ACGU"), 150))
    ref = MapPredictor.for_model(model, {"threshold": 0.5}, get_scheme("kdny"), tile=64).fold_one(seq)
    pretend_cuda(monkeypatch)
    with VirtualCuda():
        pred = MapPredictor.for_model(model.to("cuda"), {"threshold": 0.5}, get_scheme("kdny"), tile=64)
        got = pred.fold_one(seq)
    assert pred.min_loop == 5 and np.array_equal(got.dense(), ref.dense())
    assert np.array_equal(got.pairs, ref.pairs)


def test_the_backbone_and_the_masking_follow_their_device():
    """ESM-2 on a padded batch with contacts, the windowed read-out of a long sequence, and MLM
    masking of GPU tokens from the loop's CPU generator."""
    from resm.alphabet import pad_batch
    from resm.backbone.encoder import window_hidden
    from resm.data.masking import MaskingConfig, mask_batch
    from resm.mapping import get_scheme
    from tests.conftest import random_backbone

    scheme = get_scheme("kdny")
    rng = np.random.default_rng(1)
    toks = pad_batch([scheme.encode("".join(rng.choice(list("ACGU"), n))) for n in (40, 25, 90)])
    model = random_backbone()
    letters = sorted(set(toks[0, 1:-1].tolist()))

    def run(t):
        out = model(t, repr_layers=[1], return_contacts=True)
        masked = [mask_batch(t, letters, MaskingConfig(span=s), torch.Generator().manual_seed(5)) for s in (1, 3)]
        return out["logits"], out["contacts"], out["representations"][1], window_hidden(model, t, 32), masked

    with torch.no_grad():
        ref = run(toks)
        with VirtualCuda():
            model.to("cuda")
            got = run(toks.to("cuda"))
            assert on_gpu(got[0]) and on_gpu(got[3]) and on_gpu(got[4][0][0])
            got = [x.cpu() if torch.is_tensor(x) else [(a.cpu(), b.cpu()) for a, b in x] for x in got]
    for a, b in zip(ref[:4], got[:4]):
        assert torch.equal(a, b)
    assert all(torch.equal(a, c) and torch.equal(b, d) for (a, b), (c, d) in zip(ref[4], got[4]))


def _runs_on_both(monkeypatch, train) -> list:
    """``train(device)`` (the run folder it returns) on the CPU, then on the stand-in GPU: each
    run's log lines without their timings."""
    logs = []
    for device in ("cpu", "cuda"):
        with monkeypatch.context() as m:
            if device == "cuda":
                pretend_cuda(m)
                with VirtualCuda():
                    out = train(device)
            else:
                out = train(device)
        timing = ("tokens_per_s", "elapsed_s")
        logs.append([{k: v for k, v in r.items() if k not in timing} for r in _log(out)])
    return logs


def _log(out_dir) -> list:
    import json

    return [json.loads(x) for x in (out_dir / "log.jsonl").read_text().splitlines()]


def test_a_fine_tune_and_a_pretraining_on_the_gpu_follow_their_device(tmp_path, monkeypatch):
    """``resm finetune`` of a conv structure head (checkpoint, validation, decoding choice and
    structure model written from the GPU) and ``resm pretrain`` (engine torch; masks drawn
    from the loop's CPU generator) with train.device cuda log what the CPU runs log."""
    from resm.cli import main as cli_main
    from resm.tasks import run
    from tests.tasks.test_mlm import write_cfg
    from tests.tasks.test_structure_task import config, hairpins

    ckpt = tmp_path / "tiny.pt"
    assert cli_main(["init-checkpoint", "--arch", "tiny", "--out", str(ckpt), "--seed", "1"]) == 0
    assets = {
        "backbone": str(ckpt),
        "train": hairpins(tmp_path / "TR.dbn", 16, 0),
        "val": hairpins(tmp_path / "VL.dbn", 6, 1),
    }

    def finetune(device):
        out = tmp_path / f"ft_{device}"
        cfg = config(assets, out, train={"max_steps": 4, "val_every": 2, "ckpt_every": 2, "device": device})
        assert run(cfg)["step"] == 4 and (out / "structure_model.pt").is_file()
        return out

    def pretrain(device):
        d = tmp_path / f"pt_{device}"
        d.mkdir()
        assert (
            cli_main(["pretrain", "--config", str(write_cfg(d, max_steps=4, val_every=2, ckpt_every=2, device=device))])
            == 0
        )
        return d / "run"

    for train in (finetune, pretrain):
        on_cpu, on_gpu_ = _runs_on_both(monkeypatch, train)
        assert len(on_cpu) > 4 and on_cpu == on_gpu_


def test_a_checkpoints_gpu_random_states_restore_with_fewer_gpus(monkeypatch):
    """A run saved where 4 GPUs were visible (its own: cuda:2) resumes where one is: the state
    of the GPU it used goes to the GPU it now runs on. Restoring every saved state by index failed
    at the second, as torch.cuda.default_generators[1] does ('tuple index out of range')."""
    import json

    from resm.train_state import rng_state, set_rng_state

    pretend_cuda(monkeypatch)
    states = [torch.full((16,), k, dtype=torch.uint8) for k in range(4)]
    restored = {}

    def set_one(state, device="cuda"):
        idx = device if isinstance(device, int) else torch.device(device).index or 0
        if idx >= torch.cuda.device_count():
            raise IndexError("tuple index out of range")
        restored[idx] = state.clone()

    monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: states)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 2)
    saved = json.loads(json.dumps(rng_state()))
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "set_rng_state", set_one)
    monkeypatch.setattr(torch.cuda.random, "set_rng_state", set_one)  # what set_rng_state_all calls
    set_rng_state(saved)
    assert list(restored) == [0] and torch.equal(restored[0], states[2])
