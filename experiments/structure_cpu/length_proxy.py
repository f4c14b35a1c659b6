"""Long RNAs built from validation records: how a structure model's accuracy holds up with length.

No record over 600 nt is in the validation sets, and every long structure in the data is a test
record, so choices that only matter for long RNAs (how the backbone reads them) are checked
here on a proxy made of validation data only: VL0 records, shuffled (seeded), are joined end to
end into sequences of about ``--lengths`` nt; the reference is the union of their structures.
Each case is folded

* by the model on each record alone, the structures put back side by side (what the model does
  with no length effect at all),
* by the model on the joined sequence, its backbone reading the whole sequence at once and
  through windows of 256, 512 and 1,024 nt (``head.embed_window``),
* by EternaFold (LinearPartition MEA, beam 100), the best classical folder, on the joined
  sequence.

Joined sequences also tempt every folder into pairs between records that no reference has, so
the absolute F1 is lower than on the records alone; the comparison is between rows of one case.

    python experiments/structure_cpu/length_proxy.py --threads 2 \\
        --out experiments/results/length_proxy_cpu.md
"""

from __future__ import annotations

import argparse
import platform
import random
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))


def side_by_side(partners):
    """Partner arrays of consecutive pieces as one partner array of the joined sequence."""
    out = -np.ones(sum(len(p) for p in partners), dtype=np.int64)
    o = 0
    for p in partners:
        p = np.asarray(p)
        m = p >= 0
        out[o : o + len(p)][m] = p[m] + o
        o += len(p)
    return out


def join(records):
    return "".join(r.seq for r in records), side_by_side([r.pairs for r in records])


def cases(records, length: int, total: int, seed: int):
    recs = list(records)
    random.Random(seed).shuffle(recs)
    groups, cur, n = [], [], 0
    for r in recs:
        cur.append(r)
        n += len(r.seq)
        if n >= length:
            groups.append(cur)
            cur, n = [], 0
            if len(groups) * length >= total:
                break
    return groups


def main() -> None:
    import torch

    from resm.config import default_data_dir
    from resm.mapping import get_scheme
    from resm.structure.folders import linearpartition_mea
    from resm.structure.io import read_structures
    from resm.structure.metrics import f1_score
    from resm.structure.model import load_structure_model, resolve_model
    from resm.structure.predictor import PairPredictor

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=None, help="a pair-head structure_model.pt (default: the shipped model)")
    ap.add_argument("--data-dir", default=None, help="data folder (default: $RESM_DATA, else ../shared/data)")
    ap.add_argument("--lengths", type=int, nargs="+", default=[1000, 2000, 4000])
    ap.add_argument("--total", type=int, default=60000, help="nucleotides per length")
    ap.add_argument("--windows", type=int, nargs="+", default=[256, 512, 1024])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--bpp-cache", default=None, help="folder of stored priors (read and filled)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)

    data = Path(a.data_dir or default_data_dir())
    vl0 = list(read_structures(data / "ss/bprna/VL0.dbn"))
    path = resolve_model(a.model)
    model, meta = load_structure_model(path)
    scheme = get_scheme(meta["scheme"])

    def fold(seqs, window):
        model.head.cfg.embed_window = window  # what the model reads when it runs
        run = PairPredictor.from_meta(model, meta, scheme, workers=a.threads, cache=a.bpp_cache)
        t = time.perf_counter()
        out = [s.pairs for s, _ in run.fold([(f"r{k}", s) for k, s in enumerate(seqs)], progress=False)]
        return out, time.perf_counter() - t

    saved = model.head.cfg.embed_window
    rows = []
    for L in a.lengths:
        groups = cases(vl0, L, a.total, a.seed + L)
        joined = [join(g) for g in groups]
        seqs, refs = [s for s, _ in joined], [r for _, r in joined]
        n_nt = sum(map(len, seqs))
        lens = [len(s) for s in seqs]
        label = f"{len(seqs)} x {min(lens)}-{max(lens)} nt"
        parts = [r.seq for g in groups for r in g]
        alone, secs = fold(parts, 0)
        stitched, k = [], 0
        for g in groups:
            stitched.append(side_by_side(alone[k : k + len(g)]))
            k += len(g)

        def score(preds, refs=refs):
            return (
                float(np.mean([f1_score(p, r) for p, r in zip(preds, refs)])),
                float(np.mean([f1_score(p, r, shift=True) for p, r in zip(preds, refs)])),
            )

        rows.append((L, label, "resm, each record alone (no length effect)", *score(stitched), secs))
        t = time.perf_counter()
        ef = [linearpartition_mea(s, "eterna", 100) for s in seqs]
        rows.append((L, label, "EternaFold MEA, joined", *score(ef), time.perf_counter() - t))
        for w in [0, *a.windows]:
            preds, secs = fold(seqs, w)
            name = (
                "resm, joined, backbone on the whole sequence"
                if w == 0
                else f"resm, joined, backbone windows of {w} nt"
            )
            rows.append((L, label, name, *score(preds), secs))
            print(f"{L} {name}: {rows[-1][3]:.4f} / {rows[-1][4]:.4f}", flush=True)
        print(f"{L}: {n_nt} nt done", flush=True)
    model.head.cfg.embed_window = saved

    from resm.utils.io import atomic_path

    lines = [
        "# Long RNAs built from validation records (VL0 joined end to end): accuracy against length",
        "",
        f"Command: `python experiments/structure_cpu/length_proxy.py --threads {a.threads}"
        + (f" --bpp-cache {a.bpp_cache}" if a.bpp_cache else "")
        + f" --out {a.out}`  ",
        f"Model: `{a.model or 'default (the shipped model)'}`, its stored decoding; every resm row reads one "
        f"model file, only `head.embed_window` changes. Validation records only (VL0). "
        f"Machine: {platform.machine()}, {a.threads} threads. "
        "Mean per-sequence F1 over the joined sequences (strict / ±1 shift); seconds include the priors "
        "when they were not yet cached (the first resm row on the joined sequences computes them).",
        "",
        "| length | cases | method | F1 | F1 ±1 | seconds |",
        "|---|---|---|---|---|---|",
    ]
    lines += [f"| {L} | {lab} | {name} | {f:.4f} | {fs:.4f} | {s:.0f} |" for L, lab, name, f, fs, s in rows]
    with atomic_path(a.out) as tmp:
        Path(tmp).write_text("\n".join(lines) + "\n")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
