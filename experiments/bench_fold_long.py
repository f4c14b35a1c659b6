"""Folding long RNAs: the shipped structure model against RNAfold (MFE), side by side.

For every length, each method runs in a fresh process (its peak RSS includes weights and the
Python/torch runtime), on the same seeded random A/C/G/U sequence; with --data, the longest
ArchiveII structure (23S rRNA, 2,968 nt) is added. ``resm`` is the whole ``resm fold`` path:
backbone, pair-probability channel (global ViennaRNA partition function up to the model's
``bpp_local_above``, local RNAplfold-style windows above), tiled 2-D head and decoding; its
components are timed separately. RNAfold is single-threaded; resm runs with --threads torch
threads (the table says how many). Ratios are RNAfold time / resm time (> 1: resm faster).

    python experiments/bench_fold_long.py --threads 1 2 --out experiments/results/fold_long_cpu.md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import json, resource, sys, time
method, model_path, threads, seq_file = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
seq = open(seq_file).read().strip()
out = {}
if method == "rnafold":
    import RNA
    t = time.perf_counter(); RNA.fold(seq); out["seconds"] = time.perf_counter() - t
else:
    import numpy as np, torch
    torch.set_num_threads(threads)
    from resm.alphabet import pad_batch
    from resm.structure.priors import head_pair_prior
    from resm.structure.decode import decode
    from resm.structure.model import load_structure_model
    from resm.mapping import get_scheme, rna_codes
    model, meta = load_structure_model(model_path)
    model.eval()
    scheme = get_scheme(meta["scheme"])
    t0 = time.perf_counter()
    with torch.inference_mode():
        h, mask, attn = model.features(pad_batch([scheme.encode(seq)]))
        t1 = time.perf_counter()
        bpp = None
        if model.head.cfg.use_bpp:
            bpp = torch.from_numpy(head_pair_prior(seq, model.head.cfg))[None, None]
        t2 = time.perf_counter()
        nuc = torch.as_tensor(rna_codes(seq).astype(np.int64))[None]
        logits = model.head.predict_tiled(h, mask, attn_feats=attn, bpp=bpp, nuc=nuc, tile=512)
        probs = torch.sigmoid(logits[0]).numpy()
        t3 = time.perf_counter()
    pairs = decode(probs, seq, float(meta["threshold"]), "greedy", False)
    t4 = time.perf_counter()
    out.update(seconds=t4 - t0, backbone=t1 - t0, prior=t2 - t1, head=t3 - t2, decode=t4 - t3,
               pairs=int((pairs >= 0).sum() // 2))
out["peak_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps(out))
"""


def random_rna(n: int, seed: int) -> str:
    import numpy as np

    return "".join(np.random.default_rng(seed).choice(list("ACGU"), n))


def run_child(method: str, model: str, threads: int, seq: str, tmp: Path) -> dict:
    f = tmp / "seq.txt"
    f.write_text(seq)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    p = subprocess.run([sys.executable, "-c", CHILD, method, model, str(threads), str(f)],
                       capture_output=True, text=True, env=env)
    if p.returncode != 0:
        raise SystemExit(f"{method} at {len(seq)} nt failed:\n{p.stderr[-2000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def main() -> None:
    import tempfile

    from resm.structure.pipeline import default_model_path

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(default_model_path()))
    ap.add_argument("--lengths", type=int, nargs="+", default=[1000, 2000, 4000])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--data", default=os.environ.get("RESM_DATA", "../shared/data"),
                    help="data folder; adds ArchiveII's longest structure when present")
    ap.add_argument("--out", type=Path)
    a = ap.parse_args()

    cases = [(f"random {L}", random_rna(L, seed=L)) for L in a.lengths]
    try:
        from resm.structure.datasets import load_dataset

        longest = max(load_dataset("archiveii-long", a.data), key=lambda r: len(r.seq))
        cases.append((f"{longest.name}", longest.seq))
    except (FileNotFoundError, OSError, ValueError):
        print("no ArchiveII data: random sequences only", file=sys.stderr)

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, seq in cases:
            rv = run_child("rnafold", a.model, 1, seq, Path(tmp))
            print(name, "rnafold", rv, flush=True)
            for th in a.threads:
                rr = run_child("resm", a.model, th, seq, Path(tmp))
                print(name, f"resm x{th}", rr, flush=True)
                rows.append((name, len(seq), th, rv, rr))

    gib = 1024 ** 3
    lines = [
        "# Folding long RNAs: shipped structure model vs RNAfold (same sequences, same run)",
        "",
        f"Command: `python experiments/bench_fold_long.py --model {a.model if a.model != str(default_model_path()) else 'resm/models/structure_default.pt'} "
        f"--lengths {' '.join(map(str, a.lengths))} --threads {' '.join(map(str, a.threads))}"
        + (f" --out {a.out}`" if a.out else "`"),
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores, torch CPU. Every cell is a fresh"
        " process; peak is that process's maximum RSS (weights and runtime included). RNAfold is"
        " ViennaRNA's MFE fold (single-threaded); resm is the whole fold path, split into backbone,"
        " pair-probability prior, tiled 2-D head (tile 512) and decoding.",
        "",
        "| sequence | nt | resm threads | RNAfold s | RNAfold peak GiB | resm s | backbone s | prior s | head s | decode s | resm peak GiB | RNAfold s / resm s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, n, th, rv, rr in rows:
        lines.append(
            f"| {name} | {n} | {th} | {rv['seconds']:.1f} | {rv['peak_bytes'] / gib:.2f} | {rr['seconds']:.1f} | "
            f"{rr['backbone']:.1f} | {rr['prior']:.1f} | {rr['head']:.1f} | {rr['decode']:.1f} | "
            f"{rr['peak_bytes'] / gib:.2f} | {rv['seconds'] / rr['seconds']:.2f} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    if a.out:
        from resm.utils.io import atomic_write_text

        atomic_write_text(a.out, text)


if __name__ == "__main__":
    main()
