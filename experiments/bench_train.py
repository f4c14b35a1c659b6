"""Training throughput: resm's pretraining step against a naive fair-esm training loop.

Same model (ESM-2 t6 architecture, same random weights), same corpus (the Rfam seed
sequences, cropped to --max-length), same masking, on CPU.

* naive: fair-esm's ``ESM2`` (explicit attention matrices), fixed-size batches of randomly
  drawn sequences padded to the longest in the batch, loss over the full vocabulary, a bare
  AdamW step;
* resm:  the step ``resm pretrain`` runs: the mlm task (:class:`resm.tasks.mlm.MLMTask`: resm's
  backbone with ``scaled_dot_product_attention``, fed by ``PretrainStream``'s length-bucketed
  token-budget batches, so almost no padding is computed) in the one training loop
  (:class:`resm.train.Trainer`: AdamW's parameter groups, warm-up and cosine schedule, gradient
  clipping, logging; the ``optim`` and ``train`` defaults), run in memory (``train.out_dir``
  None: no checkpoint or log file written). Its steps are timed from the loop's own log lines
  (``elapsed_s`` after each step), so the start-up (reading the corpus, building the model)
  and the warm-up step are left out, as on the naive side.

Throughput counts real (non-padding) tokens per second. Runs alternate between the two in
fresh processes, so that machine noise hits both alike.

    python experiments/bench_train.py --out experiments/results/train_cpu.md
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

CHILD = r"""
import json, sys, time, os
import numpy as np, torch
impl, corpus, arch = sys.argv[1], sys.argv[2], sys.argv[7]
steps, max_len, batch, threads = (int(x) for x in sys.argv[3:7])
torch.set_num_threads(threads)
torch.manual_seed(0)
from dataclasses import asdict
from resm.alphabet import pad_batch, PAD
from resm.data.masking import MaskingConfig, mask_batch, mlm_loss
from resm.data.pretrain import PretrainDataConfig, PretrainStream
from resm.mapping import get_scheme
from resm.backbone.config import ARCHS
from resm.backbone.load import init_model
cfg = ARCHS[arch]
model = init_model(arch, seed=0)
letters = list(get_scheme("kdny").letter_ids)
dcfg = PretrainDataConfig(train=[corpus], max_length=max_len, tokens_per_batch=batch * (max_len + 2),
                          bucket_size=4000, val_fraction=0.02, seed=0)
if impl == "resm":
    # resm pretrain's step: the mlm task in the one training loop, in memory (no run folder,
    # so no checkpoint or log file is written); steps + 1 optimiser steps, the first a warm-up
    from resm.tasks.mlm import MLMTask
    from resm.train import Trainer
    from resm.train_config import OptimConfig, TrainConfig
    task = MLMTask({"model": {"arch": arch, "init_seed": 0}, "data": asdict(dcfg), "masking": asdict(MaskingConfig())})
    for k, v in model.state_dict().items():  # the naive loop's random init
        assert torch.equal(v, task.model.state_dict()[k]), k
    train = TrainConfig(out_dir=None, max_steps=steps + 1, log_every=1, val_every=0, ckpt_every=0,
                        seed=0, device="cpu", progress=False)
    log = [r for r in Trainer(task, OptimConfig(), train).fit()["log"] if r["split"] == "train"]
    # a log line is written after each step: from the first's to the last's, the timed steps
    first, last = log[0], log[-1]
    dt = last["elapsed_s"] - first["elapsed_s"]
    real = last["tokens_seen"] - first["tokens_seen"]
    # the padding of those steps' batches: the stream is a pure function of its settings
    timed = [pad_batch(b) for _, b in zip(range(steps + 1), PretrainStream(dcfg))][1:]
    padded = sum(int(t.numel()) for t in timed)
    assert sum(int((t != PAD).sum()) for t in timed) == real
    print(json.dumps({"tokens_per_s": real / dt, "padding_frac": 1 - real / padded, "seconds": dt,
                      "real_tokens": real, "steps": last["step"] - first["step"], "lr": last["lr"],
                      "grad_norm": last["grad_norm"]}))
    sys.exit(0)
# naive: fair-esm's ESM2 with the same weights, its own AdamW loop
import esm
ref = esm.model.esm2.ESM2(num_layers=cfg.num_layers, embed_dim=cfg.embed_dim, attention_heads=cfg.attention_heads)
ref.load_state_dict(model.state_dict())
model = ref
# the same records, but drawn at random into fixed-size batches (no length bucketing)
stream = PretrainStream(dcfg)
pool = [ids for b in stream.iter_epoch(0) for ids in b][:4000]
rng = np.random.default_rng(0)
def batches():
    while True:
        yield [pool[i] for i in rng.integers(0, len(pool), batch)]
it = batches()
model.train()
opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
gen = torch.Generator().manual_seed(0)
def step():
    toks = pad_batch(next(it))
    inputs, labels = mask_batch(toks, letters, MaskingConfig(), gen)
    loss = mlm_loss(model(inputs)["logits"], labels)
    opt.zero_grad(); loss.backward(); opt.step()
    return int((toks != PAD).sum()), int(toks.numel())
step()  # warm-up
real = padded = 0
t = time.perf_counter()
for _ in range(steps):
    r, p = step(); real += r; padded += p
dt = time.perf_counter() - t
print(json.dumps({"tokens_per_s": real / dt, "padding_frac": 1 - real / padded, "seconds": dt, "real_tokens": real}))
"""


def loads(avg: tuple[float, ...]) -> str:
    return ", ".join(f"{x:.2f}" for x in avg)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", default="../shared/data/pretrain/rfam14.2_seed_sequences.fasta.gz")
    ap.add_argument("--arch", default="esm2_t6_8M_UR50D")
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--max-length", type=int, default=1024)
    ap.add_argument(
        "--batch",
        type=int,
        default=8,
        help="sequences per naive batch; resm's token budget is batch x (max_length + 2)",
    )
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args()
    load_before = os.getloadavg()  # the machine may be shared: its load is part of the record
    res = {"naive": [], "resm": []}
    for rnd in range(a.rounds):
        for impl in ("naive", "resm"):
            p = subprocess.run(
                [
                    sys.executable,
                    "-c",
                    CHILD,
                    impl,
                    a.corpus,
                    str(a.steps),
                    str(a.max_length),
                    str(a.batch),
                    str(a.threads),
                    a.arch,
                ],
                capture_output=True,
                text=True,
            )
            if p.returncode:
                sys.exit(p.stderr[-3000:])
            r = json.loads(p.stdout.strip().splitlines()[-1])
            res[impl].append(r)
            print(f"round {rnd} {impl}: {r['tokens_per_s']:.0f} tokens/s, padding {r['padding_frac']:.0%}", flush=True)
    n = statistics.median(r["tokens_per_s"] for r in res["naive"])
    o = statistics.median(r["tokens_per_s"] for r in res["resm"])
    import torch

    load_after = os.getloadavg()
    ratios = ", ".join(f"{r['tokens_per_s'] / q['tokens_per_s']:.1f}x" for q, r in zip(res["naive"], res["resm"]))
    text = (
        "\n".join(
            [
                "# Training throughput on CPU: resm step vs a naive fair-esm loop",
                "",
                f"Command: `python experiments/bench_train.py {shlex.join(sys.argv[1:])}`  ",
                f"{a.arch}, random init, Rfam 14.2 seed corpus cropped to {a.max_length} nt, 15% masking; "
                f"naive = fair-esm ESM2 on random batches of {a.batch} sequences padded to the longest, "
                f"a bare AdamW step; "
                f"resm = `resm pretrain`'s step: the mlm task in resm.train.Trainer (in memory, no checkpoints; "
                f"AdamW parameter groups, warm-up and cosine schedule, gradient clipping at 1.0, a log line "
                f"a step) on length-bucketed batches of at most {a.batch * (a.max_length + 2)} padded tokens, "
                f"timed from the loop's log lines. "
                f"{a.steps} steps after one warm-up, median over {a.rounds} alternating fresh processes; "
                f"{a.threads} threads, torch {torch.__version__}, {time.strftime('%Y-%m-%d')}.",
                "",
                "| loop | real tokens/s | padding computed |",
                "|---|---|---|",
                f"| naive fair-esm | {n:.0f} | {statistics.median(r['padding_frac'] for r in res['naive']):.0%} |",
                f"| resm | {o:.0f} | {statistics.median(r['padding_frac'] for r in res['resm']):.0%} |",
                "",
                f"Speed-up: **{o / n:.1f}x** real tokens per second (ratio of the medians; round by round: {ratios}).",
                "",
                f"Machine load (`uptime`'s 1, 5, 15 min averages, {len(os.sched_getaffinity(0))} cores): "
                f"{loads(load_before)} before, {loads(load_after)} after.",
            ]
        )
        + "\n"
    )
    print(text)
    if a.out:
        a.out.write_text(text)


if __name__ == "__main__":
    main()
