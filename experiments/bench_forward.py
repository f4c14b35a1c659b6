"""Forward-pass benchmark: resm's backbone against fair-esm's ``ESM2``, side by side in one run.

Same random weights (one state dict loaded into both), same tokens, same thread count. Each
(implementation, architecture, length) cell runs in a fresh subprocess so that its peak memory
is its own; cells are interleaved (fair-esm, resm, fair-esm, resm, ...) so that machine noise hits
both alike. Reported: median wall time of the forward pass, the peak resident memory of the
process (weights included), and the ratios fair-esm / resm. Mapping throughput is reported too.

    python experiments/bench_forward.py --out experiments/results/forward_cpu.md
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

CHILD = r"""
import json, resource, sys, time
import torch
impl, arch, length, repeats, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
torch.set_num_threads(threads)
from resm.backbone.config import ARCHS
from resm.backbone.load import init_model
cfg = ARCHS[arch]
ours = init_model(arch, seed=0)
if impl == "fair-esm":
    import esm
    model = esm.model.esm2.ESM2(num_layers=cfg.num_layers, embed_dim=cfg.embed_dim,
                                attention_heads=cfg.attention_heads, alphabet="ESM-1b")
    model.load_state_dict(ours.state_dict())
    del ours
else:
    model = ours
model.eval()
g = torch.Generator().manual_seed(1)
toks = torch.randint(4, 24, (1, length + 2), generator=g)
toks[0, 0], toks[0, -1] = 0, 2
times = []
with torch.inference_mode():
    model(toks[:, :64])  # warm-up
    for _ in range(repeats):
        t = time.perf_counter()
        out = model(toks, repr_layers=[cfg.num_layers])
        times.append(time.perf_counter() - t)
        del out
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB
print(json.dumps({"times": times, "peak_bytes": peak}))
"""


def run_cell(impl: str, arch: str, length: int, repeats: int, threads: int) -> dict:
    p = subprocess.run(
        [sys.executable, "-c", CHILD, impl, arch, str(length), str(repeats), str(threads)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(p.stdout.strip().splitlines()[-1])


def mapping_throughput() -> list:
    import numpy as np

    from resm.mapping import get_scheme

    seq = np.random.default_rng(0).choice(np.frombuffer(b"ACGU", np.uint8), 1_000_000).tobytes()
    rows = []
    for name in ("kdny", "codon3"):
        s = get_scheme(name)
        s.encode(seq[:1000])
        t = []
        for _ in range(5):
            t0 = time.perf_counter()
            s.encode(seq)
            t.append(time.perf_counter() - t0)
        rows.append((name, statistics.median(t)))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archs", nargs="+", default=["esm2_t6_8M_UR50D", "esm2_t12_35M_UR50D"])
    ap.add_argument("--lengths", nargs="+", type=int, default=[1000, 4000])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=2, help="interleaved rounds per cell (fresh process each)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=None, help="markdown table to write")
    a = ap.parse_args()

    results = {}
    for arch in a.archs:
        for length in a.lengths:
            for rnd in range(a.rounds):
                for impl in ("fair-esm", "resm"):
                    r = run_cell(impl, arch, length, a.repeats, a.threads)
                    cell = results.setdefault((arch, length, impl), {"times": [], "peaks": []})
                    cell["times"] += r["times"]
                    cell["peaks"].append(r["peak_bytes"])
                    print(
                        f"{arch} L={length} {impl} round {rnd}: "
                        f"{statistics.median(r['times']):.2f}s, peak {r['peak_bytes'] / 2**30:.2f} GiB",
                        flush=True,
                    )

    lines = [
        "| model | length (nt) | fair-esm time (s) | resm time (s) | speed-up "
        "| fair-esm peak (GiB) | resm peak (GiB) | memory ratio (resm/fair-esm) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for arch in a.archs:
        for length in a.lengths:
            f, o = results[(arch, length, "fair-esm")], results[(arch, length, "resm")]
            ft, ot = statistics.median(f["times"]), statistics.median(o["times"])
            fp, op = max(f["peaks"]) / 2**30, max(o["peaks"]) / 2**30
            lines.append(
                f"| {arch} | {length} | {ft:.2f} | {ot:.2f} | {ft / ot:.1f}x | {fp:.2f} | {op:.2f} | {op / fp:.2f} |"
            )
    maps = mapping_throughput()
    import torch

    header = [
        "# Forward pass on CPU: resm vs fair-esm ESM2",
        "",
        f"Command: `python experiments/bench_forward.py --out {a.out}`  ",
        f"Machine: {platform.processor() or platform.machine()}, {a.threads} threads, torch {torch.__version__}, "
        f"{time.strftime('%Y-%m-%d')}. Batch of one random sequence, same random weights in both, "
        f"median of {a.repeats * a.rounds} forward passes over {a.rounds} fresh processes each; "
        "peak = peak resident memory of the whole process (weights, Python and torch included).",
        "",
    ]
    footer = [
        "",
        "Mapping 1,000,000 nt (median of 5): " + ", ".join(f"`{n}` {t * 1e3:.1f} ms" for n, t in maps),
    ]
    text = "\n".join(header + lines + footer) + "\n"
    print(text)
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(text)


if __name__ == "__main__":
    main()
