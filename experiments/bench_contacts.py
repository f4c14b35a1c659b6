"""Zero-shot contact maps at long lengths: resm's layer-by-layer contact head against
fair-esm's ``return_contacts`` (which stacks every layer's and head's attention map).

Each cell runs in a fresh process (peak RSS of that process, weights included). fair-esm is
only run up to --fair-max-length: at 4,000 nt with t6 its stacked maps alone are
6 layers x 20 heads x 4,002^2 x 4 B = 7.7 GB before the copies its contact head makes, and it
was reported to exhaust 20 GiB there, which would endanger this 24 GiB machine.

    python experiments/bench_contacts.py --out experiments/results/contacts_cpu.md
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

CHILD = r"""
import json, resource, sys, time, torch
impl, arch, L = sys.argv[1], sys.argv[2], int(sys.argv[3])
torch.set_num_threads(2)
from resm.backbone.config import ARCHS
from resm.backbone.load import init_model
cfg = ARCHS[arch]
model = init_model(arch, seed=0)
if impl == "fair-esm":
    import esm
    ref = esm.model.esm2.ESM2(num_layers=cfg.num_layers, embed_dim=cfg.embed_dim, attention_heads=cfg.attention_heads)
    ref.load_state_dict(model.state_dict()); model = ref
model.eval()
toks = torch.randint(4, 24, (1, L + 2), generator=torch.Generator().manual_seed(1)); toks[0, 0], toks[0, -1] = 0, 2
with torch.inference_mode():
    t = time.perf_counter()
    c = model(toks, return_contacts=True)["contacts"] if impl == "fair-esm" else model.predict_contacts(toks)
    dt = time.perf_counter() - t
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"seconds": dt, "peak_bytes": peak, "shape": list(c.shape)}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="esm2_t6_8M_UR50D")
    ap.add_argument("--lengths", type=int, nargs="+", default=[1000, 2000, 4000])
    ap.add_argument("--fair-max-length", type=int, default=2000)
    ap.add_argument("--out", type=Path)
    a = ap.parse_args()
    rows = []
    for L in a.lengths:
        for impl in ("fair-esm", "resm"):
            if impl == "fair-esm" and a.fair_max_length < L:
                rows.append((impl, L, None))
                continue
            p = subprocess.run([sys.executable, "-c", CHILD, impl, a.arch, str(L)], capture_output=True, text=True)
            r = json.loads(p.stdout.strip().splitlines()[-1]) if p.returncode == 0 else None
            rows.append((impl, L, r))
            print(impl, L, r, flush=True)
    lines = [
        "| length (nt) | fair-esm time (s) | fair-esm peak (GiB) | resm time (s) | resm peak (GiB) |",
        "|---|---|---|---|---|",
    ]
    for L in a.lengths:
        f = next(r for i, n, r in rows if i == "fair-esm" and n == L)
        o = next(r for i, n, r in rows if i == "resm" and n == L)
        fs = f"{f['seconds']:.1f} | {f['peak_bytes'] / 2**30:.2f}" if f else "not run | (> 20 GiB reported)"
        lines.append(f"| {L} | {fs} | {o['seconds']:.1f} | {o['peak_bytes'] / 2**30:.2f} |")
    text = (
        "\n".join(
            [
                f"# Zero-shot contact maps on CPU ({a.arch}, random weights, batch of 1)",
                "",
                f"Command: `python experiments/bench_contacts.py --out {a.out}`; "
                f"2 threads, {time.strftime('%Y-%m-%d')}; "
                "peak = whole-process RSS including weights.",
                "",
                *lines,
            ]
        )
        + "\n"
    )
    print(text)
    if a.out:
        a.out.write_text(text)


if __name__ == "__main__":
    main()
