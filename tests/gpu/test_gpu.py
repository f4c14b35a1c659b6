"""Checks that need a CUDA GPU (marker ``gpu``): they skip cleanly without one, and
``python experiments/gpu_checks.py`` runs them and writes ``experiments/results/gpu.md``.

* bf16 autocast forward against fp32 on the same weights (tolerances below);
* the SDPA flash / memory-efficient attention path at 4,000 nt (the math path disallowed);
* 20 steps of DeepSpeed ZeRO-2 bf16 pretraining through ``resm pretrain`` (its final model
  holds the fp32 master weights that ``resm export`` reads);
* a 4,000-nt ``resm fold`` with the shipped model on the GPU.
* the pair head's forward and backward under bf16 autocast (the structure GPU recipe);
* a DeepSpeed ZeRO-2 bf16 fine-tune (MRL) whose head reads float32 features;
* a run resumed on the GPU repeats the losses of the run that was not stopped;
* the training loop in memory (engine torch) on the GPU, fp32 as on the CPU and bf16;
* a conv (2-D) head's MapPredictor on the GPU, as on the CPU, within its own min_loop;
* the non-canonical scorer fitted (on the CPU) beside a GPU and scoring on it.

Each test records its time and peak GPU memory into the JSON-lines file named by
``$RESM_GPU_REPORT`` when that is set.
"""

import json
import os
import time

import numpy as np
import pytest
import torch

from tests.conftest import resm_cli, tiny_cached_structure_task

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

# bf16 keeps 8 bits of mantissa: per-token final representations stay within cosine 0.99 of
# fp32, and the logits within 5% (relative Frobenius error) on a 6-layer ESM-2.
BF16_MIN_COSINE = 0.99
BF16_MAX_REL_LOGITS = 0.05
LONG = 4000


@pytest.fixture(autouse=True)
def _fresh_peak():
    torch.cuda.reset_peak_memory_stats()
    yield


def record(name: str, seconds: float, in_process: bool = True, **extra) -> None:
    """One line of the report: time, and this process's peak GPU memory (None for a check run
    in a subprocess)."""
    path = os.environ.get("RESM_GPU_REPORT")
    if path:
        peak = round(torch.cuda.max_memory_allocated() / 2**30, 3) if in_process else None
        current = os.environ.get("PYTEST_CURRENT_TEST", "")  # "tests/gpu/test_gpu.py::test_x (call)"
        function = current.split("::")[-1].split(" ")[0]
        with open(path, "a") as fh:
            fh.write(
                json.dumps(
                    {"test": name, "function": function, "seconds": round(seconds, 2), "peak_gib": peak, **extra}
                )
                + "\n"
            )


def random_rna(n: int, seed: int = 0) -> str:
    return "".join(np.random.default_rng(seed).choice(list("ACGU"), n))


@pytest.fixture
def model():
    from resm.backbone.load import init_model

    return init_model("esm2_t6_8M_UR50D", seed=0).cuda().eval()


def test_bf16_forward_matches_fp32(model):
    from resm.alphabet import pad_batch
    from resm.mapping import get_scheme

    scheme = get_scheme("kdny")
    toks = pad_batch([scheme.encode(random_rna(n, k)) for k, n in enumerate((300, 512, 1000))]).cuda()
    t0 = time.perf_counter()
    with torch.no_grad():
        ref = model(toks, repr_layers=[6])
        with torch.autocast("cuda", dtype=torch.bfloat16):
            low = model(toks, repr_layers=[6])
    torch.cuda.synchronize()
    mask = toks != 1
    a, b = ref["representations"][6][mask].float(), low["representations"][6][mask].float()
    cos = torch.nn.functional.cosine_similarity(a, b, dim=-1)
    la, lb = ref["logits"][mask].float(), low["logits"][mask].float()
    rel = float((la - lb).norm() / la.norm())
    record(
        "bf16 forward vs fp32 (3 RNAs, 300-1000 nt)",
        time.perf_counter() - t0,
        min_cosine=round(float(cos.min()), 5),
        rel_logits=round(rel, 5),
    )
    assert float(cos.min()) >= BF16_MIN_COSINE and rel <= BF16_MAX_REL_LOGITS


def test_sdpa_fused_attention_at_4000_nt(model):
    from torch.nn.attention import SDPBackend, sdpa_kernel

    from resm.alphabet import pad_batch
    from resm.mapping import get_scheme

    toks = pad_batch([get_scheme("kdny").encode(random_rna(LONG))]).cuda()
    t0 = time.perf_counter()
    no_math_fallback = sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION])
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16), no_math_fallback:
        out = model(toks, repr_layers=[6])
    torch.cuda.synchronize()
    h = out["representations"][6]
    peak = torch.cuda.max_memory_allocated()
    dense_scores = 20 * (LONG + 2) ** 2 * 2  # what one layer's (heads, T, T) bf16 score matrix would take
    record(f"SDPA flash/memory-efficient forward, {LONG} nt, bf16", time.perf_counter() - t0)
    assert h.shape == (1, LONG + 2, 320) and torch.isfinite(h.float()).all()
    assert peak < dense_scores, (peak, dense_scores)


def test_deepspeed_zero2_bf16_pretraining_20_steps(tmp_path):
    pytest.importorskip("deepspeed")
    import yaml

    from tests.tasks.test_mlm import corpus

    fa = corpus(tmp_path / "corpus.fa", n=400)
    cfg = {
        "model": {"arch": "esm2_t6_8M_UR50D", "init_seed": 1},
        "data": {
            "train": [str(fa)],
            "max_length": 64,
            "tokens_per_batch": 4096,
            "val_fraction": 0.1,
            "val_by": "family",
            "min_length": 5,
            "bucket_size": 256,
        },
        "validation": {"max_records": 40},
        "optim": {"lr": 1e-3, "warmup_steps": 5, "schedule": "cosine"},
        "train": {
            "out_dir": str(tmp_path / "run"),
            "max_steps": 20,
            "log_every": 1,
            "val_every": 20,
            "ckpt_every": 20,
            "progress": False,
            "engine": "deepspeed",
            "deepspeed_config": "zero2",
            "precision": "bf16",
            "device": "cuda",
        },
    }
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    t0 = time.perf_counter()
    p = resm_cli("pretrain", "--config", path)
    seconds = time.perf_counter() - t0
    log = [json.loads(x) for x in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    train = [r for r in log if r["split"] == "train"]
    record(
        "DeepSpeed ZeRO-2 bf16 pretraining, 20 steps (esm2_t6 architecture), whole command",
        seconds,
        False,
        first_loss=round(train[0]["loss"], 4),
        last_loss=round(train[-1]["loss"], 4),
    )
    assert "finished at step 20" in p.stdout and len(train) == 20
    assert all(np.isfinite(r["loss"]) for r in train) and train[-1]["loss"] < train[0]["loss"]
    # the final model holds the optimiser's fp32 master weights, as resm export reads them
    # from the last checkpoint, not the module's bf16 copies
    from resm.backbone.load import load_backbone
    from resm.export import consolidated_state

    final = load_backbone(tmp_path / "run" / "model.pt").model.state_dict()
    exported = consolidated_state(tmp_path / "run" / "checkpoints" / "step_00000020")
    trained = [k for k in exported if not k.startswith("contact_head") and k in final]
    assert trained and all(torch.equal(final[k].float(), exported[k].float()) for k in trained)


def test_fold_4000_nt_on_the_gpu(tmp_path):
    from resm.structure.io import read_structures
    from resm.structure.pipeline import FoldOptions, fold_fasta

    (tmp_path / "long.fa").write_text(f">long\n{random_rna(LONG, 7)}\n")
    t0 = time.perf_counter()
    r = fold_fasta(
        tmp_path / "long.fa",
        FoldOptions(out=tmp_path / "long.dbn", bpp=tmp_path / "long.bpp", device="cuda:0", progress=False),
    )
    seconds = time.perf_counter() - t0
    (rec,) = read_structures(tmp_path / "long.dbn")
    record(
        f"resm fold, {LONG} nt, shipped model on the GPU (load and RNAfold prior on the CPU included)",
        seconds,
        pairs=int((rec.pairs >= 0).sum() // 2),
    )
    assert r["n"] == 1 and len(rec) == LONG
    assert (tmp_path / "long.bpp").read_text().count("\n") > 3


def test_pair_head_trains_under_bf16_autocast(tmp_path):
    """The shipped structure recipe's head (configs/finetune/structure_esm2_gpu.yaml: pairs,
    bf16 autocast): forward and backward on the GPU, logits close to fp32's."""
    from resm.heads.pairs import PairHead, PairHeadConfig, candidates, collate_candidates
    from tests.heads.test_pairs import random_prior

    rng = np.random.default_rng(5)
    cfg = PairHeadConfig(embed_dim=320, min_prob=0.01)
    torch.manual_seed(0)
    head = PairHead(cfg).cuda().eval()
    seq = random_rna(400, 5)
    batch = {k: v.cuda() for k, v in collate_candidates([candidates(seq, [random_prior(seq, rng)], cfg)]).items()}
    h = torch.randn(1, 400, 320, device="cuda")
    t0 = time.perf_counter()
    with torch.no_grad():
        full = head(batch, h)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        half = head(batch, h)
    half.sum().backward()
    torch.cuda.synchronize()
    grads = [p.grad for p in head.parameters() if p.grad is not None]
    record("pair head, bf16 autocast forward and backward (400 nt)", time.perf_counter() - t0, candidates=len(full))
    assert half.dtype == torch.float32 and grads and all(torch.isfinite(g).all() for g in grads)
    torch.testing.assert_close(half.detach(), full, atol=0.15, rtol=0.05)


def _mrl_run(tmp_path, monkeypatch, name: str, **train) -> dict:
    """A short MRL fine-tune of a tiny backbone on the GPU, in this process."""
    from resm.backbone.load import init_model, resm_meta, save_fair_esm
    from resm.mapping import get_scheme
    from tests.tasks.test_rri_mrl import mrl_config

    for k, v in (("RANK", "0"), ("WORLD_SIZE", "1"), ("LOCAL_RANK", "0"), ("MASTER_ADDR", "127.0.0.1")):
        monkeypatch.setenv(k, v)  # what init_distributed would leave behind in this process
    ckpt = tmp_path / "tiny.pt"
    if not ckpt.exists():
        save_fair_esm(init_model("tiny", seed=1), ckpt, resm_meta(get_scheme("kdny"), "tiny"))
    cfg = mrl_config(tmp_path, ckpt, mode="adapters", steps=4)
    cfg["head"]["dropout"] = 0.3  # the GPU's random numbers matter
    cfg["train"].update(out_dir=str(tmp_path / name), device="cuda", log_every=1, **train)
    from resm.tasks import run

    return run(cfg)


def test_deepspeed_bf16_finetunes_a_head_that_reads_float_features(tmp_path, monkeypatch):
    """DeepSpeed bf16 casts the model, not a batch: the MRL head reads the backbone's states as
    float32 (h.float()); the engine's autocast must cast them where its bf16 layers meet them."""
    pytest.importorskip("deepspeed")
    t0 = time.perf_counter()
    res = _mrl_run(tmp_path, monkeypatch, "ds", engine="deepspeed", deepspeed_config="zero2", precision="bf16")
    log = [json.loads(x) for x in (tmp_path / "ds" / "log.jsonl").read_text().splitlines()]
    record("DeepSpeed ZeRO-2 bf16 MRL fine-tune, 4 steps (tiny backbone)", time.perf_counter() - t0, in_process=False)
    assert res["step"] == 4 and all(np.isfinite(r["loss"]) for r in log if r["split"] == "train")


def test_a_resumed_run_on_the_gpu_repeats_the_uninterrupted_one(tmp_path, monkeypatch):
    """Steps 3-4 after a resume from step 2 give the losses of the run that was not stopped:
    the checkpoint restores the GPU's random state too (the head's dropout draws on it)."""
    t0 = time.perf_counter()
    _mrl_run(tmp_path, monkeypatch, "run", ckpt_every=2, keep_last=2, val_every=0)
    log = tmp_path / "run" / "log.jsonl"
    first = [json.loads(x)["loss"] for x in log.read_text().splitlines() if '"train"' in x]
    import shutil

    shutil.rmtree(tmp_path / "run" / "checkpoints" / "step_00000004")
    _mrl_run(tmp_path, monkeypatch, "run", ckpt_every=2, keep_last=2, val_every=0)
    again = [json.loads(x)["loss"] for x in log.read_text().splitlines() if '"train"' in x]
    record("MRL fine-tune, resumed at step 2 of 4 vs not stopped", time.perf_counter() - t0, in_process=False)
    assert len(first) == len(again) == 4
    np.testing.assert_allclose(again, first, rtol=1e-4)


def test_an_in_memory_run_on_the_gpu_follows_the_cpu_run():
    """The training loop in memory (train.out_dir None, engine torch) on the GPU, as the
    comparison harness trains its heads (resm.compare.training.train_cached): the same steps as
    on the CPU give the same losses (to TF32 convolutions' rounding), the weights stay on the
    GPU, and a bf16 run returns its log lines."""
    from resm.compare.training import train_cached
    from resm.train import Trainer
    from resm.train_config import TrainConfig

    t0 = time.perf_counter()
    losses = {}
    for device in ("cpu", "cuda"):
        task, sec = tiny_cached_structure_task(8)[:2]
        losses[device] = (train_cached(task, sec, device), task.losses)
        assert next(task.model.parameters()).device.type == device and not task.model.training
    task, sec = tiny_cached_structure_task(8)[:2]
    train = TrainConfig(
        out_dir=None, max_steps=4, log_every=1, val_every=0, ckpt_every=0, seed=3, device="cuda", precision="bf16"
    )
    fit = Trainer(task, sec.optim(), train).fit()
    torch.cuda.synchronize()
    diff = max(abs(a - b) for a, b in zip(losses["cpu"][1], losses["cuda"][1]))
    record(
        "in-memory training loop, engine torch, fp32 and bf16 (conv head, 8 + 4 steps)",
        time.perf_counter() - t0,
        max_loss_diff=round(diff, 5),
    )
    assert len(losses["cuda"][1]) == 8 and diff < 2e-2 * max(losses["cpu"][1])
    assert [r["step"] for r in fit["log"]] == [1, 2, 3, 4] and all(np.isfinite(r["loss"]) for r in fit["log"])


def test_a_conv_heads_map_predictor_folds_on_the_gpu_as_on_the_cpu():
    """A 2-D (conv) head's structure model folded on the GPU (resm.structure.predictor.MapPredictor:
    tiled inference under bf16 autocast) gives the CPU's pair probabilities to bf16 rounding,
    and decodes only pairs farther apart than the head's own min_loop."""
    import copy

    from resm.heads.pair_map import StructureHead, StructureHeadConfig
    from resm.mapping import get_scheme
    from resm.structure.model import StructureModel
    from resm.structure.predictor import MapPredictor
    from tests.conftest import random_backbone

    torch.manual_seed(0)
    head = StructureHead(StructureHeadConfig(embed_dim=32, channels=8, blocks=2, min_loop=5, dropout=0.0))
    model = StructureModel(random_backbone(), head).eval()
    scheme, seq = get_scheme("kdny"), random_rna(600, 3)
    on_cpu = MapPredictor.for_model(model, {"threshold": 0.5}, scheme, tile=128).fold_one(seq).dense()
    t0 = time.perf_counter()
    gpu = MapPredictor.for_model(copy.deepcopy(model).cuda(), {"threshold": 0.5}, scheme, tile=128)
    folded = gpu.fold_one(seq)
    torch.cuda.synchronize()
    P, partners = folded.dense(), folded.pairs
    diff = float(np.abs(P - on_cpu).max())
    record(
        "conv head's MapPredictor, 600 nt, tile 128 (tiny backbone)",
        time.perf_counter() - t0,
        max_prob_diff=round(diff, 4),
    )
    assert gpu.min_loop == 5 and P.shape == (600, 600) and P.dtype == np.float32 and diff < 0.1
    k = np.arange(len(seq))
    assert all(P[i, i + d] == 0 for i in (0, 100, 594) for d in range(6))  # masked: sigmoid(NEG_LOGIT)
    paired = np.flatnonzero(partners > k)
    assert np.all(partners[paired] - paired > 5)


def test_the_noncanonical_scorer_fits_beside_the_gpu_and_scores_on_it():
    """The non-canonical scorer's fit (resm.tasks.noncanonical_scorer.train_scorer: the training
    loop in memory) stays on the CPU in a process that has a GPU, and the fitted scorer moved to
    the GPU scores the candidates as on the CPU (score_candidates follows the scorer's device)."""
    import copy

    from resm.structure.noncanonical import NonCanonicalConfig, n_features, score_candidates
    from resm.tasks.noncanonical_scorer import TrainOptions, train_scorer

    cfg = NonCanonicalConfig(hidden=16, members=2, layers=1)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(2000, n_features(cfg))).astype(np.float32)
    y = (X @ rng.normal(size=n_features(cfg)) > 0).astype(np.float32)
    t0 = time.perf_counter()
    scorer, losses = train_scorer(X, y, cfg, TrainOptions(epochs=3, batch=256, lr=1e-2))
    seq = random_rna(300, 9)
    partners = np.full(len(seq), -1)
    for k in range(8):
        partners[k], partners[len(seq) - 1 - k] = len(seq) - 1 - k, k
    ref = score_candidates(scorer, seq, partners, None)
    got = score_candidates(copy.deepcopy(scorer).cuda(), seq, partners, None)
    torch.cuda.synchronize()
    record("non-canonical scorer: fit (CPU) and scoring on the GPU", time.perf_counter() - t0, candidates=len(ref[2]))
    assert losses[-1] < losses[0] and next(scorer.parameters()).device.type == "cpu"
    assert len(ref[2]) and np.array_equal(got[0], ref[0]) and np.array_equal(got[1], ref[1])
    np.testing.assert_allclose(got[2], ref[2], atol=1e-3)
