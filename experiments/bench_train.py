"""Training throughput: resm's pretraining step against a naive fair-esm training loop.

Same model (ESM-2 t6 architecture, same random weights), same corpus (the Rfam seed
sequences, cropped to --max-length), same optimiser (AdamW) and masking, on CPU.

* naive: fair-esm's ``ESM2`` (explicit attention matrices), fixed-size batches of randomly
  drawn sequences padded to the longest in the batch, loss over the full vocabulary;
* resm:  resm's backbone (``scaled_dot_product_attention``) fed by ``PretrainStream``:
  length-bucketed token-budget batches, so almost no padding is computed.

Throughput counts real (non-padding) tokens per second. Runs alternate between the two in
fresh processes, so that machine noise hits both alike.

    python experiments/bench_train.py --out experiments/results/train_cpu.md
"""

from __future__ import annotations

import argparse
import json
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
if impl == "naive":
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
else:
    it = iter(PretrainStream(dcfg))
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

    text = (
        "\n".join(
            [
                "# Training throughput on CPU: resm step vs a naive fair-esm loop",
                "",
                f"Command: `python experiments/bench_train.py --out {a.out}`  ",
                f"{a.arch}, random init, Rfam 14.2 seed corpus cropped to {a.max_length} nt, AdamW, 15% masking; "
                f"naive = fair-esm ESM2 on random batches of {a.batch} sequences padded to the longest; "
                f"resm = resm backbone on length-bucketed batches of at most "
                f"{a.batch * (a.max_length + 2)} padded tokens. "
                f"{a.steps} steps after one warm-up, median over {a.rounds} alternating fresh processes; "
                f"{a.threads} threads, torch {torch.__version__}, {time.strftime('%Y-%m-%d')}.",
                "",
                "| loop | real tokens/s | padding computed |",
                "|---|---|---|",
                f"| naive fair-esm | {n:.0f} | {statistics.median(r['padding_frac'] for r in res['naive']):.0%} |",
                f"| resm | {o:.0f} | {statistics.median(r['padding_frac'] for r in res['resm']):.0%} |",
                "",
                f"Speed-up: **{o / n:.1f}x** real tokens per second.",
            ]
        )
        + "\n"
    )
    print(text)
    if a.out:
        a.out.write_text(text)


if __name__ == "__main__":
    main()
